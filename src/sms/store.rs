//! The SQL of the SMS transaction log, `sms_transactions`. A send's row is inserted (pending) before the
//! provider is called and the limits are counted over the rows, the new one included: of concurrent sends over
//! a limit none slips through (each sees the others' pending rows), at worst one too many is refused.

use sqlx::{AnyPool, FromRow};

/// The kinds that send a message and so count towards the limits.
pub const SEND_KINDS: &str = "('sms', 'message', 'verification_send')";
/// The kinds that look a number up (each a paid provider call that reveals data about a person).
pub const LOOKUP_KINDS: &str = "('phone_id', 'risk')";

pub struct NewTransaction<'a> {
    pub id: &'a str,
    pub user_id: Option<&'a str>,
    pub kind: &'a str,
    pub number_masked: &'a str,
    pub number_hash: &'a str,
    pub reference_id: Option<&'a str>,
    pub now: i64,
}

pub async fn insert_transaction(pool: &AnyPool, t: &NewTransaction<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sms_transactions (id, user_id, kind, number_masked, number_hash, state, reference_id, \
         external_id, success, attempts, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $1, 0, 0, $7, $7)",
    )
    .bind(t.id)
    .bind(t.user_id)
    .bind(t.kind)
    .bind(t.number_masked)
    .bind(t.number_hash)
    .bind(t.reference_id)
    .bind(t.now)
    .execute(pool)
    .await?;
    Ok(())
}

/// How many counted rows a window holds, and when the oldest of them was made.
#[derive(Debug, FromRow)]
pub struct WindowCount {
    pub count: i64,
    pub oldest: Option<i64>,
}

/// What one limit counts: rows of some kinds, not refused, made since a time, by one user or to one number.
#[derive(Clone, Copy)]
pub enum Limit {
    /// Sends by a user (`SMS_USER_PER_HOUR`).
    UserSends,
    /// Lookups by a user (`SMS_LOOKUPS_PER_HOUR`).
    UserLookups,
    /// Sends to a number, from everyone (`SMS_NUMBER_PER_HOUR`).
    NumberSends,
    /// Distinct numbers a user sent to (`SMS_USER_NUMBERS_PER_DAY`).
    UserNumbers,
}

/// The rows `limit` counts for `key` (a user id, or a number's hash for `NumberSends`) since `since`.
pub async fn count_window(
    pool: &AnyPool,
    limit: Limit,
    key: &str,
    since: i64,
) -> sqlx::Result<WindowCount> {
    // Only these fixed fragments go into the text; the values are bound.
    let (counted, column, kinds) = match limit {
        Limit::UserSends => ("COUNT(*)", "user_id", SEND_KINDS),
        Limit::UserLookups => ("COUNT(*)", "user_id", LOOKUP_KINDS),
        Limit::NumberSends => ("COUNT(*)", "number_hash", SEND_KINDS),
        Limit::UserNumbers => ("COUNT(DISTINCT number_hash)", "user_id", SEND_KINDS),
    };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {counted} AS count, MIN(created_at) AS oldest FROM sms_transactions \
         WHERE {column} = $1 AND kind IN {kinds} AND state <> 'refused' AND created_at > $2"
    )))
    .bind(key)
    .bind(since)
    .fetch_one(pool)
    .await
}

/// What the provider answered (or why it did not).
pub struct Outcome<'a> {
    pub state: &'a str,
    pub reference_id: Option<&'a str>,
    pub status_code: Option<i64>,
    pub status_description: Option<&'a str>,
    pub error: Option<&'a str>,
    pub code_hmac: Option<&'a str>,
    pub now: i64,
}

pub async fn update_outcome(pool: &AnyPool, id: &str, o: &Outcome<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sms_transactions SET state = $2, reference_id = COALESCE($3, reference_id), status_code = $4, \
         status_description = $5, error = $6, success = $7, code_hmac = COALESCE($8, code_hmac), updated_at = $9 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(o.state)
    .bind(o.reference_id)
    .bind(o.status_code)
    .bind(o.status_description)
    .bind(o.error)
    .bind(i64::from(o.state == "ok"))
    .bind(o.code_hmac)
    .bind(o.now)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(Clone, Debug, FromRow)]
