//! The SQL of conversations, messages and daily usage. Every read and write of a conversation names its owner
//! in the WHERE clause: another user's id finds nothing, exactly like a missing one.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock},
};

use parking_lot::Mutex;
use sqlx::{Any, AnyConnection, AnyPool, Executor, FromRow};

use crate::{
    ids::{ConversationId, UserId},
    store::Backend,
};

#[derive(Clone, Debug, FromRow)]
pub struct SessionRow {
    pub id: ConversationId,
    pub user_id: UserId,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub message_count: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub metadata: String,
}

const SESSION_COLUMNS: &str = "id, user_id, title, created_at, updated_at, message_count, input_tokens, output_tokens, metadata";

#[derive(Clone, Debug, FromRow)]
pub struct MessageRow {
    pub id: String,
    pub session_id: ConversationId,
    pub seq: i64,
    pub role: String,
    pub content: String,
    pub created_at: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub tool_calls: Option<String>,
    pub tool_call_id: Option<String>,
    pub metadata: String,
}

const MESSAGE_COLUMNS: &str = "id, session_id, seq, role, content, created_at, input_tokens, output_tokens, tool_calls, tool_call_id, metadata";

pub async fn insert_session<'e>(
    db: impl Executor<'e, Database = Any>,
    id: &str,
    user_id: &str,
    title: &str,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO chat_sessions (id, user_id, title, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
        .bind(id)
        .bind(user_id)
        .bind(title)
        .bind(now)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn find_session<'e>(
    db: impl Executor<'e, Database = Any>,
    user_id: &str,
    id: &str,
) -> sqlx::Result<Option<SessionRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE id = $1 AND user_id = $2"
    )))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await
}

pub async fn find_sessions(
    pool: &AnyPool,
    user_id: &str,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<SessionRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM chat_sessions WHERE user_id = $1 ORDER BY updated_at DESC, id DESC LIMIT $2 OFFSET $3"
    )))
    .bind(user_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
}

pub async fn count_sessions(pool: &AnyPool, user_id: &str) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM chat_sessions WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(pool)
        .await?;
    Ok(n)
}

pub async fn delete_session(pool: &AnyPool, user_id: &str, id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query("DELETE FROM chat_sessions WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// The last `limit` messages of a conversation, oldest first (the caller has checked ownership).
pub async fn find_last_messages<'e>(
    db: impl Executor<'e, Database = Any>,
    session_id: &str,
    limit: i64,
) -> sqlx::Result<Vec<MessageRow>> {
    let mut rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE session_id = $1 ORDER BY seq DESC LIMIT $2"
    )))
    .bind(session_id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.reverse();
    Ok(rows)
}

/// A message as the model's history needs it (the window read when it is not in memory: no more columns than
/// that), with its place in the conversation.
#[derive(Clone, Debug, FromRow)]
pub struct HistoryRow {
    pub seq: i64,
    pub role: String,
    pub content: String,
    pub tool_calls: Option<String>,
    pub tool_call_id: Option<String>,
    pub metadata: String,
}

/// The `limit` messages of a conversation up to place `upto` as history for the model, oldest first (the caller
/// has checked ownership). Bounded by `upto`, the same window whatever was appended since.
pub async fn find_history_window<'e>(
    db: impl Executor<'e, Database = Any>,
    session_id: &str,
    upto: i64,
    limit: usize,
) -> sqlx::Result<Vec<HistoryRow>> {
    // The length is written into the SQL, not bound: SQLite plans with a bound LIMIT's value, so each new binding
    // would make it compile the statement again.
    let mut rows: Vec<HistoryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT seq, role, content, tool_calls, tool_call_id, metadata FROM chat_messages \
         WHERE session_id = $1 AND seq <= $2 ORDER BY seq DESC LIMIT {limit}"
    )))
    .bind(session_id)
    .bind(upto)
    .fetch_all(db)
    .await?;
    rows.reverse();
    Ok(rows)
}

#[derive(Clone)]
pub struct NewMessage {
    pub role: &'static str,
    pub content: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub tool_calls: Option<String>,
    pub tool_call_id: Option<String>,
    pub metadata: String,
}

