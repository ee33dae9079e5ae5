//! The SQL of the accounts tables: users, roles, sessions, refresh tokens, login throttle, external identities.
//! Other features call `auth`'s functions, never these tables.

use sqlx::{AnyPool, FromRow, Row, any::AnyRow};

use super::AccountKind;
use crate::ids::UserId;

impl<'r> FromRow<'r, AnyRow> for UserRow {
    fn from_row(row: &'r AnyRow) -> sqlx::Result<Self> {
        let kind: String = row.try_get("kind")?;
        let kind = kind
            .parse()
            .map_err(|e: String| sqlx::Error::ColumnDecode {
                index: "kind".into(),
                source: e.into(),
            })?;
        Ok(UserRow {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            username_canonical: row.try_get("username_canonical")?,
            kind,
            password_hash: row.try_get("password_hash")?,
            role: row.try_get("role")?,
            email: row.try_get("email")?,
            full_name: row.try_get("full_name")?,
            // Stored as 0/1 in both databases (no migration): decoded here, never compared elsewhere.
            is_active: row.try_get::<i64, _>("is_active")? != 0,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            last_login_at: row.try_get("last_login_at")?,
            login_count: row.try_get("login_count")?,
        })
    }
}

/// A `users` row, decoded once: `kind` as `AccountKind`, `is_active` (an integer column) as a bool.
#[derive(Clone, Debug)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub username_canonical: String,
    pub kind: AccountKind,
    pub password_hash: String,
    pub role: String,
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub is_active: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_login_at: Option<i64>,
    pub login_count: i64,
}

const USER_COLUMNS: &str = "id, username, username_canonical, kind, password_hash, role, email, full_name, is_active, \
     created_at, updated_at, last_login_at, login_count";

pub struct NewUser<'a> {
    pub id: &'a str,
    pub username: &'a str,
    pub username_canonical: &'a str,
    /// Unique: a lookalike of an existing name fails the insert like a duplicate does.
    pub username_skeleton: &'a str,
    pub kind: AccountKind,
    pub password_hash: &'a str,
    pub role: &'a str,
    pub email: Option<&'a str>,
    pub full_name: Option<&'a str>,
    pub now: i64,
}

pub async fn insert_user(pool: &AnyPool, u: &NewUser<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO users (id, username, username_canonical, username_skeleton, kind, password_hash, role, email, \
         full_name, is_active, created_at, updated_at, login_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, \
         $10, 0)",
    )
    .bind(u.id)
    .bind(u.username)
    .bind(u.username_canonical)
    .bind(u.username_skeleton)
    .bind(u.kind.as_str())
    .bind(u.password_hash)
    .bind(u.role)
    .bind(u.email)
    .bind(u.full_name)
    .bind(u.now)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Accounts made before usernames had skeletons (or left without one because they collide), oldest first:
/// (id, canonical name).
pub async fn find_users_without_skeleton(pool: &AnyPool) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT id, username_canonical FROM users WHERE username_skeleton IS NULL ORDER BY created_at, id",
    )
    .fetch_all(pool)
    .await
}

/// Sets a missing skeleton; fails with a unique violation when another account holds it.
pub async fn update_skeleton(pool: &AnyPool, id: &str, skeleton: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE users SET username_skeleton = $1 WHERE id = $2 AND username_skeleton IS NULL",
    )
    .bind(skeleton)
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ())
}

pub async fn find_user(pool: &AnyPool, id: &str) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn find_user_by_canonical(
    pool: &AnyPool,
    canonical: &str,
) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username_canonical = $1"
    )))
    .bind(canonical)
    .fetch_optional(pool)
    .await
}

pub async fn find_all_users(pool: &AnyPool) -> sqlx::Result<Vec<UserRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id"
    )))
    .fetch_all(pool)
    .await
}

/// What an admin's user search asks for: `q` (already lowercased) matched as a substring of the canonical
/// username, email or full name; exact `role` and `active`; one page of `limit` from `offset`.
pub struct UserQuery<'a> {
    pub q: Option<&'a str>,
    pub role: Option<&'a str>,
    pub active: Option<bool>,
    pub limit: i64,
    pub offset: i64,
}