pub struct TransactionRow {
    pub id: String,
    pub user_id: Option<String>,
    pub kind: String,
    pub number_masked: String,
    pub number_hash: String,
    pub state: String,
    pub reference_id: Option<String>,
    pub external_id: String,
    pub status_code: Option<i64>,
    pub status_description: Option<String>,
    pub success: i64,
    pub error: Option<String>,
    pub final_status_code: Option<i64>,
    pub final_status: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, user_id, kind, number_masked, number_hash, state, reference_id, external_id, \
    status_code, status_description, success, error, final_status_code, final_status, attempts, created_at, \
    updated_at";

/// The send (SMS, message or verification) with provider reference `reference_id`.
pub async fn find_send_by_reference(
    pool: &AnyPool,
    reference_id: &str,
) -> sqlx::Result<Option<TransactionRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sms_transactions WHERE reference_id = $1 AND kind IN {SEND_KINDS} \
         ORDER BY created_at LIMIT 1"
    )))
    .bind(reference_id)
    .fetch_optional(pool)
    .await
}

/// Records a delivery status; false when the row already had exactly this one (a repeated receipt).
pub async fn update_final_status(
    pool: &AnyPool,
    id: &str,
    code: i64,
    description: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE sms_transactions SET final_status_code = $2, final_status = $3, updated_at = $4 \
         WHERE id = $1 AND (final_status_code IS NULL OR final_status_code <> $2 OR final_status <> $3)",
    )
    .bind(id)
    .bind(code)
    .bind(description)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// A verification that may still be checked: sent to this number by this user since `since`, not yet used.
#[derive(Debug, FromRow)]
pub struct OpenVerification {
    pub id: String,
    pub reference_id: Option<String>,
    pub code_hmac: Option<String>,
    pub attempts: i64,
}

pub async fn find_open_verification(
    pool: &AnyPool,
    user_id: &str,
    number_hash: &str,
    since: i64,
) -> sqlx::Result<Option<OpenVerification>> {
    sqlx::query_as(
        "SELECT id, reference_id, code_hmac, attempts FROM sms_transactions WHERE user_id = $1 \
         AND number_hash = $2 AND kind = 'verification_send' AND state = 'ok' AND final_status IS NULL \
         AND created_at > $3 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(user_id)
    .bind(number_hash)
    .bind(since)
    .fetch_optional(pool)
    .await
}

/// Counts one check of a verification; false when it had no attempts left (another check took the last one).
pub async fn take_verification_attempt(
    pool: &AnyPool,
    id: &str,
    max_attempts: i64,
    now: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE sms_transactions SET attempts = attempts + 1, updated_at = $3 \
         WHERE id = $1 AND attempts < $2 AND final_status IS NULL",
    )
    .bind(id)
    .bind(max_attempts)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Closes a verification (verified, or out of attempts): its code cannot be used again. The code's HMAC is
/// dropped with it.
pub async fn close_verification(
    pool: &AnyPool,
    id: &str,
    final_status: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE sms_transactions SET final_status = $2, code_hmac = NULL, updated_at = $3 \
         WHERE id = $1 AND final_status IS NULL",
    )
    .bind(id)
    .bind(final_status)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Which rows the admin view shows.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub number_hash: Option<String>,
    pub kind: Option<String>,
    pub failed_only: bool,
}

impl Filter {
    /// The WHERE clause (placeholders $1..$2 for number hash and kind, always bound).
    fn clause(&self) -> String {
        let mut parts = vec![
            "($1 = '' OR number_hash = $1)".to_string(),
            "($2 = '' OR kind = $2)".to_string(),
        ];
        if self.failed_only {
            parts.push("success = 0".into());
        }
        parts.join(" AND ")
    }
}

pub async fn find_all(
    pool: &AnyPool,
    filter: &Filter,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<TransactionRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sms_transactions WHERE {} ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
        filter.clause()
    )))
    .bind(filter.number_hash.clone().unwrap_or_default())
    .bind(filter.kind.clone().unwrap_or_default())
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
}

#[derive(Debug, FromRow)]
pub struct KindCount {
    pub kind: String,
    pub total: i64,
    pub successful: i64,
}

/// Rows and successes by kind, under `filter`.
pub async fn count_by_kind(pool: &AnyPool, filter: &Filter) -> sqlx::Result<Vec<KindCount>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT kind, COUNT(*) AS total, CAST(COALESCE(SUM(success), 0) AS BIGINT) AS successful FROM sms_transactions \
         WHERE {} GROUP BY kind ORDER BY kind",
        filter.clause()
    )))
    .bind(filter.number_hash.clone().unwrap_or_default())
    .bind(filter.kind.clone().unwrap_or_default())
    .fetch_all(pool)
    .await
}
