//! The three drivers behind one [`Session`]: PostgreSQL, MySQL/MariaDB and SQLite, each opened for one
//! operation (no pool) and read-only from the first statement:
//! - PostgreSQL: the session starts with `default_transaction_read_only=on`, `statement_timeout` and
//!   `standard_conforming_strings=on` (startup options, so they hold for every statement), and each operation
//!   runs in `BEGIN READ ONLY` with `SET LOCAL statement_timeout`. Nothing is read from the server's own
//!   PG* environment but what cannot be unset (see the README).
//! - MySQL/MariaDB: `SET SESSION TRANSACTION READ ONLY`, then `START TRANSACTION READ ONLY` per operation;
//!   `max_statement_time` (MariaDB, seconds) or `max_execution_time` (MySQL, milliseconds), told apart by the
//!   version string; `NO_BACKSLASH_ESCAPES` off, so strings read as the classifier reads them.
//! - SQLite: opened read-only (never created) with `query_only`, and a progress handler that interrupts a
//!   statement past the timeout.
//!
//! A user's query runs through the text protocol (every value arrives as text and is typed by its column) after
//! the server's own parser has confirmed, where it can, that it is one statement. Driver errors become short
//! messages; the password is scrubbed from anything passed on.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use futures::TryStreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{
    Column, ConnectOptions, Connection, Executor, Row, SqlSafeStr, TypeInfo, ValueRef,
    mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlRow, MySqlSslMode},
    postgres::{PgConnectOptions, PgConnection, PgRow, PgSslMode},
    sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow},
};

use super::{ConnectionError, statement::Dialect};

/// Where one operation connects: a checked, pinned server address, or a checked SQLite file.
pub enum Endpoint {
    Postgres(ServerLogin),
    MySql(ServerLogin),
    Sqlite(PathBuf),
}

pub struct ServerLogin {
    pub addr: SocketAddr,
    pub username: String,
    pub password: SecretString,
    pub database: String,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub statement_timeout: Duration,
    pub connect_timeout: Duration,
}

/// Whether a MySQL-protocol server is MariaDB (their statement timeouts differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    MySql,
    MariaDb,
}

/// One open, read-only connection.
pub enum Session {
    /// With the statement timeout in milliseconds, set again in each transaction.
    Postgres(PgConnection, u128),
    MySql(MySqlConnection),
    Sqlite(SqliteConnection),
}

/// A table or view.
#[derive(Clone, Debug, Serialize)]
pub struct TableInfo {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
}

/// A column of a table.
#[derive(Clone, Debug, Serialize)]
pub struct ColumnInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
    pub default: Option<String>,
}

/// Rows of a query, each a JSON object by column name.
#[derive(Clone, Debug, Default)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Map<String, Value>>,
    /// More rows were there than the limit let through.
    pub truncated: bool,
}

/// A table name as the user gave it: `name` or `schema.name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    pub fn parse(text: &str) -> Result<TableName, ConnectionError> {
        let bad = || {
            ConnectionError::Invalid(
                "table must be a name or schema.name (at most 128 characters each)".into(),
            )
        };
        let part = |p: &str| {
            let p = p.trim();
            (!p.is_empty() && p.chars().count() <= 128 && !p.chars().any(char::is_control))
                .then(|| p.to_string())
                .ok_or_else(bad)
        };
        match text.split_once('.') {
            None => Ok(TableName {
                schema: None,
                name: part(text)?,
            }),
            Some((schema, name)) if !name.contains('.') => Ok(TableName {
                schema: Some(part(schema)?),
                name: part(name)?,
            }),
            Some(_) => Err(bad()),
        }
    }

    /// The name quoted as an identifier of `dialect` (quotes inside doubled): never spliced raw.
    pub fn quoted(&self, dialect: Dialect) -> String {
        let quote = |s: &str| match dialect {
            Dialect::MySql => format!("`{}`", s.replace('`', "``")),
            Dialect::Postgres | Dialect::Sqlite => format!("\"{}\"", s.replace('"', "\"\"")),
        };
        match &self.schema {
            Some(schema) => format!("{}.{}", quote(schema), quote(&self.name)),
            None => quote(&self.name),
        }
    }
}

