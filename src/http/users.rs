//! Seed-004 admin routes: users and role permissions. All need `users:manage`.
//! Replies keep the seed's `{status, data}` envelope and add `success`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

use super::{
    error::{AppError, AppResult},
    extract::{Json, Query, Require, UsersManage},
    routes::Routes,
};
use crate::{
    auth::{
        AccountKind, DEFAULT_ROLE, MAX_USER_PAGE, UserChange, UserSearch, UserSession,
        permissions::KNOWN_PERMISSIONS, store::UserRow,
    },
    clock::rfc3339,
    ids::{Actor, UserId},
    state::AppState,
};

pub fn router() -> Routes {
    Routes::new()
        .get("/api/users", list_users)
        .post("/api/users", create_user)
        .get("/api/users/{id}", get_user)
        .put("/api/users/{id}", update_user)
        .delete("/api/users/{id}", delete_user)
        .put("/api/users/{id}/password", set_password)
        .get("/api/users/{id}/sessions", list_user_sessions)
        .delete("/api/users/{id}/sessions", revoke_user_sessions)
        .delete("/api/users/{id}/sessions/{session_id}", revoke_user_session)
        .get("/api/permissions", list_permissions)
        .post("/api/permissions", set_permissions)
        .get("/api/permissions/user/{id}", user_permissions)
}

/// The public view of a user: never the password hash. `id` and `user_id` are the same (seed clients read
/// either).
#[derive(Serialize)]
pub struct UserView<'a> {
    id: &'a UserId,
    user_id: &'a UserId,
    username: &'a str,
    email: Option<&'a str>,
    full_name: Option<&'a str>,
    role: &'a str,
    is_admin: bool,
    is_active: bool,
    kind: AccountKind,
    created_at: String,
    last_login: Option<String>,
    login_count: i64,
}

impl<'a> UserView<'a> {
    pub fn of(u: &'a UserRow) -> UserView<'a> {
        UserView {
            id: &u.id,
            user_id: &u.id,
            username: &u.username,
            email: u.email.as_deref(),
            full_name: u.full_name.as_deref(),
            role: &u.role,
            is_admin: u.role == crate::auth::ADMIN_ROLE,
            is_active: u.is_active,
            kind: u.kind,
            created_at: rfc3339(u.created_at),
            last_login: u.last_login_at.map(rfc3339),
            login_count: u.login_count,
        }
    }
}

/// The seed's `{status, data}` envelope, with `success`.
#[derive(Serialize)]
struct Envelope<T> {
    success: bool,
    status: &'static str,
    data: T,
}

fn envelope<T: Serialize>(data: T) -> axum::Json<Envelope<T>> {
    axum::Json(Envelope {
        success: true,
        status: "success",
        data,
    })
}

/// A change that returns no data: `{success, status, message}`.
#[derive(Serialize)]
struct Done {
    success: bool,
    status: &'static str,
    message: &'static str,
}

fn done(message: &'static str) -> axum::Json<Done> {
    axum::Json(Done {
        success: true,
        status: "success",
        message,
    })
}

#[derive(Serialize)]
struct OneUser<'a> {
    user: UserView<'a>,
}

/// One page of users; `total` counts every match, `has_more` says a later page exists.
#[derive(Serialize)]
struct UserList<'a> {
    users: Vec<UserView<'a>>,
    total: i64,
    limit: u32,
    offset: u32,
    has_more: bool,
}

/// A user's session as an admin sees it: never a token.
#[derive(Serialize)]
struct SessionView<'a> {
    id: &'a str,
    kind: &'a str,
    created_at: String,
    last_seen_at: Option<String>,
    expires_at: String,
    client_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    current: bool,
    revoked: bool,
    revoked_at: Option<String>,
    revoke_reason: Option<&'a str>,
}

