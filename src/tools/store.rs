//! The tools' SQL: the tool-call log (`tool_calls`) and the tool policy (`tool_policies`). Nothing else in
//! `tools` talks to the database; `log` and `policy` keep the formats, the writer and the in-memory rules.
//!
//! Writes go through the writer pool, reads through the shared one (see `store::Db`).

use serde_json::json;
use sqlx::AssertSqlSafe;

use super::call::Entry;
use crate::{
    clock::Millis,
    ids::{ConversationId, SessionId, UserId},
    store::{
        Db,
        multi_row::{bound_bytes, multi_row_insert, statements},
    },
};

/// How much of a result the table keeps (the JSON file shows 1,000 characters).
const STORED_RESULT_CHARS: usize = 16_000;

const CALL_COLUMNS: &str = "id, at, user_id, conversation_id, server, tool_name, tool_call_id, arguments, status, \
     duration_ms, result, result_length, error, source, approval, approver_id, metadata, session_id";

/// Stores a batch of finished calls in one transaction, many rows per statement.
pub async fn insert(db: &Db, entries: &[Entry]) -> sqlx::Result<()> {
    // What each row binds, made once: the size estimate and the binding read the same values.
    let rows: Vec<(&Entry, String, String, String)> = entries
        .iter()
        .map(|e| {
            let result: String = e.result.chars().take(STORED_RESULT_CHARS).collect();
            let metadata = json!({ "model": e.model, "api": e.api }).to_string();
            (e, e.arguments.to_string(), result, metadata)
        })
        .collect();
    let size = |(e, arguments, result, metadata): &(&Entry, String, String, String)| {
        bound_bytes(
            5,
            &[
                Some(arguments),
                Some(result),
                Some(metadata),
                Some(&e.server),
                Some(&e.tool_name),
                e.tool_call_id.as_deref(),
                e.error.as_deref(),
                e.approval.as_deref(),
            ],
        ) + 200
    };
    let mut tx = db.writer().begin().await?;
    for chunk in statements(&rows, size) {
        let sql = multi_row_insert(db.backend, "tool_calls", CALL_COLUMNS, 18, chunk.len(), "");
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (e, arguments, result, metadata) in chunk {
            q = q
                .bind(uuid::Uuid::now_v7().to_string())
                .bind(e.at_ms)
                .bind(e.user_id.as_ref().map(UserId::as_str))
                .bind(e.conversation_id.as_ref().map(ConversationId::as_str))
                .bind(e.server.as_str())
                .bind(e.tool_name.as_str())
                .bind(e.tool_call_id.as_deref())
                .bind(arguments.as_str())
                .bind(e.status.as_str())
                .bind(e.duration_ms)
                .bind(result.as_str())
                .bind(i64::try_from(e.result.chars().count()).unwrap_or(i64::MAX))
                .bind(e.error.as_deref())
                .bind(e.source)
                .bind(e.approval.as_deref())
                .bind(e.approver_id.as_ref().map(UserId::as_str))
                .bind(metadata.as_str())
                .bind(e.session_id.as_ref().map(SessionId::as_str));
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// One stored call, as the log endpoint lists it (`at` goes out as RFC 3339 `timestamp`, the arguments as
/// the JSON they were stored as).
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
pub struct Row {
    pub id: String,
    #[serde(rename = "timestamp")]
    pub at: Millis,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub conversation_id: Option<String>,
    pub server: String,
    pub tool_name: String,
    pub tool_call_id: Option<String>,
    #[serde(serialize_with = "json_or_text")]
    pub arguments: String,
    pub status: String,
    pub duration_ms: f64,
    pub result: Option<String>,
    pub result_length: i64,
    pub error: Option<String>,
    pub source: String,
    pub approval: Option<String>,
    pub approver_id: Option<String>,
}

/// Which calls `find` returns; unset fields match everything.
#[derive(Default)]
pub struct Filter {
    /// `None`: every user's calls (admins).
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub tool_name: Option<String>,
    pub status: Option<String>,
    pub conversation_id: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// Newest first. Each filter is either unset (`$n IS NULL`) or an exact match.
pub async fn find(db: &Db, f: &Filter) -> sqlx::Result<Vec<Row>> {
    sqlx::query_as(
        "SELECT id, at, user_id, session_id, conversation_id, server, tool_name, tool_call_id, arguments, status, \
         duration_ms, result, result_length, error, source, approval, approver_id FROM tool_calls \
         WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR tool_name = $2) AND ($3 IS NULL OR status = $3) \
         AND ($4 IS NULL OR conversation_id = $4) AND ($5 IS NULL OR session_id = $5) \
         ORDER BY at DESC, id DESC LIMIT $6 OFFSET $7",
    )
    .bind(f.user_id.as_deref())
    .bind(f.tool_name.as_deref())
    .bind(f.status.as_deref())
    .bind(f.conversation_id.as_deref())
    .bind(f.session_id.as_deref())
    .bind(f.limit)
    .bind(f.offset)
    .fetch_all(&db.pool)
    .await
}

/// Every policy rule as stored: (role, tool pattern, decision text, step-up flag 0/1).
pub async fn find_policies(db: &Db) -> sqlx::Result<Vec<(String, String, String, i64)>> {
    sqlx::query_as("SELECT role, tool_pattern, decision, step_up FROM tool_policies")
        .fetch_all(&db.pool)
        .await
}

/// Sets the rule for a role and pattern, replacing one already there.
pub async fn upsert_policy(
    db: &Db,
    role: &str,
    pattern: &str,
    decision: &str,
    step_up: bool,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO tool_policies (role, tool_pattern, decision, updated_at, step_up) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (role, tool_pattern) DO UPDATE SET decision = $3, updated_at = $4, step_up = $5",
    )
    .bind(role)
    .bind(pattern)
    .bind(decision)
    .bind(now)
    .bind(i64::from(step_up))
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Removes the rule for a role and pattern, if there is one.
pub async fn delete_policy(db: &Db, role: &str, pattern: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM tool_policies WHERE role = $1 AND tool_pattern = $2")
        .bind(role)
        .bind(pattern)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Stored JSON as JSON; anything else as its text.
fn json_or_text<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => v.serialize(s),
        Err(_) => s.serialize_str(text),
    }
}