impl Session {
    /// Connects to `endpoint` and makes the session read-only with the statement timeout.
    pub async fn open(endpoint: &Endpoint, limits: Limits) -> Result<Session, ConnectionError> {
        let connect = async {
            match endpoint {
                Endpoint::Postgres(login) => open_postgres(login, limits).await,
                Endpoint::MySql(login) => open_mysql(login, limits).await,
                Endpoint::Sqlite(path) => open_sqlite(path, limits).await,
            }
        };
        tokio::time::timeout(limits.connect_timeout, connect)
            .await
            .map_err(|_| ConnectionError::Timeout)?
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Session::Postgres(..) => Dialect::Postgres,
            Session::MySql(_) => Dialect::MySql,
            Session::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// The server's version string.
    pub async fn version(&mut self) -> Result<String, ConnectionError> {
        let sql = match self {
            Session::Postgres(..) => "SHOW server_version",
            Session::MySql(_) => "SELECT VERSION()",
            Session::Sqlite(_) => "SELECT 'SQLite ' || sqlite_version()",
        };
        let rows = self.run(sql, 1).await?;
        rows.rows
            .first()
            .and_then(|row| row.values().next())
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ConnectionError::Query("the server did not say its version".into()))
    }

    pub async fn list_tables(&mut self) -> Result<Vec<TableInfo>, ConnectionError> {
        let sql = match self {
            Session::Postgres(..) => {
                "SELECT table_schema::text AS schema, table_name::text AS name, table_type::text AS type \
                 FROM information_schema.tables \
                 WHERE table_schema NOT IN ('pg_catalog', 'information_schema') \
                 ORDER BY table_schema = current_schema() DESC, table_schema, table_name"
            }
            Session::MySql(_) => {
                "SELECT NULL AS `schema`, TABLE_NAME AS name, TABLE_TYPE AS type \
                 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME"
            }
            Session::Sqlite(_) => {
                "SELECT NULL AS schema, name, type FROM sqlite_master \
                 WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name"
            }
        };
        let is_postgres = matches!(self, Session::Postgres(..));
        let current = if is_postgres {
            self.scalar("SELECT current_schema()::text").await?
        } else {
            None
        };
        let rows = self.run(sql, 100_000).await?;
        Ok(rows
            .rows
            .into_iter()
            .map(|row| {
                let text = |k: &str| row.get(k).and_then(Value::as_str).map(str::to_string);
                let schema = text("schema").filter(|s| Some(s) != current.as_ref());
                TableInfo {
                    name: text("name").unwrap_or_default(),
                    schema,
                    kind: match text("type").as_deref() {
                        Some("BASE TABLE") | Some("table") => "table".into(),
                        Some("VIEW") | Some("view") => "view".into(),
                        Some(other) => other.to_ascii_lowercase(),
                        None => "table".into(),
                    },
                }
            })
            .collect())
    }

    /// The columns of `table`; an empty list when there is no such table.
    pub async fn describe(
        &mut self,
        table: &TableName,
    ) -> Result<Vec<ColumnInfo>, ConnectionError> {
        // Names go in as string literals (quotes doubled) through the same text-protocol path as queries.
        let literal = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
        let literal_pg = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let sql = match self {
            Session::Postgres(..) => format!(
                "SELECT column_name::text AS name, data_type::text AS type, is_nullable::text AS nullable, \
                 column_default::text AS dflt FROM information_schema.columns \
                 WHERE table_schema = {} AND table_name = {} ORDER BY ordinal_position",
                table
                    .schema
                    .as_deref()
                    .map_or("current_schema()".to_string(), literal_pg),
                literal_pg(&table.name)
            ),
            Session::MySql(_) => format!(
                "SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type, IS_NULLABLE AS nullable, \
                 COLUMN_DEFAULT AS dflt FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
                table
                    .schema
                    .as_deref()
                    .map_or("DATABASE()".to_string(), literal),
                literal(&table.name)
            ),
            Session::Sqlite(_) => format!(
                "SELECT name, type, CASE \"notnull\" WHEN 0 THEN 'YES' ELSE 'NO' END AS nullable, \
                 dflt_value AS dflt FROM pragma_table_info({}{})",
                literal_pg(&table.name),
                table
                    .schema
                    .as_deref()
                    .map_or(String::new(), |s| format!(", {}", literal_pg(s)))
            ),
        };
        let rows = self.run(&sql, 100_000).await?;
        Ok(rows
            .rows
            .into_iter()
            .map(|row| {
                let text = |k: &str| row.get(k).and_then(Value::as_str).map(str::to_string);
                ColumnInfo {
                    name: text("name").unwrap_or_default(),
                    data_type: text("type").unwrap_or_default(),
                    nullable: text("nullable").as_deref() != Some("NO"),
                    default: text("dflt"),
                }
            })
            .collect())
    }