/// A `LIKE` pattern matching `needle` anywhere, with its own `%`, `_` and `\` taken literally.
fn contains_pattern(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The `WHERE` clause of a user search and its text parameters, numbered from `$1`.
fn user_query_filter(q: &UserQuery<'_>) -> (String, Vec<String>) {
    let mut clauses = Vec::new();
    let mut binds = Vec::new();
    if let Some(needle) = q.q {
        binds.push(contains_pattern(needle));
        let n = binds.len();
        clauses.push(format!(
            "(username_canonical LIKE ${n} ESCAPE '\\' OR LOWER(COALESCE(email, '')) LIKE ${n} ESCAPE '\\' \
             OR LOWER(COALESCE(full_name, '')) LIKE ${n} ESCAPE '\\')"
        ));
    }
    if let Some(role) = q.role {
        binds.push(role.to_string());
        clauses.push(format!("role = ${}", binds.len()));
    }
    if let Some(active) = q.active {
        // A literal, not a parameter: `is_active` is an integer and every other parameter here is text.
        clauses.push(format!("is_active = {}", i64::from(active)));
    }
    if clauses.is_empty() {
        (String::new(), binds)
    } else {
        (format!(" WHERE {}", clauses.join(" AND ")), binds)
    }
}

/// One page of the users a search matches, oldest first, and how many it matches in all.
pub async fn find_users_page(
    pool: &AnyPool,
    q: &UserQuery<'_>,
) -> sqlx::Result<(Vec<UserRow>, i64)> {
    let (filter, binds) = user_query_filter(q);
    let n = binds.len();
    let page_sql = format!(
        "SELECT {USER_COLUMNS} FROM users{filter} ORDER BY created_at, id LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    let mut page = sqlx::query_as(sqlx::AssertSqlSafe(page_sql));
    for b in &binds {
        page = page.bind(b.clone());
    }
    let rows = page.bind(q.limit).bind(q.offset).fetch_all(pool).await?;
    let count_sql = format!("SELECT COUNT(*) FROM users{filter}");
    let mut count = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql));
    for b in binds {
        count = count.bind(b);
    }
    let total: i64 = count.fetch_one(pool).await?;
    Ok((rows, total))
}

pub async fn count_active_admins(pool: &AnyPool) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM users WHERE role = 'admin' AND is_active = 1 AND kind = 'person'",
    )
    .fetch_one(pool)
    .await?;
    Ok(n)
}

pub async fn update_password_hash(
    pool: &AnyPool,
    id: &str,
    hash: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn update_profile(
    pool: &AnyPool,
    id: &str,
    email: Option<&str>,
    full_name: Option<&str>,
    role: &str,
    is_active: bool,
    now: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE users SET email = $1, full_name = $2, role = $3, is_active = $4, updated_at = $5 WHERE id = $6")
        .bind(email)
        .bind(full_name)
        .bind(role)
        .bind(i64::from(is_active))
        .bind(now)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn update_login_success(pool: &AnyPool, id: &str, now: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET last_login_at = $1, login_count = login_count + 1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

pub async fn delete_user(pool: &AnyPool, id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

// Roles and permissions.

pub async fn find_role_permissions(pool: &AnyPool, role: &str) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT permission FROM role_permissions WHERE role = $1 ORDER BY permission",
    )
    .bind(role)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(p,)| p).collect())
}

/// Every role: (name, description, require_mfa as 0/1).
pub async fn find_all_roles(pool: &AnyPool) -> sqlx::Result<Vec<(String, String, i64)>> {
    sqlx::query_as("SELECT name, description, require_mfa FROM roles ORDER BY name")
        .fetch_all(pool)
        .await
}

/// Whether a user's role requires a second factor and whether the user has one: (required, enrolled).
pub async fn find_mfa_flags(pool: &AnyPool, user_id: &str) -> sqlx::Result<(bool, bool)> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT COALESCE(r.require_mfa, 0), u.mfa_enrolled FROM users u LEFT JOIN roles r ON r.name = u.role \
         WHERE u.id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map_or((false, false), |(r, e)| (r != 0, e != 0)))
}

