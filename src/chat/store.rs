//! The SQL of conversations, messages and daily usage. Every read and write of a conversation names its owner
//! in the WHERE clause: another user's id finds nothing, exactly like a missing one.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock},
};

use futures::future::BoxFuture;
use parking_lot::Mutex;
use rusqlite::{ToSql, params};
use sqlx::{Any, AnyConnection, AnyPool, Executor, FromRow};

use crate::{
    ids::{ConversationId, UserId},
    store::{Backend, Piece},
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
/// day: a piece of the group commit, whose value is the rows as written, or `None` if the conversation is not
/// theirs (nothing is written then).
///
/// The conversation's row is updated first: its lock orders concurrent turns of one conversation, and its new
/// `message_count` numbers the messages.
pub struct Append {
    pub user_id: String,
    pub session_id: String,
    pub day: String,
    pub messages: Vec<NewMessage>,
    pub now: i64,
}

impl Append {
    fn n(&self) -> i64 {
        i64::try_from(self.messages.len()).unwrap_or(i64::MAX)
    }

    fn tokens(&self) -> (i64, i64) {
        let input = self.messages.iter().map(|m| m.input_tokens).sum();
        let output = self.messages.iter().map(|m| m.output_tokens).sum();
        (input, output)
    }

    /// The rows as written, the last of them at place `count` (the conversation's new message count).
    fn rows(&self, ids: Vec<String>, count: i64) -> Vec<MessageRow> {
        self.messages
            .iter()
            .zip(ids)
            .zip(count - self.n() + 1..)
            .map(|((m, id), seq)| MessageRow {
                id,
                session_id: ConversationId::from(self.session_id.as_str()),
                seq,
                role: m.role.to_string(),
                content: m.content.clone(),
                created_at: self.now,
                input_tokens: m.input_tokens,
                output_tokens: m.output_tokens,
                tool_calls: m.tool_calls.clone(),
                tool_call_id: m.tool_call_id.clone(),
                metadata: m.metadata.clone(),
            })
            .collect()
    }
}

fn new_ids(n: usize) -> Vec<String> {
    (0..n).map(|_| uuid::Uuid::now_v7().to_string()).collect()
}

impl Piece for Append {
    type Value = Option<Vec<MessageRow>>;

    /// PostgreSQL: one statement of data-modifying CTEs (`append_sql`).
    fn run_pooled<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> BoxFuture<'c, sqlx::Result<Self::Value>> {
        Box::pin(async move {
            let ids = new_ids(self.messages.len());
            let (input, output) = self.tokens();
            let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(append_sql(
                Backend::Postgres,
                self.messages.len(),
            )))
            .bind(self.n())
            .bind(self.now)
            .bind(input)
            .bind(output)
            .bind(&self.session_id)
            .bind(&self.user_id)
            .bind(&self.day)
            .bind(input + output);
            for (m, id) in self.messages.iter().zip(&ids) {
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
            let count: Option<i64> = q.fetch_optional(&mut *conn).await?;
            Ok(count.map(|count| self.rows(ids, count)))
        })
    }

    /// SQLite: a few statements, each kept prepared on the writer's connection.
    fn run_sqlite(&self, conn: &rusqlite::Connection) -> rusqlite::Result<Self::Value> {
        let (input, output) = self.tokens();
        let updated = conn
            .prepare_cached(&SQLITE_UPDATE_CONVERSATION)?
            .execute(params![
                self.n(),
                self.now,
                input,
                output,
                self.session_id,
                self.user_id
            ])?;
        if updated == 0 {
            return Ok(None);
        }
        let count: i64 = conn
            .prepare_cached(
                "SELECT message_count FROM chat_sessions WHERE id = ?1 AND user_id = ?2",
            )?
            .query_row([&self.session_id, &self.user_id], |row| row.get(0))?;
        let ids = new_ids(self.messages.len());
        let mut insert = conn.prepare_cached(&append_sql(Backend::Sqlite, self.messages.len()))?;
        let mut at = 0;
        for ((m, id), seq) in self.messages.iter().zip(&ids).zip(count - self.n() + 1..) {
            let values: [&dyn ToSql; 11] = [
                id,
                &self.session_id,
                &seq,
                &m.role,
                &m.content,
                &self.now,
                &m.input_tokens,
                &m.output_tokens,
                &m.tool_calls,
                &m.tool_call_id,
                &m.metadata,
            ];
            for value in values {
                at += 1;
                insert.raw_bind_parameter(at, value)?;
            }
        }
        insert.raw_execute()?;
        if input + output > 0 {
            conn.prepare_cached(
                "INSERT INTO usage_daily (user_id, day, tokens) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (user_id, day) DO UPDATE SET tokens = usage_daily.tokens + excluded.tokens",
            )?
            .execute(params![self.user_id, self.day, input + output])?;
        }
        Ok(Some(self.rows(ids, count)))
    }

    /// PostgreSQL: the appends as one statement (`APPEND_TOGETHER`), their values passed as two JSON arrays (the
    /// Any driver binds no arrays).
    fn run_pooled_together<'c>(
        appends: Vec<&'c Self>,
        conn: &'c mut AnyConnection,
    ) -> Option<BoxFuture<'c, sqlx::Result<Vec<Self::Value>>>> {
        Some(Box::pin(async move {
            let ids: Vec<Vec<String>> = appends.iter().map(|a| new_ids(a.messages.len())).collect();
            let (pieces, messages) = together_json(&appends, &ids);
            let counts: Vec<(i32, i64)> = sqlx::query_as(APPEND_TOGETHER.as_str())
                .bind(pieces)
                .bind(messages)
                .fetch_all(&mut *conn)
                .await?;
            let mut count_of = vec![None; appends.len()];
            for (k, count) in counts {
                if let Some(slot) = usize::try_from(k).ok().and_then(|k| count_of.get_mut(k)) {
                    *slot = Some(count);
                }
            }
            Ok(appends
                .iter()
                .zip(ids)
                .zip(count_of)
                .map(|((append, ids), count)| count.map(|count| append.rows(ids, count)))
                .collect())
        }))
    }
}