/// Appends messages to a conversation the user owns and adds their tokens to the conversation and to the user's
/// day, inside the caller's transaction (a piece of the group commit). Returns the rows as written; `None` if the
/// conversation is not theirs.
///
/// The conversation's row is updated first: its lock orders concurrent turns of one conversation, and its new
/// `message_count` numbers the messages. On PostgreSQL the writes are one statement (data-modifying CTEs); on
/// SQLite, whose statements each cross to the connection's worker thread and back, they are one query string of
/// several statements, one crossing.
pub async fn append_messages(
    conn: &mut AnyConnection,
    backend: Backend,
    user_id: &str,
    session_id: &str,
    day: &str,
    messages: &[NewMessage],
    now: i64,
) -> sqlx::Result<Option<Vec<MessageRow>>> {
    let ids: Vec<String> = messages
        .iter()
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let append = Append {
        user_id,
        session_id,
        day,
        messages,
        ids: &ids,
        now,
        input: messages.iter().map(|m| m.input_tokens).sum(),
        output: messages.iter().map(|m| m.output_tokens).sum(),
    };
    let Some(count) = append.run(conn, backend).await? else {
        return Ok(None);
    };
    let n = append.n();
    let rows = messages
        .iter()
        .zip(ids)
        .zip(1..)
        .map(|((m, id), i)| MessageRow {
            id,
            session_id: ConversationId::from(session_id),
            seq: count - n + i,
            role: m.role.to_string(),
            content: m.content.clone(),
            created_at: now,
            input_tokens: m.input_tokens,
            output_tokens: m.output_tokens,
            tool_calls: m.tool_calls.clone(),
            tool_call_id: m.tool_call_id.clone(),
            metadata: m.metadata.clone(),
        })
        .collect();
    Ok(Some(rows))
}

/// The conversation's share of an append, on both backends: $1 messages, $2 now, $3 and $4 tokens, $5 the
/// conversation, $6 its owner.
const UPDATE_CONVERSATION: &str = "UPDATE chat_sessions SET message_count = message_count + $1, updated_at = $2, \
     input_tokens = input_tokens + $3, output_tokens = output_tokens + $4 WHERE id = $5 AND user_id = $6";

/// One append's values, for the two ways of writing it.
struct Append<'a> {
    user_id: &'a str,
    session_id: &'a str,
    day: &'a str,
    messages: &'a [NewMessage],
    ids: &'a [String],
    now: i64,
    input: i64,
    output: i64,
}

impl Append<'_> {
    fn n(&self) -> i64 {
        i64::try_from(self.messages.len()).unwrap_or(i64::MAX)
    }

    /// Runs the append: the conversation's new count, or `None` when the conversation is not the user's
    /// (nothing is written then).
    async fn run(&self, conn: &mut AnyConnection, backend: Backend) -> sqlx::Result<Option<i64>> {
        let sql = append_sql(backend, self.messages.len(), self.input + self.output > 0);
        let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(self.n())
            .bind(self.now)
            .bind(self.input)
            .bind(self.output)
            .bind(self.session_id)
            .bind(self.user_id)
            .bind(self.day)
            .bind(self.input + self.output);
        for (m, id) in self.messages.iter().zip(self.ids) {
            q = q
                .bind(id.as_str())
                .bind(m.role)
                .bind(m.content.as_str())
                .bind(m.input_tokens)
                .bind(m.output_tokens)
                .bind(m.tool_calls.as_deref())
                .bind(m.tool_call_id.as_deref())
                .bind(m.metadata.as_str());
        }
        // fetch_all, not fetch_optional: on SQLite the latter reads only the first statement's result, and
        // dropping the rest would stop the statements after it.
        Ok(q.fetch_all(&mut *conn).await?.pop())
    }
}

/// Appends of up to this many messages have their SQL kept (`append_sql`); longer ones (a step of many tool calls)
/// are rare and formatted each time.
const KEPT_SHAPES: usize = 16;

type Shapes = HashMap<(Backend, usize, bool), Arc<str>>;