/// Records whether a user has a confirmed second factor; `updated_at` moves so other instances drop the
/// cached account.
pub async fn update_mfa_enrolled(
    pool: &AnyPool,
    user_id: &str,
    enrolled: bool,
    now: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE users SET mfa_enrolled = $1, updated_at = $2 WHERE id = $3")
        .bind(i64::from(enrolled))
        .bind(now)
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn is_role(pool: &AnyPool, role: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> = sqlx::query_as("SELECT name FROM roles WHERE name = $1")
        .bind(role)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// Creates the role if needed and replaces its permissions, in one transaction. `require_mfa` `None` keeps
/// the role's setting (off for a new role).
pub async fn replace_role_permissions(
    pool: &AnyPool,
    role: &str,
    description: &str,
    permissions: &[String],
    require_mfa: Option<bool>,
    now: i64,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO roles (name, description, created_at, updated_at, require_mfa) VALUES ($1, $2, $3, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET description = $2, updated_at = $3, \
         require_mfa = CASE WHEN $5 = 1 THEN $4 ELSE roles.require_mfa END",
    )
    .bind(role)
    .bind(description)
    .bind(now)
    .bind(i64::from(require_mfa.unwrap_or(false)))
    .bind(i64::from(require_mfa.is_some()))
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM role_permissions WHERE role = $1")
        .bind(role)
        .execute(&mut *tx)
        .await?;
    for p in permissions {
        sqlx::query("INSERT INTO role_permissions (role, permission) VALUES ($1, $2)")
            .bind(role)
            .bind(p)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

// Sessions and refresh tokens.

pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub kind: &'a str,
    pub now: i64,
    pub expires_at: i64,
    pub client_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub async fn insert_session(pool: &AnyPool, s: &NewSession<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, kind, created_at, expires_at, client_ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(s.id)
    .bind(s.user_id)
    .bind(s.kind)
    .bind(s.now)
    .bind(s.expires_at)
    .bind(s.client_ip)
    .bind(s.user_agent)
    .execute(pool)
    .await
    .map(|_| ())
}

#[derive(Debug, FromRow)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// Last activity written by an instance (`None`: none since the login).
    pub last_seen_at: Option<i64>,
}

pub async fn find_session(pool: &AnyPool, id: &str) -> sqlx::Result<Option<SessionRow>> {
    sqlx::query_as(
        "SELECT id, user_id, created_at, expires_at, revoked_at, last_seen_at FROM sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A session as an admin sees it: never a token (none is stored; refresh tokens only as hashes elsewhere).
#[derive(Debug, FromRow)]
pub struct UserSessionRow {
    pub id: String,
    pub kind: String,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A user's sessions that have not expired at `now` (live or revoked), newest first, at most `limit`.
pub async fn find_user_sessions(
    pool: &AnyPool,
    user_id: &str,
    now: i64,
    limit: i64,
) -> sqlx::Result<Vec<UserSessionRow>> {
    sqlx::query_as(
        "SELECT id, kind, created_at, last_seen_at, expires_at, revoked_at, revoke_reason, client_ip, user_agent \
         FROM sessions WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC, id LIMIT $3",
    )
    .bind(user_id)
    .bind(now)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Moves a session's last activity forward (never back: instances write in any order).
pub async fn update_session_seen(pool: &AnyPool, id: &str, at: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND (last_seen_at IS NULL OR last_seen_at < $1)",
    )
    .bind(at)
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Sessions neither revoked nor expired at `now`.
pub async fn count_active_sessions(pool: &AnyPool, now: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1")
        .bind(now)
        .fetch_one(pool)
        .await
}

/// Revoked sessions that have not yet expired: the revocation cache's contents at start.
pub async fn find_revoked_sessions(pool: &AnyPool, now: i64) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT id, expires_at FROM sessions WHERE revoked_at IS NOT NULL AND expires_at > $1",
    )
    .bind(now)
    .fetch_all(pool)
    .await
}

/// Revokes one session; returns its expiry if it was live.
pub async fn revoke_session(
    pool: &AnyPool,
    id: &str,
    reason: &str,
    now: i64,
) -> sqlx::Result<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = $3 AND revoked_at IS NULL RETURNING expires_at",
    )
    .bind(now)
    .bind(reason)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(e,)| e))
}

/// Revokes every live session of a user except `keep`; returns the revoked ids and expiries.
pub async fn revoke_user_sessions(
    pool: &AnyPool,
    user_id: &str,
    keep: Option<&str>,
    reason: &str,
    now: i64,
) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE user_id = $3 AND revoked_at IS NULL AND id <> $4 \
         RETURNING id, expires_at",
    )
    .bind(now)
    .bind(reason)
    .bind(user_id)
    .bind(keep.unwrap_or(""))
    .fetch_all(pool)
    .await
}