    /// The first column of the first row, as text.
    async fn scalar(&mut self, sql: &str) -> Result<Option<String>, ConnectionError> {
        let rows = self.run(sql, 1).await?;
        Ok(rows
            .rows
            .first()
            .and_then(|r| r.values().next())
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// Checks with the server's own parser that `sql` is one statement (PostgreSQL refuses to prepare several;
    /// so does MySQL, which cannot prepare some reading statements such as DESCRIBE: those pass on the
    /// classifier's word).
    pub async fn confirm_single(&mut self, sql: &str) -> Result<(), ConnectionError> {
        let outcome = match self {
            Session::Postgres(c, _) => c
                .prepare(sqlx::AssertSqlSafe(sql.to_string()).into_sql_str())
                .await
                .map(drop),
            Session::MySql(c) => match c
                .prepare(sqlx::AssertSqlSafe(sql.to_string()).into_sql_str())
                .await
            {
                Err(sqlx::Error::Database(e))
                    if e.try_downcast_ref::<MySqlDatabaseError>()
                        .is_some_and(|e| e.number() == 1295) =>
                {
                    Ok(())
                }
                other => other.map(drop),
            },
            Session::Sqlite(_) => Ok(()),
        };
        outcome.map_err(|e| map_error(e, None))
    }

    /// Runs `sql` in a read-only transaction, keeping at most `max_rows` rows.
    pub async fn run(&mut self, sql: &str, max_rows: usize) -> Result<Rows, ConnectionError> {
        match self {
            Session::Postgres(c, timeout_ms) => {
                c.execute("BEGIN READ ONLY").await.map_err(internal)?;
                c.execute(sqlx::AssertSqlSafe(format!(
                    "SET LOCAL statement_timeout = {timeout_ms}"
                )))
                .await
                .map_err(internal)?;
                let rows = fetch(c, sql, max_rows, postgres_value).await;
                let _ = c.execute("ROLLBACK").await;
                rows
            }
            Session::MySql(c) => {
                c.execute("START TRANSACTION READ ONLY")
                    .await
                    .map_err(internal)?;
                let rows = fetch(c, sql, max_rows, mysql_value).await;
                let _ = c.execute("ROLLBACK").await;
                rows
            }
            Session::Sqlite(c) => fetch(c, sql, max_rows, sqlite_value).await,
        }
    }

    /// Closes the connection, waiting at most a second.
    pub async fn close(self) {
        let close = async {
            let _ = match self {
                Session::Postgres(c, _) => c.close().await,
                Session::MySql(c) => c.close().await,
                Session::Sqlite(c) => c.close().await,
            };
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
    }
}

async fn open_postgres(login: &ServerLogin, limits: Limits) -> Result<Session, ConnectionError> {
    let timeout_ms = limits.statement_timeout.as_millis().to_string();
    let options = PgConnectOptions::new_without_pgpass()
        .host(&login.addr.ip().to_string())
        .port(login.addr.port())
        .username(&login.username)
        .password(login.password.expose_secret())
        .database(&login.database)
        .ssl_mode(PgSslMode::Prefer)
        .application_name("warden")
        .statement_cache_capacity(0)
        .options([
            ("default_transaction_read_only", "on"),
            ("statement_timeout", timeout_ms.as_str()),
            ("standard_conforming_strings", "on"),
        ])
        .disable_statement_logging();
    let conn = options
        .connect()
        .await
        .map_err(|e| map_error(e, Some(&login.password)))?;
    Ok(Session::Postgres(
        conn,
        limits.statement_timeout.as_millis(),
    ))
}

async fn open_mysql(login: &ServerLogin, limits: Limits) -> Result<Session, ConnectionError> {
    let options = MySqlConnectOptions::new()
        .host(&login.addr.ip().to_string())
        .port(login.addr.port())
        .username(&login.username)
        .password(login.password.expose_secret())
        .database(&login.database)
        .ssl_mode(MySqlSslMode::Preferred)
        .statement_cache_capacity(0)
        .disable_statement_logging();
    let mut conn = options
        .connect()
        .await
        .map_err(|e| map_error(e, Some(&login.password)))?;
    let version: (String,) = sqlx::query_as("SELECT VERSION()")
        .fetch_one(&mut conn)
        .await
        .map_err(internal)?;
    let flavor = if version.0.to_ascii_lowercase().contains("mariadb") {
        Flavor::MariaDb
    } else {
        Flavor::MySql
    };
    let timeout = match flavor {
        Flavor::MariaDb => format!(
            "SET SESSION max_statement_time = {:.3}",
            limits.statement_timeout.as_secs_f64()
        ),
        Flavor::MySql => format!(
            "SET SESSION max_execution_time = {}",
            limits.statement_timeout.as_millis()
        ),
    };
    for sql in [
        "SET SESSION TRANSACTION READ ONLY".to_string(),
        "SET SESSION sql_mode = REPLACE(@@SESSION.sql_mode, 'NO_BACKSLASH_ESCAPES', '')"
            .to_string(),
        timeout,
    ] {
        conn.execute(sqlx::AssertSqlSafe(sql))
            .await
            .map_err(internal)?;
    }
    Ok(Session::MySql(conn))
}

async fn open_sqlite(path: &PathBuf, limits: Limits) -> Result<Session, ConnectionError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(limits.statement_timeout)
        .pragma("query_only", "1")
        .statement_cache_capacity(0)
        .disable_statement_logging();
    let mut conn = options.connect().await.map_err(|e| map_error(e, None))?;
    // Interrupts a statement once the timeout has passed since the connection opened (one operation each).
    let deadline = Instant::now() + limits.statement_timeout;
    conn.lock_handle()
        .await
        .map_err(internal)?
        .set_progress_handler(1000, move || Instant::now() < deadline);
    Ok(Session::Sqlite(conn))
}

/// Streams the rows of `sql` (text protocol: every statement's values arrive as text), keeping `max_rows`.
async fn fetch<'c, DB, C>(
    conn: &'c mut C,
    sql: &str,
    max_rows: usize,
    value: fn(&DB::Row, usize) -> Value,
) -> Result<Rows, ConnectionError>
where
    DB: sqlx::Database,
    &'c mut C: Executor<'c, Database = DB>,
{
    let mut out = Rows::default();
    let mut stream = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).fetch(conn);
    while let Some(row) = stream.try_next().await.map_err(|e| map_error(e, None))? {
        if out.columns.is_empty() {
            out.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
        }
        if out.rows.len() == max_rows {
            out.truncated = true;
            break;
        }
        let mut object = Map::new();
        for (i, name) in out.columns.iter().enumerate() {
            object.insert(name.clone(), value(&row, i));
        }
        out.rows.push(object);
    }
    Ok(out)
}