/// The appends' values for `APPEND_TOGETHER`: one JSON array of the appends (`k` their place), one of their
/// messages (`j` a message's place in its append).
fn together_json(appends: &[&Append], ids: &[Vec<String>]) -> (String, String) {
    #[derive(serde::Serialize)]
    struct Piece<'a> {
        k: usize,
        s: &'a str,
        u: &'a str,
        n: i64,
        now: i64,
        i: i64,
        o: i64,
        d: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Message<'a> {
        k: usize,
        j: usize,
        id: &'a str,
        role: &'a str,
        content: &'a str,
        it: i64,
        ot: i64,
        tc: Option<&'a str>,
        tci: Option<&'a str>,
        meta: &'a str,
    }
    let mut pieces = Vec::with_capacity(appends.len());
    let mut messages = Vec::new();
    for (k, (append, ids)) in appends.iter().zip(ids).enumerate() {
        let (i, o) = append.tokens();
        pieces.push(Piece {
            k,
            s: &append.session_id,
            u: &append.user_id,
            n: append.n(),
            now: append.now,
            i,
            o,
            d: &append.day,
        });
        for (j, (m, id)) in append.messages.iter().zip(ids).enumerate() {
            messages.push(Message {
                k,
                j: j + 1,
                id,
                role: m.role,
                content: &m.content,
                it: m.input_tokens,
                ot: m.output_tokens,
                tc: m.tool_calls.as_deref(),
                tci: m.tool_call_id.as_deref(),
                meta: &m.metadata,
            });
        }
    }
    (
        serde_json::to_string(&pieces).expect("plain values serialise"),
        serde_json::to_string(&messages).expect("plain values serialise"),
    )
}

/// Appends to several conversations (`together_json`'s arrays as $1 and $2) as one statement, with the same effect
/// as `postgres_sql` run for each in order: each conversation is updated once with the sum of its appends (its row
/// lock taken once), each append's messages are numbered after those of the appends before it, and each user's
/// day is added to once. An append to a conversation its user does not own writes nothing and has no row in the
/// result (`k`, the append's new message count).
static APPEND_TOGETHER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH p AS ( \
       SELECT * FROM json_to_recordset($1::json) AS p (k int, s text, u text, n bigint, now bigint, i bigint, \
       o bigint, d text)), \
     c AS (SELECT s, u, sum(n)::bigint AS n, sum(i)::bigint AS i, sum(o)::bigint AS o, \
       (array_agg(now ORDER BY k DESC))[1] AS now FROM p GROUP BY s, u), \
     s AS (UPDATE chat_sessions x SET message_count = x.message_count + c.n, updated_at = c.now, \
       input_tokens = x.input_tokens + c.i, output_tokens = x.output_tokens + c.o \
       FROM c WHERE x.id = c.s AND x.user_id = c.u RETURNING x.id, x.user_id, x.message_count - c.n AS before), \
     q AS (SELECT p.k, p.s, p.now, p.n, (s.before + sum(p.n) OVER (PARTITION BY p.s ORDER BY p.k))::bigint AS count \
       FROM p JOIN s ON s.id = p.s AND s.user_id = p.u), \
     m AS (INSERT INTO chat_messages ({MESSAGE_COLUMNS}) \
       SELECT v.id, q.s, q.count - q.n + v.j, v.role, v.content, q.now, v.it, v.ot, v.tc, v.tci, v.meta \
       FROM json_to_recordset($2::json) AS v (k int, j int, id text, role text, content text, it bigint, ot bigint, \
       tc text, tci text, meta text) JOIN q ON q.k = v.k), \
     u AS (INSERT INTO usage_daily (user_id, day, tokens) \
       SELECT p.u, p.d, sum(p.i + p.o)::bigint FROM p JOIN q ON q.k = p.k WHERE p.i + p.o > 0 GROUP BY p.u, p.d \
       ON CONFLICT (user_id, day) DO UPDATE SET tokens = usage_daily.tokens + EXCLUDED.tokens) \
     SELECT k, count FROM q"
    )
});