pub async fn insert_refresh_token(
    pool: &AnyPool,
    hash: &str,
    session_id: &str,
    now: i64,
    expires_at: i64,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(hash)
        .bind(session_id)
        .bind(now)
        .bind(expires_at)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Rotates a refresh token in one transaction: marks `old_hash` used (if it is unused and unexpired) and stores
/// `new_hash` for the same session, expiring with it. A crash leaves either both changes or neither, so exactly
/// one of the two tokens works. Exactly one concurrent caller gets the session id: the conditional UPDATE takes
/// the row lock and re-checks `used_at` after it.
pub async fn rotate_refresh_token(
    pool: &AnyPool,
    old_hash: &str,
    new_hash: &str,
    now: i64,
) -> sqlx::Result<Option<String>> {
    let mut tx = pool.begin().await?;
    let row: Option<(String,)> = sqlx::query_as(
        "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING session_id",
    )
    .bind(now)
    .bind(old_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((session_id,)) = row else {
        return Ok(None);
    };
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
         SELECT $1, id, $2, expires_at FROM sessions WHERE id = $3",
    )
    .bind(new_hash)
    .bind(now)
    .bind(&session_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(session_id))
}

/// The session a refresh token belongs to and when it was used, whatever its state.
pub async fn find_refresh_token(
    pool: &AnyPool,
    hash: &str,
) -> sqlx::Result<Option<(String, Option<i64>)>> {
    sqlx::query_as("SELECT session_id, used_at FROM refresh_tokens WHERE token_hash = $1")
        .bind(hash)
        .fetch_optional(pool)
        .await
}

// Login throttle (per canonical name; survives restarts).

pub async fn find_lock(pool: &AnyPool, canonical: &str) -> sqlx::Result<i64> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT locked_until FROM login_throttle WHERE name_canonical = $1")
            .bind(canonical)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(l,)| l).unwrap_or(0))
}

/// Counts one failure; returns the failure count after it. Failures older than a day are forgotten.
pub async fn record_failure(pool: &AnyPool, canonical: &str, now: i64) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "INSERT INTO login_throttle (name_canonical, failures, locked_until, updated_at) VALUES ($1, 1, 0, $2) \
         ON CONFLICT (name_canonical) DO UPDATE SET updated_at = $2, \
         failures = CASE WHEN login_throttle.updated_at < $3 THEN 1 ELSE login_throttle.failures + 1 END RETURNING failures",
    )
    .bind(canonical)
    .bind(now)
    .bind(now - 86_400_000)
    .fetch_one(pool)
    .await?;
    Ok(n)
}

pub async fn update_lock(pool: &AnyPool, canonical: &str, locked_until: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE login_throttle SET locked_until = $1 WHERE name_canonical = $2")
        .bind(locked_until)
        .bind(canonical)
        .execute(pool)
        .await
        .map(|_| ())
}

pub async fn delete_throttle(pool: &AnyPool, canonical: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_throttle WHERE name_canonical = $1")
        .bind(canonical)
        .execute(pool)
        .await
        .map(|_| ())
}

// External identities.

pub async fn find_external_user(
    pool: &AnyPool,
    issuer: &str,
    subject: &str,
) -> sqlx::Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT user_id FROM external_identities WHERE issuer = $1 AND subject = $2",
    )
    .bind(issuer)
    .bind(subject)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(u,)| u))
}

pub async fn insert_external_identity(
    pool: &AnyPool,
    issuer: &str,
    subject: &str,
    user_id: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO external_identities (issuer, subject, user_id) VALUES ($1, $2, $3)")
        .bind(issuer)
        .bind(subject)
        .bind(user_id)
        .execute(pool)
        .await
        .map(|_| ())
}

// Changes made by other processes (another instance, the CLI), found by polling from a watermark.

/// Sessions revoked at or after `since`: (id, expires_at, revoked_at).
pub async fn find_sessions_revoked_since(
    pool: &AnyPool,
    since: i64,
) -> sqlx::Result<Vec<(String, i64, i64)>> {
    sqlx::query_as("SELECT id, expires_at, revoked_at FROM sessions WHERE revoked_at >= $1")
        .bind(since)
        .fetch_all(pool)
        .await
}

/// Users changed at or after `since`: (id, updated_at).
pub async fn find_users_updated_since(
    pool: &AnyPool,
    since: i64,
) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as("SELECT id, updated_at FROM users WHERE updated_at >= $1")
        .bind(since)
        .fetch_all(pool)
        .await
}

/// The newest role change.
pub async fn find_roles_updated_max(pool: &AnyPool) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(updated_at), 0) FROM roles")
        .fetch_one(pool)
        .await?;
    Ok(n)
}

pub async fn find_watermarks(pool: &AnyPool) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT (SELECT COALESCE(MAX(revoked_at), 0) FROM sessions), (SELECT COALESCE(MAX(updated_at), 0) FROM users)",
    )
    .fetch_one(pool)
    .await
}