/// A value given as text, typed by its column's type name.
fn typed(text: String, type_name: &str) -> Value {
    let t = type_name.to_ascii_uppercase();
    let number = |v: Option<serde_json::Number>| {
        v.map_or_else(|| Value::String(text.clone()), Value::Number)
    };
    if t == "BOOL" || t == "BOOLEAN" {
        return match text.as_str() {
            "t" | "true" | "1" => Value::Bool(true),
            "f" | "false" | "0" => Value::Bool(false),
            _ => Value::String(text),
        };
    }
    if t.contains("INT") || t == "OID" {
        return number(
            text.parse::<i64>()
                .map(Into::into)
                .or_else(|_| text.parse::<u64>().map(Into::into))
                .ok(),
        );
    }
    if t.starts_with("FLOAT") || t == "DOUBLE" || t == "REAL" {
        return number(
            text.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64),
        );
    }
    if t == "JSON" || t == "JSONB" {
        return serde_json::from_str(&text).unwrap_or(Value::String(text));
    }
    Value::String(text)
}

fn postgres_value(row: &PgRow, i: usize) -> Value {
    let Ok(raw) = row.try_get_raw(i) else {
        return Value::Null;
    };
    if raw.is_null() {
        return Value::Null;
    }
    let type_name = raw.type_info().name().to_string();
    match row.try_get_unchecked::<String, _>(i) {
        Ok(text) => typed(text, &type_name),
        Err(_) => Value::String(format!("<{type_name} value>")),
    }
}

fn mysql_value(row: &MySqlRow, i: usize) -> Value {
    let Ok(raw) = row.try_get_raw(i) else {
        return Value::Null;
    };
    if raw.is_null() {
        return Value::Null;
    }
    let type_name = raw.type_info().name().to_string();
    match row.try_get_unchecked::<String, _>(i) {
        Ok(text) => typed(text, &type_name),
        // Bytes that are not UTF-8 (BLOB, BINARY): hex.
        Err(_) => row
            .try_get_unchecked::<Vec<u8>, _>(i)
            .map(|b| Value::String(format!("0x{}", hex::encode(b))))
            .unwrap_or(Value::Null),
    }
}