/// The append's SQL for `n` messages, with or without tokens to count, formatted once per shape (a turn's
/// appends come in a few shapes, and formatting the statement cost more than binding its values).
fn append_sql(backend: Backend, n: usize, with_usage: bool) -> Arc<str> {
    static SHAPES: LazyLock<Mutex<Shapes>> = LazyLock::new(Mutex::default);
    // PostgreSQL's statement decides on the usage row itself (`WHERE $8 > 0`): one shape per length.
    let with_usage = with_usage && backend == Backend::Sqlite;
    let format = || -> Arc<str> {
        Arc::from(match backend {
            Backend::Postgres => postgres_sql(n),
            Backend::Sqlite => sqlite_sql(n, with_usage),
        })
    };
    if n > KEPT_SHAPES {
        return format();
    }
    SHAPES
        .lock()
        .entry((backend, n, with_usage))
        .or_insert_with(format)
        .clone()
}

/// SQLite: several statements in one query string, run in order on the connection's worker thread (one
/// crossing to it and back); only the last returns a row (an `UPDATE ... RETURNING` instead made SQLite's own work
/// per turn a quarter larger under callgrind).
fn sqlite_sql(n: usize, with_usage: bool) -> String {
    let owned = "SELECT message_count FROM chat_sessions WHERE id = $5 AND user_id = $6";
    let mut sql = format!(
        "{UPDATE_CONVERSATION}; \
         WITH v (id, i, role, content, input_tokens, output_tokens, tool_calls, tool_call_id, metadata) AS \
         (VALUES {}) INSERT INTO chat_messages ({MESSAGE_COLUMNS}) SELECT v.id, $5, s.message_count - $1 + v.i, \
         v.role, v.content, $2, v.input_tokens, v.output_tokens, v.tool_calls, v.tool_call_id, v.metadata \
         FROM ({owned}) AS s, v;",
        message_values(n, 9)
    );
    if with_usage {
        sql.push_str(&format!(
            " INSERT INTO usage_daily (user_id, day, tokens) SELECT $6, $7, $8 FROM ({owned}) \
             WHERE true ON CONFLICT (user_id, day) DO UPDATE SET tokens = usage_daily.tokens + excluded.tokens;"
        ));
    }
    sql.push_str(&format!(" {owned};"));
    sql
}

/// PostgreSQL: one statement of data-modifying CTEs; each runs once, and when the update finds no row (not
/// the user's conversation) the inserts select nothing and the statement returns no row.
fn postgres_sql(n: usize) -> String {
    format!(
        "WITH s AS ({UPDATE_CONVERSATION} RETURNING message_count), \
         m AS (INSERT INTO chat_messages ({MESSAGE_COLUMNS}) SELECT v.id, $5, s.message_count - $1 + v.i, v.role, \
         v.content, $2, v.input_tokens, v.output_tokens, v.tool_calls, v.tool_call_id, v.metadata FROM s, \
         (VALUES {}) AS v (id, i, role, content, input_tokens, output_tokens, tool_calls, tool_call_id, metadata)), \
         u AS (INSERT INTO usage_daily (user_id, day, tokens) SELECT $6, $7, $8 FROM s WHERE $8 > 0 \
         ON CONFLICT (user_id, day) DO UPDATE SET tokens = usage_daily.tokens + EXCLUDED.tokens) \
         SELECT s.message_count FROM s",
        message_values(n, 9)
    )
}

/// `($b, 1, $b+1, ..., $b+6), ($b+8, 2, ...)`: the VALUES rows of `n` messages whose 8 parameters each start
/// at `$first` (id, then its place `i` as a literal, role, content, input and output tokens, tool calls, tool call
/// id, metadata).
fn message_values(n: usize, first: usize) -> String {
    (0..n)
        .map(|i| {
            let b = first + 8 * i;
            format!(
                "(${b}, {}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                i + 1,
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn find_day_usage(pool: &AnyPool, user_id: &str, day: &str) -> sqlx::Result<i64> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT tokens FROM usage_daily WHERE user_id = $1 AND day = $2")
            .bind(user_id)
            .bind(day)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(t,)| t).unwrap_or(0))
}

/// (sessions, messages, input tokens, output tokens) over all of a user's conversations.
pub async fn find_user_totals(pool: &AnyPool, user_id: &str) -> sqlx::Result<(i64, i64, i64, i64)> {
    sqlx::query_as(
        // PostgreSQL sums BIGINT into NUMERIC, which the Any driver cannot read: cast back.
        "SELECT COUNT(*), CAST(COALESCE(SUM(message_count), 0) AS BIGINT), CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), \
         CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) FROM chat_sessions WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await
}