/// A new conversation, with its first message if one is given: a piece of the group commit whose value is the
/// conversation's row as written.
pub struct NewConversation {
    pub id: ConversationId,
    pub title: String,
    /// The owner, the time and the first message.
    pub first: Append,
}

impl NewConversation {
    fn row(&self) -> SessionRow {
        let (input_tokens, output_tokens) = self.first.tokens();
        SessionRow {
            id: self.id.clone(),
            user_id: UserId::from(self.first.user_id.as_str()),
            title: self.title.clone(),
            created_at: self.first.now,
            updated_at: self.first.now,
            message_count: self.first.n(),
            input_tokens,
            output_tokens,
            metadata: "{}".into(),
        }
    }
}

impl Piece for NewConversation {
    type Value = SessionRow;

    fn run_pooled<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> BoxFuture<'c, sqlx::Result<Self::Value>> {
        Box::pin(async move {
            insert_session(
                &mut *conn,
                self.id.as_str(),
                &self.first.user_id,
                &self.title,
                self.first.now,
            )
            .await?;
            if !self.first.messages.is_empty() {
                self.first.run_pooled(conn).await?;
            }
            Ok(self.row())
        })
    }

    fn run_sqlite(&self, conn: &rusqlite::Connection) -> rusqlite::Result<Self::Value> {
        conn.prepare_cached(
            "INSERT INTO chat_sessions (id, user_id, title, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        )?
        .execute(params![self.id.as_str(), self.first.user_id, self.title, self.first.now])?;
        if !self.first.messages.is_empty() {
            self.first.run_sqlite(conn)?;
        }
        Ok(self.row())
    }
}

/// The conversation's share of an append, on both backends: $1 messages, $2 now, $3 and $4 tokens, $5 the
/// conversation, $6 its owner.
const UPDATE_CONVERSATION: &str = "UPDATE chat_sessions SET message_count = message_count + $1, updated_at = $2, \
     input_tokens = input_tokens + $3, output_tokens = output_tokens + $4 WHERE id = $5 AND user_id = $6";

/// `UPDATE_CONVERSATION` with SQLite's numbered parameters (`?1`), which rusqlite binds by number.
static SQLITE_UPDATE_CONVERSATION: LazyLock<String> =
    LazyLock::new(|| UPDATE_CONVERSATION.replace('$', "?"));

/// Appends of up to this many messages have their SQL kept (`append_sql`); longer ones (a step of many tool calls)
/// are rare and formatted each time.
const KEPT_SHAPES: usize = 16;

type Shapes = HashMap<(Backend, usize), Arc<str>>;

/// The SQL that writes `n` messages, formatted once per backend and length (a turn's appends come in a few
/// lengths, and formatting the statement cost more than binding its values): on PostgreSQL the whole append
/// (`postgres_sql`), on SQLite the insert of the messages.
fn append_sql(backend: Backend, n: usize) -> Arc<str> {
    static SHAPES: LazyLock<Mutex<Shapes>> = LazyLock::new(Mutex::default);
    let format = || -> Arc<str> {
        Arc::from(match backend {
            Backend::Postgres => postgres_sql(n),
            Backend::Sqlite => format!(
                "INSERT INTO chat_messages ({MESSAGE_COLUMNS}) VALUES {}",
                vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; n].join(", ")
            ),
        })
    };
    if n > KEPT_SHAPES {
        return format();
    }
    SHAPES
        .lock()
        .entry((backend, n))
        .or_insert_with(format)
        .clone()
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