fn sqlite_value(row: &SqliteRow, i: usize) -> Value {
    let Ok(raw) = row.try_get_raw(i) else {
        return Value::Null;
    };
    if raw.is_null() {
        return Value::Null;
    }
    // SQLite types each value, not each column.
    match raw.type_info().name() {
        "INTEGER" | "BOOLEAN" | "INT8" => row
            .try_get_unchecked::<i64, _>(i)
            .map_or(Value::Null, Value::from),
        "REAL" => row
            .try_get_unchecked::<f64, _>(i)
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        "BLOB" => row
            .try_get_unchecked::<Vec<u8>, _>(i)
            .map(|b| Value::String(format!("0x{}", hex::encode(b))))
            .unwrap_or(Value::Null),
        _ => row
            .try_get_unchecked::<String, _>(i)
            .map_or(Value::Null, Value::String),
    }
}

/// An error of one of our own statements (BEGIN, SET): reported without the server's text.
fn internal(e: sqlx::Error) -> ConnectionError {
    match map_error(e, None) {
        ConnectionError::Query(_) => {
            ConnectionError::Query("the server refused a read-only session".into())
        }
        other => other,
    }
}

/// A driver error as a short message: never the DSN, never the password (scrubbed from any server text).
pub fn map_error(e: sqlx::Error, password: Option<&SecretString>) -> ConnectionError {
    let scrub = |text: &str| match password.map(|p| p.expose_secret()) {
        Some(p) if !p.is_empty() => text.replace(p, "********"),
        _ => text.to_string(),
    };
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let number = db
                .try_downcast_ref::<MySqlDatabaseError>()
                .map(MySqlDatabaseError::number);
            match (code.as_str(), number) {
                ("28P01" | "28000", _) | (_, Some(1045 | 1698)) => ConnectionError::AuthFailed,
                // MySQL answers 1044 (access denied to the database) for a missing database the user has no grant on.
                ("3D000", _) | (_, Some(1044 | 1049)) => ConnectionError::DatabaseNotFound,
                // PostgreSQL query_canceled; MariaDB max_statement_time, MySQL max_execution_time; SQLite
                // interrupted by the progress handler.
                ("57014", _) | (_, Some(1969 | 3024)) | ("9", None) => ConnectionError::Timeout,
                ("14", None) => ConnectionError::Invalid("the SQLite file cannot be opened".into()),
                _ => ConnectionError::Query(scrub(db.message())),
            }
        }
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                ConnectionError::Unreachable("the connection was refused".into())
            }
            std::io::ErrorKind::TimedOut => ConnectionError::Timeout,
            _ => ConnectionError::Unreachable("the host is unreachable".into()),
        },
        sqlx::Error::Tls(_) => ConnectionError::Unreachable("the TLS handshake failed".into()),
        sqlx::Error::Protocol(_) => ConnectionError::Unreachable(
            "the server did not answer as a database of this type".into(),
        ),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            ConnectionError::Query("a value could not be read".into())
        }
        _ => ConnectionError::Unreachable("the connection failed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_quoted_per_dialect_and_never_spliced_raw() {
        let t = TableName::parse("we\"ird`.t").unwrap();
        assert_eq!(t.quoted(Dialect::Postgres), "\"we\"\"ird`\".\"t\"");
        assert_eq!(t.quoted(Dialect::MySql), "`we\"ird```.`t`");
        assert_eq!(
            TableName::parse("users").unwrap().quoted(Dialect::Sqlite),
            "\"users\""
        );
        assert!(TableName::parse("a.b.c").is_err());
        assert!(TableName::parse("").is_err());
        assert!(TableName::parse("a\0b").is_err());
    }

    #[test]
    fn text_values_are_typed_by_their_column() {
        assert_eq!(typed("42".into(), "INT4"), Value::from(42));
        assert_eq!(typed("-7".into(), "BIGINT"), Value::from(-7));
        assert_eq!(typed("1.5".into(), "FLOAT8"), Value::from(1.5));
        assert_eq!(typed("t".into(), "BOOL"), Value::Bool(true));
        assert_eq!(typed("1".into(), "BOOLEAN"), Value::Bool(true));
        assert_eq!(
            typed("{\"a\":1}".into(), "JSONB"),
            serde_json::json!({"a": 1})
        );
        assert_eq!(typed("12.30".into(), "NUMERIC"), Value::from("12.30"));
        assert_eq!(typed("NaN".into(), "FLOAT8"), Value::from("NaN"));
        assert_eq!(typed("x".into(), "TEXT"), Value::from("x"));
    }
}