impl<'a> SessionView<'a> {
    fn of(s: &'a UserSession) -> SessionView<'a> {
        SessionView {
            id: &s.id,
            kind: &s.kind,
            created_at: rfc3339(s.created_at),
            last_seen_at: s.last_seen_at.map(rfc3339),
            expires_at: rfc3339(s.expires_at),
            client_ip: s.client_ip.as_deref(),
            user_agent: s.user_agent.as_deref(),
            current: s.current,
            revoked: s.revoked_at.is_some(),
            revoked_at: s.revoked_at.map(rfc3339),
            revoke_reason: s.revoke_reason.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct SessionList<'a> {
    user_id: &'a str,
    sessions: Vec<SessionView<'a>>,
}

#[derive(Serialize)]
struct Revoked {
    success: bool,
    status: &'static str,
    message: &'static str,
    revoked: usize,
}

#[derive(Serialize)]
struct RoleView {
    name: String,
    description: String,
    permissions: Vec<String>,
    require_mfa: bool,
}

#[derive(Serialize)]
struct RolesAndPermissions {
    roles: Vec<RoleView>,
    permissions: &'static [&'static str],
}

#[derive(Serialize)]
struct RoleSet {
    role: String,
    permissions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    require_mfa: Option<bool>,
}

#[derive(Serialize)]
struct UserPermissions<'a> {
    user_id: &'a UserId,
    username: &'a str,
    role: &'a str,
    permissions: &'a [String],
}

/// Ids are UUIDs; anything longer is not one of ours, and answers like a missing id.
fn user_id(id: &str) -> AppResult<&str> {
    if id.is_empty() || id.len() > 64 {
        Err(AppError::NotFound("User not found".into()))
    } else {
        Ok(id)
    }
}

fn user_not_found(e: AppError) -> AppError {
    match e {
        AppError::NotFound(_) => AppError::NotFound("User not found".into()),
        other => other,
    }
}

#[derive(Deserialize)]
struct ListUsers {
    q: Option<String>,
    role: Option<String>,
    active: Option<bool>,
    limit: Option<u32>,
    #[serde(default)]
    offset: u32,
}

impl ListUsers {
    /// Parsed at the edge: `limit` 1 to 200 (200 when left out, so unpaged clients see what they did), an
    /// empty `q` or `role` is no filter.
    fn parse(self) -> AppResult<UserSearch> {
        let limit = self.limit.unwrap_or(MAX_USER_PAGE);
        if limit == 0 || limit > MAX_USER_PAGE {
            return Err(AppError::Unprocessable(format!(
                "limit must be 1 to {MAX_USER_PAGE}"
            )));
        }
        let q = validated_text("q", self.q, 200)?.filter(|q| !q.trim().is_empty());
        let role = validated_text("role", self.role, 64)?.filter(|r| !r.is_empty());
        Ok(UserSearch {
            q: q.map(|q| q.trim().to_string()),
            role,
            active: self.active,
            limit,
            offset: self.offset,
        })
    }
}

async fn list_users(
    State(state): State<AppState>,
    _admin: Require<UsersManage>,
    Query(query): Query<ListUsers>,
) -> AppResult<Response> {
    let search = query.parse()?;
    let page = state.auth.search_users(&search).await?;
    let users: Vec<UserView> = page.users.iter().map(UserView::of).collect();
    let has_more = i64::from(search.offset) + (users.len() as i64) < page.total;
    Ok(envelope(UserList {
        users,
        total: page.total,
        limit: search.limit,
        offset: search.offset,
        has_more,
    })
    .into_response())
}

async fn list_user_sessions(
    State(state): State<AppState>,
    Require(admin, ..): Require<UsersManage>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let id = user_id(&id)?;
    let sessions = state
        .auth
        .user_sessions(&admin, id)
        .await
        .map_err(|e| user_not_found(e.into()))?;
    Ok(envelope(SessionList {
        user_id: id,
        sessions: sessions.iter().map(SessionView::of).collect(),
    })
    .into_response())
}

async fn revoke_user_session(
    State(state): State<AppState>,
    Require(admin, ..): Require<UsersManage>,
    Path((id, session_id)): Path<(String, String)>,
) -> AppResult<axum::Json<Revoked>> {
    let not_found = || AppError::NotFound("Session not found".into());
    if session_id.is_empty() || session_id.len() > 64 {
        return Err(not_found());
    }
    let was_live = state
        .auth
        .revoke_user_session(&admin, user_id(&id)?, &session_id)
        .await
        .map_err(|e| match AppError::from(e) {
            AppError::NotFound(_) => not_found(),
            other => other,
        })?;
    Ok(axum::Json(Revoked {
        success: true,
        status: "success",
        message: "Session revoked",
        revoked: usize::from(was_live),
    }))
}

async fn revoke_user_sessions(
    State(state): State<AppState>,
    Require(admin, ..): Require<UsersManage>,
    Path(id): Path<String>,
) -> AppResult<axum::Json<Revoked>> {
    let revoked = state
        .auth
        .revoke_all_user_sessions(&admin, user_id(&id)?)
        .await
        .map_err(|e| user_not_found(e.into()))?;
    Ok(axum::Json(Revoked {
        success: true,
        status: "success",
        message: "Sessions revoked",
        revoked,
    }))
}

#[derive(Deserialize)]
struct CreateUser {
    username: String,
    password: String,
    email: Option<String>,
    full_name: Option<String>,
    role: Option<String>,
}

async fn create_user(
    State(state): State<AppState>,
    Require(admin, ..): Require<UsersManage>,
    Json(body): Json<CreateUser>,
) -> AppResult<Response> {
    let email = validated_text("email", body.email, 254)?;
    let full_name = validated_text("full_name", body.full_name, 200)?;
    let role = body.role.unwrap_or_else(|| DEFAULT_ROLE.into());
    let row = state
        .auth
        .create_user_by(
            Some(&Actor::User(admin.account.id.clone())),
            &body.username,
            body.password,
            &role,
            email.as_deref(),
            full_name.as_deref(),
        )
        .await?;
    tracing::info!(actor = %admin.account.id, user = %row.id, "user created");
    Ok((
        StatusCode::CREATED,
        envelope(OneUser {
            user: UserView::of(&row),
        }),
    )
        .into_response())
}

fn validated_text(field: &str, value: Option<String>, max: usize) -> AppResult<Option<String>> {
    match value {
        Some(v) if v.chars().count() > max => Err(AppError::Unprocessable(format!(
            "{field} must be at most {max} characters"
        ))),
        Some(v) if v.chars().any(char::is_control) => Err(AppError::Unprocessable(format!(
            "{field} must not contain control characters"
        ))),
        other => Ok(other),
    }
}

async fn get_user(
    State(state): State<AppState>,
    _admin: Require<UsersManage>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let row = state
        .auth
        .find_user(user_id(&id)?)
        .await
        .map_err(|e| user_not_found(e.into()))?;
    Ok(envelope(OneUser {
        user: UserView::of(&row),
    })
    .into_response())
}

#[derive(Deserialize)]
struct UpdateUser {
    email: Option<String>,
    full_name: Option<String>,
    role: Option<String>,
    is_active: Option<bool>,
}

async fn update_user(
    State(state): State<AppState>,
    Require(admin, ..): Require<UsersManage>,
    Path(id): Path<String>,
    Json(body): Json<UpdateUser>,
) -> AppResult<Response> {
    let change = UserChange {
        email: validated_text("email", body.email, 254)?,
        full_name: validated_text("full_name", body.full_name, 200)?,
        role: body.role,
        is_active: body.is_active,
    };
    let row = state
        .auth
        .update_user(
            &Actor::User(admin.account.id.clone()),
            user_id(&id)?,
            change,
        )
        .await
        .map_err(|e| user_not_found(e.into()))?;
    Ok(envelope(OneUser {
        user: UserView::of(&row),
    })
    .into_response())
}

#[derive(Deserialize)]
struct SetPassword {
    new_password: String,
}

async fn set_password(
    State(state): State<AppState>,
    Require(admin, ..): Require<UsersManage>,
    Path(id): Path<String>,
    Json(body): Json<SetPassword>,
) -> AppResult<axum::Json<Done>> {
    let id = user_id(&id)?;
    // An admin resetting their own password keeps the session they are using.
    let keep = (admin.account.id == id).then_some(admin.session_id.as_str());
    state
        .auth
        .set_password(Some(admin.account.id.as_str()), id, body.new_password, keep)
        .await
        .map_err(|e| user_not_found(e.into()))?;
    Ok(done("Password updated"))
}

async fn delete_user(
    State(state): State<AppState>,
    Require(admin, ..): Require<UsersManage>,
    Path(id): Path<String>,
) -> AppResult<axum::Json<Done>> {
    state
        .auth
        .delete_user(&Actor::User(admin.account.id.clone()), user_id(&id)?)
        .await
        .map_err(|e| user_not_found(e.into()))?;
    Ok(done("User deleted"))
}

async fn list_permissions(
    State(state): State<AppState>,
    _admin: Require<UsersManage>,
) -> AppResult<axum::Json<Envelope<RolesAndPermissions>>> {
    let roles = state
        .auth
        .roles()
        .await?
        .into_iter()
        .map(|r| RoleView {
            name: r.name,
            description: r.description,
            permissions: r.permissions,
            require_mfa: r.require_mfa,
        })
        .collect();
    Ok(envelope(RolesAndPermissions {
        roles,
        permissions: KNOWN_PERMISSIONS,
    }))
}

#[derive(Deserialize)]
struct SetPermissions {
    role: String,
    #[serde(default)]
    description: String,
    permissions: Vec<String>,
    /// Members must enrol a second factor; left out, the role keeps its setting.
    #[serde(default)]
    require_mfa: Option<bool>,
}

async fn set_permissions(
    State(state): State<AppState>,
    Require(admin, ..): Require<UsersManage>,
    Json(body): Json<SetPermissions>,
) -> AppResult<axum::Json<Envelope<RoleSet>>> {
    state
        .auth
        .set_role_permissions(
            admin.account.id.as_str(),
            &body.role,
            &body.description,
            body.permissions.clone(),
            body.require_mfa,
        )
        .await?;
    Ok(envelope(RoleSet {
        role: body.role,
        permissions: body.permissions,
        require_mfa: body.require_mfa,
    }))
}

async fn user_permissions(
    State(state): State<AppState>,
    _admin: Require<UsersManage>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let account = state
        .auth
        .account(user_id(&id)?)
        .await?
        .ok_or_else(|| AppError::NotFound("User not found".into()))?;
    Ok(envelope(UserPermissions {
        user_id: &account.id,
        username: &account.username,
        role: &account.role,
        permissions: &account.permissions,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::UserView;
    use crate::auth::{AccountKind, store::UserRow};

    /// The typed view sends exactly what the `json!` it replaced sent.
    #[test]
    fn a_user_view_has_the_seed_fields() {
        let row = UserRow {
            id: "u1".into(),
            username: "Ann".into(),
            username_canonical: "ann".into(),
            kind: AccountKind::Person,
            password_hash: "secret-hash".into(),
            role: "admin".into(),
            email: Some("a@example.com".into()),
            full_name: None,
            is_active: true,
            created_at: 1_800_000_000_000,
            updated_at: 1_800_000_000_000,
            last_login_at: None,
            login_count: 3,
        };
        assert_eq!(
            serde_json::to_value(UserView::of(&row)).unwrap(),
            serde_json::json!({
                "id": "u1", "user_id": "u1", "username": "Ann", "email": "a@example.com", "full_name": null,
                "role": "admin", "is_admin": true, "is_active": true, "kind": "person",
                "created_at": "2027-01-15T08:00:00Z", "last_login": null, "login_count": 3,
            })
        );
    }

    use crate::auth::permissions::{TOOL_CALL_PREFIX, TOOLS_CALL_ALL, permission_matches};

    /// `tools` builds its permission names itself (it may not import `auth`); they must be the ones roles hold.
    #[test]
    fn tool_permissions_follow_the_pattern_auth_documents() {
        let wanted = crate::tools::permission_for("github__search");
        assert!(wanted.starts_with(TOOL_CALL_PREFIX));
        assert!(permission_matches(TOOLS_CALL_ALL, &wanted));
        assert_eq!(
            crate::tools::calls::READ_ALL_TOOL_CALLS,
            crate::auth::permissions::TOOL_CALLS_READ_ALL
        );
    }
}
