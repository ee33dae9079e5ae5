//! The SQL of the second-factor tables: `mfa_phones`, `mfa_totp`, `mfa_recovery_codes`, `mfa_challenges`
//! (login challenges, and step-up challenges: rows bound to one pending tool-call approval).
//! Every consumption of a code or a TOTP step is one conditional UPDATE checked by its row count, so of
//! several concurrent submissions exactly one wins (PostgreSQL re-checks the condition after the row lock).

use sqlx::{AnyPool, FromRow};

/// Wrong codes a challenge or a phone enrolment takes before even the right one fails.
pub const MAX_ATTEMPTS: i64 = 5;
/// Codes one challenge may send.
pub const MAX_SENDS: i64 = 5;
/// Time between two sends of one challenge or enrolment, ms.
pub const RESEND_MS: i64 = 30_000;

#[derive(Debug, FromRow)]
pub struct PhoneRow {
    pub number_sealed: String,
    pub number_masked: String,
    pub verified_at: Option<i64>,
    pub last_sent_at: Option<i64>,
}

pub async fn find_phone(pool: &AnyPool, user_id: &str) -> sqlx::Result<Option<PhoneRow>> {
    sqlx::query_as(
        "SELECT number_sealed, number_masked, verified_at, last_sent_at FROM mfa_phones WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await
}

pub struct NewPhoneCode<'a> {
    pub user_id: &'a str,
    pub number_sealed: &'a str,
    pub number_masked: &'a str,
    pub code_hmac: &'a str,
    pub now: i64,
    pub code_expires_at: i64,
}

/// Stores an unverified phone with a fresh code (replacing an unverified one and its code), unless the user
/// has a verified phone or a code went out less than `RESEND_MS` ago. True when stored.
pub async fn upsert_unverified_phone(pool: &AnyPool, p: &NewPhoneCode<'_>) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "INSERT INTO mfa_phones (user_id, number_sealed, number_masked, code_hmac, code_expires_at, attempts, sends, \
         last_sent_at, created_at) VALUES ($1, $2, $3, $4, $5, 0, 1, $6, $6) \
         ON CONFLICT (user_id) DO UPDATE SET number_sealed = $2, number_masked = $3, code_hmac = $4, \
         code_expires_at = $5, attempts = 0, sends = mfa_phones.sends + 1, last_sent_at = $6 \
         WHERE mfa_phones.verified_at IS NULL AND (mfa_phones.last_sent_at IS NULL OR mfa_phones.last_sent_at <= $7)",
    )
    .bind(p.user_id)
    .bind(p.number_sealed)
    .bind(p.number_masked)
    .bind(p.code_hmac)
    .bind(p.code_expires_at)
    .bind(p.now)
    .bind(p.now - RESEND_MS)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Verifies the pending phone if `code_hmac` is its live code and it has attempts left. True when verified.
pub async fn verify_phone(
    pool: &AnyPool,
    user_id: &str,
    code_hmac: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE mfa_phones SET verified_at = $1, code_hmac = NULL, code_expires_at = NULL WHERE user_id = $2 \
         AND verified_at IS NULL AND code_hmac = $3 AND code_expires_at > $1 AND attempts < $4",
    )
    .bind(now)
    .bind(user_id)
    .bind(code_hmac)
    .bind(MAX_ATTEMPTS)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn record_phone_failure(pool: &AnyPool, user_id: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE mfa_phones SET attempts = attempts + 1 WHERE user_id = $1 AND verified_at IS NULL",
    )
    .bind(user_id)
    .execute(pool)
    .await
    .map(|_| ())
}

pub async fn delete_unverified_phone(pool: &AnyPool, user_id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM mfa_phones WHERE user_id = $1 AND verified_at IS NULL")
        .bind(user_id)
        .execute(pool)
        .await
        .map(|_| ())
}

pub async fn delete_phone(pool: &AnyPool, user_id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query("DELETE FROM mfa_phones WHERE user_id = $1")
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

// TOTP.

#[derive(Debug, FromRow)]
pub struct TotpRow {
    pub secret_sealed: String,
    pub confirmed_at: Option<i64>,
}

pub async fn find_totp(pool: &AnyPool, user_id: &str) -> sqlx::Result<Option<TotpRow>> {
    sqlx::query_as("SELECT secret_sealed, confirmed_at FROM mfa_totp WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await
}

/// Stores a new, unconfirmed secret (replacing an unconfirmed one); false when a confirmed one exists.
pub async fn upsert_unconfirmed_totp(
    pool: &AnyPool,
    user_id: &str,
    secret_sealed: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "INSERT INTO mfa_totp (user_id, secret_sealed, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET secret_sealed = $2, created_at = $3, last_step = NULL \
         WHERE mfa_totp.confirmed_at IS NULL",
    )
    .bind(user_id)
    .bind(secret_sealed)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Confirms the unconfirmed secret with the step its first code used, and replaces the user's recovery codes,
/// in one transaction. False when there was nothing to confirm (a concurrent confirmation won).
pub async fn confirm_totp(
    pool: &AnyPool,
    user_id: &str,
    step: i64,
    recovery_hmacs: &[String],
    now: i64,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let r = sqlx::query(
        "UPDATE mfa_totp SET confirmed_at = $1, last_step = $2 WHERE user_id = $3 AND confirmed_at IS NULL",
    )
    .bind(now)
    .bind(step)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    if r.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    for h in recovery_hmacs {
        sqlx::query(
            "INSERT INTO mfa_recovery_codes (code_hmac, user_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(h)
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Records `step` as the user's newest used step if it is newer than the last one: the one place a TOTP step
/// is spent, so none is accepted twice. True when this caller spent it.
async fn spend_totp_step(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    step: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE mfa_totp SET last_step = $1 WHERE user_id = $2 AND confirmed_at IS NOT NULL \
         AND (last_step IS NULL OR last_step < $1)",
    )
    .bind(step)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Spends a step of the confirmed secret and deletes it and the recovery codes, in one transaction (removal
/// needs a current code). True when removed.
pub async fn delete_totp_with_step(pool: &AnyPool, user_id: &str, step: i64) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    if !spend_totp_step(&mut tx, user_id, step).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query("DELETE FROM mfa_totp WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn count_recovery_codes_left(pool: &AnyPool, user_id: &str) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await?;
    Ok(n)
}

// Login challenges.

#[derive(Debug, FromRow)]
pub struct ChallengeRow {
    pub user_id: String,
    pub mode: String,
    pub expires_at: i64,
    pub attempts: i64,
    pub used_at: Option<i64>,
    pub code_expires_at: Option<i64>,
    pub sends: i64,
    pub last_sent_at: Option<i64>,
}

pub struct NewChallenge<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub mode: &'a str,
    pub now: i64,
    pub expires_at: i64,
    /// The SMS code sent with the challenge, if any, and when it expires.
    pub code: Option<(&'a str, i64)>,
}

pub async fn insert_challenge(pool: &AnyPool, c: &NewChallenge<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO mfa_challenges (id, user_id, mode, created_at, expires_at, attempts, code_hmac, code_expires_at, \
         sends, last_sent_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9)",
    )
    .bind(c.id)
    .bind(c.user_id)
    .bind(c.mode)
    .bind(c.now)
    .bind(c.expires_at)
    .bind(c.code.map(|(h, _)| h))
    .bind(c.code.map(|(_, e)| e))
    .bind(i64::from(c.code.is_some()))
    .bind(c.code.map(|_| c.now))
    .execute(pool)
    .await
    .map(|_| ())
}

pub async fn find_challenge(pool: &AnyPool, id: &str) -> sqlx::Result<Option<ChallengeRow>> {
    sqlx::query_as(
        "SELECT user_id, mode, expires_at, attempts, used_at, code_expires_at, sends, last_sent_at \
         FROM mfa_challenges WHERE id = $1 AND approval_id IS NULL",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Puts a new code on a live challenge (the older one stops working), unless it sent one less than
/// `RESEND_MS` ago or has sent `MAX_SENDS`. True when replaced.
pub async fn replace_challenge_code(
    pool: &AnyPool,
    id: &str,
    code_hmac: &str,
    code_expires_at: i64,
    now: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE mfa_challenges SET code_hmac = $1, code_expires_at = $2, sends = sends + 1, last_sent_at = $3 \
         WHERE id = $4 AND used_at IS NULL AND expires_at > $3 AND attempts < $5 AND sends < $6 \
         AND (last_sent_at IS NULL OR last_sent_at <= $7)",
    )
    .bind(code_hmac)
    .bind(code_expires_at)
    .bind(now)
    .bind(id)
    .bind(MAX_ATTEMPTS)
    .bind(MAX_SENDS)
    .bind(now - RESEND_MS)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The condition under which a challenge can still be completed.
const LIVE: &str = "used_at IS NULL AND expires_at > $1 AND attempts < $3";

/// Completes a challenge with its SMS code: exactly one concurrent caller gets true.
pub async fn consume_challenge_code(
    pool: &AnyPool,
    id: &str,
    code_hmac: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE mfa_challenges SET used_at = $1 WHERE id = $2 AND {LIVE} AND code_hmac = $4 AND code_expires_at > $1"
    )))
    .bind(now)
    .bind(id)
    .bind(MAX_ATTEMPTS)
    .bind(code_hmac)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Completes a challenge with a TOTP step, spending the step, in one transaction: true only when both the
/// challenge was live and the step unused.
pub async fn consume_challenge_with_totp(
    pool: &AnyPool,
    id: &str,
    user_id: &str,
    step: i64,
    now: i64,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let ok =
        claim_challenge(&mut tx, id, now).await? && spend_totp_step(&mut tx, user_id, step).await?;
    if ok {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(ok)
}

/// Completes a challenge with a recovery code, spending the code, in one transaction.
pub async fn consume_challenge_with_recovery_code(
    pool: &AnyPool,
    id: &str,
    user_id: &str,
    code_hmac: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let ok = claim_challenge(&mut tx, id, now).await?
        && {
            let r = sqlx::query(
            "UPDATE mfa_recovery_codes SET used_at = $1 WHERE code_hmac = $2 AND user_id = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(code_hmac)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
            r.rows_affected() == 1
        };
    if ok {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(ok)
}

async fn claim_challenge(conn: &mut sqlx::AnyConnection, id: &str, now: i64) -> sqlx::Result<bool> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE mfa_challenges SET used_at = $1 WHERE id = $2 AND {LIVE}"
    )))
    .bind(now)
    .bind(id)
    .bind(MAX_ATTEMPTS)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Counts one wrong code against a challenge still open.
pub async fn record_challenge_failure(pool: &AnyPool, id: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE mfa_challenges SET attempts = attempts + 1 WHERE id = $1 AND used_at IS NULL",
    )
    .bind(id)
    .execute(pool)
    .await
    .map(|_| ())
}

// Step-up challenges: one per pending approval (`approval_id` is unique), completed with the same
// `consume_challenge_code` / `consume_challenge_with_totp` and counted with `record_challenge_failure` as a login.

/// A step-up challenge as the service checks it.
#[derive(Debug, FromRow)]
pub struct StepUpRow {
    pub id: String,
    pub expires_at: i64,
    pub attempts: i64,
    pub used_at: Option<i64>,
    pub code_expires_at: Option<i64>,
    pub sends: i64,
    pub last_sent_at: Option<i64>,
}

pub struct NewStepUp<'a> {
    /// A fresh id, used only if the approval has no challenge yet.
    pub id: &'a str,
    pub user_id: &'a str,
    pub approval_id: &'a str,
    /// The SHA-256 of the binding (approver, approval, tool, arguments).
    pub binding: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

/// Puts a fresh SMS code on the approval's challenge (creating it), and moves its expiry to the code's; refused
/// (false) when the challenge is used, took `MAX_ATTEMPTS` wrong codes, sent `MAX_SENDS`, or sent one less than
/// `RESEND_MS` ago.
pub async fn upsert_step_up_code(
    pool: &AnyPool,
    c: &NewStepUp<'_>,
    code_hmac: &str,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "INSERT INTO mfa_challenges (id, user_id, mode, created_at, expires_at, attempts, code_hmac, code_expires_at, \
         sends, last_sent_at, approval_id, binding) VALUES ($1, $2, 'step_up', $3, $4, 0, $5, $4, 1, $3, $6, $7) \
         ON CONFLICT (approval_id) DO UPDATE SET code_hmac = $5, code_expires_at = $4, expires_at = $4, \
         sends = mfa_challenges.sends + 1, last_sent_at = $3 \
         WHERE mfa_challenges.user_id = $2 AND mfa_challenges.binding = $7 AND mfa_challenges.used_at IS NULL \
         AND mfa_challenges.attempts < $8 AND mfa_challenges.sends < $9 \
         AND (mfa_challenges.last_sent_at IS NULL OR mfa_challenges.last_sent_at <= $10)",
    )
    .bind(c.id)
    .bind(c.user_id)
    .bind(c.now)
    .bind(c.expires_at)
    .bind(code_hmac)
    .bind(c.approval_id)
    .bind(c.binding)
    .bind(MAX_ATTEMPTS)
    .bind(MAX_SENDS)
    .bind(c.now - RESEND_MS)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Creates the approval's challenge without a code (a TOTP approval counts its attempts there); nothing when
/// the approval has one already.
pub async fn insert_step_up_challenge(pool: &AnyPool, c: &NewStepUp<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO mfa_challenges (id, user_id, mode, created_at, expires_at, attempts, sends, approval_id, binding) \
         VALUES ($1, $2, 'step_up', $3, $4, 0, 0, $5, $6) ON CONFLICT (approval_id) DO NOTHING",
    )
    .bind(c.id)
    .bind(c.user_id)
    .bind(c.now)
    .bind(c.expires_at)
    .bind(c.approval_id)
    .bind(c.binding)
    .execute(pool)
    .await
    .map(|_| ())
}

/// The challenge of `approval_id`, if it is `user_id`'s and bound to `binding`.
pub async fn find_step_up_challenge(
    pool: &AnyPool,
    approval_id: &str,
    user_id: &str,
    binding: &str,
) -> sqlx::Result<Option<StepUpRow>> {
    sqlx::query_as(
        "SELECT id, expires_at, attempts, used_at, code_expires_at, sends, last_sent_at FROM mfa_challenges \
         WHERE approval_id = $1 AND user_id = $2 AND binding = $3",
    )
    .bind(approval_id)
    .bind(user_id)
    .bind(binding)
    .fetch_optional(pool)
    .await
}
