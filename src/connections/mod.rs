//! Database connection profiles (seed 004): each user keeps PostgreSQL, MySQL/MariaDB and SQLite profiles of
//! their own, tests them, lists and describes their tables, and runs read-only queries with a time and row
//! limit, through the routes and the agent's tools alike.
//!
//! Layout: this file is [`Connections`], the service every caller goes through, and its errors; `store.rs` its
//! SQL; `hosts.rs` the host rules (no internal address unless allowed, the checked address pinned);
//! `statement.rs` the classifier a query passes before anything runs; `engines.rs` the three drivers and the
//! read-only runner; `tools.rs` the agent's `db_list_tables`, `db_describe` and `db_query`.
//!
//! Invariants:
//! - A profile is only ever found with its owner in the WHERE clause: another user's id is "not found".
//! - The password is sealed (`crate::seal`, bound to `connections`/<id>/`password`) before it is stored and is
//!   never returned, logged, audited or echoed in an error; `warden keys rotate` re-seals it ([`reseal`]).
//! - Every connection goes to an address checked by `hosts.rs` (or a file inside `CONNECTION_SQLITE_DIR`), and
//!   every statement runs read-only under the statement timeout.

mod engines;
pub mod hosts;
pub mod statement;
mod store;
pub mod tools;

use std::{path::PathBuf, time::Instant};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value, json};

pub use engines::{ColumnInfo, TableInfo};
use engines::{Endpoint, Limits, ServerLogin, Session, TableName};
use statement::Dialect;

use crate::{
    audit::{Audit, Event},
    clock::SharedClock,
    config::ConnectionsConfig,
    ids::UserId,
    seal::{Binding, OpenError, SealKey},
    store::Db,
};

const TABLE: &str = "connections";
const PASSWORD_FIELD: &str = "password";
/// The fixed mask shown where the seed showed a password (never its length).
pub const PASSWORD_MASK: &str = "********";
/// Rows `get-table-rows` answers when no limit is given.
const DEFAULT_TABLE_ROWS: usize = 100;

/// Why a profile operation did not happen. Outcomes, not statuses: `http/error.rs` maps them.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// No profile of the caller has this id (another user's included).
    #[error("Connection not found")]
    NotFound,
    #[error("No such table")]
    NoSuchTable,
    #[error("{0}")]
    Invalid(String),
    #[error("A connection named {0:?} exists already")]
    NameTaken(String),
    /// The host resolves to an internal address (and is not in CONNECTION_ALLOWED_HOSTS).
    #[error(
        "Host {0} is not allowed: it resolves to an internal address (loopback, private, link-local or \
         similar); an operator may allow it with CONNECTION_ALLOWED_HOSTS"
    )]
    HostNotAllowed(String),
    #[error("{0}")]
    SqliteNotAllowed(String),
    #[error("Query refused: {0}")]
    Refused(#[from] statement::Refused),
    #[error("Authentication failed: the user name or password was not accepted")]
    AuthFailed,
    #[error("The database was not found on the server (or this user may not use it)")]
    DatabaseNotFound,
    #[error("Could not connect: {0}")]
    Unreachable(String),
    #[error("Timed out: the statement or connection took longer than the limit")]
    Timeout,
    /// The database's own message for a statement it refused or failed (the password scrubbed from it).
    #[error("Query failed: {0}")]
    Query(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The kinds of database a profile may point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseType {
    Postgresql,
    Mysql,
    Sqlite,
}

impl DatabaseType {
    /// `postgresql`/`postgres`, `mysql`/`mariadb` or `sqlite`.
    pub fn parse(text: &str) -> Option<DatabaseType> {
        match text.trim().to_ascii_lowercase().as_str() {
            "postgresql" | "postgres" => Some(DatabaseType::Postgresql),
            "mysql" | "mariadb" => Some(DatabaseType::Mysql),
            "sqlite" | "sqlite3" => Some(DatabaseType::Sqlite),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseType::Postgresql => "postgresql",
            DatabaseType::Mysql => "mysql",
            DatabaseType::Sqlite => "sqlite",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            DatabaseType::Postgresql => 5432,
            DatabaseType::Mysql => 3306,
            DatabaseType::Sqlite => 0,
        }
    }
}

/// A profile as the client sent it (save, or test without saving).
pub struct NewProfile {
    pub name: String,
    pub database_type: String,
    pub host: String,
    pub port: Option<u16>,
    pub username: String,
    pub password: SecretString,
    pub database: String,
}

/// What a profile operation connects to: a saved profile or unsaved fields.
pub enum Target {
    Saved(String),
    Unsaved(NewProfile),
}

/// A profile as its owner sees it: never the password, only whether there is one.
#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    pub id: String,
    pub name: String,
    pub database_type: DatabaseType,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub has_password: bool,
    /// The seed's masked field: a fixed mask when there is a password, never its length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<&'static str>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A successful connection test.
#[derive(Clone, Debug, Serialize)]
pub struct Tested {
    pub database_type: DatabaseType,
    pub server_version: String,
}

/// What a query answered.
#[derive(Clone, Debug, Serialize)]
pub struct QueryResult {
    pub sql: String,
    pub columns: Vec<String>,
    pub rows: Vec<Map<String, Value>>,
    pub row_count: usize,
    /// More rows were there than the limit let through.
    pub truncated: bool,
    /// Milliseconds, connection included.
    pub execution_time: f64,
}

/// What [`Connections::new`] needs.
pub struct ConnectionsParts {
    pub db: Db,
    pub key: SealKey,
    pub audit: Audit,
    pub clock: SharedClock,
    pub config: ConnectionsConfig,
}

/// The connection-profile service.
pub struct Connections {
    db: Db,
    key: SealKey,
    audit: Audit,
    clock: SharedClock,
    config: ConnectionsConfig,
}

/// A checked profile, ready to connect.
struct Checked {
    kind: DatabaseType,
    name: String,
    host: String,
    port: u16,
    username: String,
    password: SecretString,
    database: String,
}

fn text_field(field: &str, value: &str, min: usize, max: usize) -> Result<String, ConnectionError> {
    let value = value.trim();
    let len = value.chars().count();
    if len < min || len > max || value.chars().any(char::is_control) {
        return Err(ConnectionError::Invalid(format!(
            "{field} must be {min} to {max} characters, without control characters"
        )));
    }
    Ok(value.to_string())
}

impl Connections {
    pub fn new(parts: ConnectionsParts) -> Connections {
        Connections {
            db: parts.db,
            key: parts.key,
            audit: parts.audit,
            clock: parts.clock,
            config: parts.config,
        }
    }

    fn binding(id: &str) -> Binding<'_> {
        Binding {
            table: TABLE,
            row: id,
            field: PASSWORD_FIELD,
        }
    }

    /// Checks the fields of a profile (its shape; the host and file rules are checked on every connection).
    fn check(&self, new: NewProfile) -> Result<Checked, ConnectionError> {
        let kind = DatabaseType::parse(&new.database_type).ok_or_else(|| {
            ConnectionError::Invalid(
                "database_type must be postgresql, postgres, mysql, mariadb or sqlite".into(),
            )
        })?;
        let name = text_field("name", &new.name, 1, 100)?;
        if new.password.expose_secret().chars().count() > 1024 {
            return Err(ConnectionError::Invalid(
                "password must be at most 1024 characters".into(),
            ));
        }
        if kind == DatabaseType::Sqlite {
            let database = text_field("database (the SQLite file's path)", &new.database, 1, 1024)?;
            self.sqlite_path(&database)?;
            return Ok(Checked {
                kind,
                name,
                host: String::new(),
                port: 0,
                username: String::new(),
                password: SecretString::from(String::new()),
                database,
            });
        }
        let host = hosts::parse_host(&new.host)?;
        let port = match new.port {
            Some(0) => return Err(ConnectionError::Invalid("port must be 1 to 65535".into())),
            Some(p) => p,
            None => kind.default_port(),
        };
        Ok(Checked {
            kind,
            name,
            host,
            port,
            username: text_field("user", &new.username, 1, 128)?,
            password: new.password,
            database: text_field("database", &new.database, 1, 255)?,
        })
    }

    /// The canonical path of a SQLite file, if it is a file inside `CONNECTION_SQLITE_DIR`.
    fn sqlite_path(&self, given: &str) -> Result<PathBuf, ConnectionError> {
        let dir = self.config.sqlite_dir.as_ref().ok_or_else(|| {
            ConnectionError::SqliteNotAllowed(
                "SQLite profiles are turned off on this server (an operator enables them with \
                 CONNECTION_SQLITE_DIR)"
                    .into(),
            )
        })?;
        let outside = || {
            ConnectionError::SqliteNotAllowed(format!(
                "{given:?} is not a SQLite file inside the folder this server allows (CONNECTION_SQLITE_DIR)"
            ))
        };
        let dir = dir
            .canonicalize()
            .context("CONNECTION_SQLITE_DIR cannot be read")?;
        // Symbolic links and `..` are resolved first, so the check is on where the path really leads.
        let path = dir.join(given).canonicalize().map_err(|_| outside())?;
        if !path.starts_with(&dir) || !path.is_file() {
            return Err(outside());
        }
        Ok(path)
    }

    /// Saves a profile for `user`, its password sealed.
    pub async fn save(&self, user: &UserId, new: NewProfile) -> Result<Profile, ConnectionError> {
        let checked = self.check(new)?;
        if checked.kind != DatabaseType::Sqlite {
            // Refused at once rather than at first use; the rules are checked again on every connection.
            hosts::resolve(
                &checked.host,
                checked.port,
                &self.config.allowed_hosts,
                self.config.connect_timeout,
            )
            .await?;
        }
        let id = uuid::Uuid::now_v7().to_string();
        let now = self.clock.now_ms();
        let password = checked.password.expose_secret();
        let row = store::ConnectionRow {
            password_sealed: (!password.is_empty())
                .then(|| self.key.seal(Self::binding(&id), password)),
            id,
            user_id: user.to_string(),
            name: checked.name,
            database_type: checked.kind.as_str().into(),
            host: checked.host,
            port: i64::from(checked.port),
            username: checked.username,
            database_name: checked.database,
            created_at: now,
            updated_at: now,
        };
        if !store::insert_connection(self.db.writer(), &row)
            .await
            .context("connections store: insert_connection")?
        {
            return Err(ConnectionError::NameTaken(row.name));
        }
        self.audit.record(
            Event::new("connection.save", "ok")
                .actor(user)
                .subject(&row.id)
                .detail(json!({
                    "name": row.name,
                    "database_type": row.database_type,
                    "host": row.host,
                    "port": row.port,
                    "database": row.database_name,
                })),
        );
        profile(row)
    }

    /// The caller's own profiles.
    pub async fn list(&self, user: &UserId) -> Result<Vec<Profile>, ConnectionError> {
        store::find_connections(&self.db.pool, user.as_str())
            .await
            .context("connections store: find_connections")?
            .into_iter()
            .map(profile)
            .collect()
    }

    /// Deletes one of the caller's profiles.
    pub async fn delete(&self, user: &UserId, id: &str) -> Result<(), ConnectionError> {
        if !store::delete_connection(self.db.writer(), user.as_str(), id)
            .await
            .context("connections store: delete_connection")?
        {
            return Err(ConnectionError::NotFound);
        }
        self.audit.record(
            Event::new("connection.delete", "ok")
                .actor(user)
                .subject(id),
        );
        Ok(())
    }

    /// The endpoint of one of the caller's profiles, its host or file checked now.
    async fn endpoint(&self, user: &UserId, target: Target) -> Result<Endpoint, ConnectionError> {
        let checked = match target {
            Target::Unsaved(new) => self.check(new)?,
            Target::Saved(id) => {
                let row = store::find_connection(&self.db.pool, user.as_str(), &id)
                    .await
                    .context("connections store: find_connection")?
                    .ok_or(ConnectionError::NotFound)?;
                let password =
                    match &row.password_sealed {
                        Some(sealed) => self.key.open(Self::binding(&row.id), sealed).map_err(
                            |e: OpenError| {
                                anyhow::anyhow!(
                                    "the password of connection {} does not open: {e}",
                                    row.id
                                )
                            },
                        )?,
                        None => String::new(),
                    };
                Checked {
                    kind: DatabaseType::parse(&row.database_type)
                        .with_context(|| format!("stored database_type {:?}", row.database_type))?,
                    name: row.name,
                    host: row.host,
                    port: u16::try_from(row.port).context("stored port")?,
                    username: row.username,
                    password: SecretString::from(password),
                    database: row.database_name,
                }
            }
        };
        if checked.kind == DatabaseType::Sqlite {
            return Ok(Endpoint::Sqlite(self.sqlite_path(&checked.database)?));
        }
        let addr = hosts::resolve(
            &checked.host,
            checked.port,
            &self.config.allowed_hosts,
            self.config.connect_timeout,
        )
        .await?;
        let login = ServerLogin {
            addr,
            username: checked.username,
            password: checked.password,
            database: checked.database,
        };
        Ok(match checked.kind {
            DatabaseType::Postgresql => Endpoint::Postgres(login),
            _ => Endpoint::MySql(login),
        })
    }

    fn limits(&self) -> Limits {
        Limits {
            statement_timeout: self.config.statement_timeout,
            connect_timeout: self.config.connect_timeout,
        }
    }

    /// Opens a session on `target`, runs `work` on it and closes it, all within the connect timeout plus the
    /// statement timeout plus a margin: a server that stops answering cannot hold a request.
    async fn with_session<T>(
        &self,
        user: &UserId,
        target: Target,
        work: impl AsyncFnOnce(&mut Session) -> Result<T, ConnectionError>,
    ) -> Result<T, ConnectionError> {
        let endpoint = self.endpoint(user, target).await?;
        let limits = self.limits();
        let budget =
            limits.connect_timeout + limits.statement_timeout + std::time::Duration::from_secs(2);
        let run = async {
            let mut session = Session::open(&endpoint, limits).await?;
            let result = work(&mut session).await;
            session.close().await;
            result
        };
        tokio::time::timeout(budget, run)
            .await
            .map_err(|_| ConnectionError::Timeout)?
    }

    /// Connects and asks the server its version.
    pub async fn test(&self, user: &UserId, target: Target) -> Result<Tested, ConnectionError> {
        let kind = match &target {
            Target::Unsaved(new) => DatabaseType::parse(&new.database_type),
            Target::Saved(_) => None,
        };
        let (dialect, server_version) = self
            .with_session(user, target, async |s| {
                Ok((s.dialect(), s.version().await?))
            })
            .await?;
        Ok(Tested {
            database_type: kind.unwrap_or(match dialect {
                Dialect::Postgres => DatabaseType::Postgresql,
                Dialect::MySql => DatabaseType::Mysql,
                Dialect::Sqlite => DatabaseType::Sqlite,
            }),
            server_version,
        })
    }

    pub async fn list_tables(
        &self,
        user: &UserId,
        id: &str,
    ) -> Result<Vec<TableInfo>, ConnectionError> {
        self.with_session(user, Target::Saved(id.into()), async |s| {
            s.list_tables().await
        })
        .await
    }

    /// The columns of a table (404 when there is no such table).
    pub async fn describe(
        &self,
        user: &UserId,
        id: &str,
        table: &str,
    ) -> Result<Vec<ColumnInfo>, ConnectionError> {
        let table = TableName::parse(table)?;
        self.with_session(user, Target::Saved(id.into()), async |s| {
            let columns = s.describe(&table).await?;
            if columns.is_empty() {
                return Err(ConnectionError::NoSuchTable);
            }
            Ok(columns)
        })
        .await
    }

    /// The first rows of a table (at most `limit`, at most CONNECTION_MAX_ROWS); the name is checked against
    /// the table list and quoted, never spliced raw.
    pub async fn table_rows(
        &self,
        user: &UserId,
        id: &str,
        table: &str,
        limit: Option<usize>,
    ) -> Result<QueryResult, ConnectionError> {
        let table = TableName::parse(table)?;
        let max = self.config.max_rows;
        let limit = limit.unwrap_or(DEFAULT_TABLE_ROWS).clamp(1, max);
        let started = Instant::now();
        self.with_session(user, Target::Saved(id.into()), async |s| {
            if s.describe(&table).await?.is_empty() {
                return Err(ConnectionError::NoSuchTable);
            }
            let sql = format!("SELECT * FROM {} LIMIT {limit}", table.quoted(s.dialect()));
            let rows = s.run(&sql, limit).await?;
            Ok(result(sql, rows, started))
        })
        .await
    }

    /// Runs one read-only statement: classified first, then confirmed single by the server where it can, then
    /// run in a read-only transaction under the statement timeout, keeping CONNECTION_MAX_ROWS rows.
    pub async fn query(
        &self,
        user: &UserId,
        id: &str,
        sql: &str,
    ) -> Result<QueryResult, ConnectionError> {
        if sql.len() > 100_000 {
            return Err(ConnectionError::Invalid(
                "query must be at most 100000 bytes".into(),
            ));
        }
        let max = self.config.max_rows;
        let started = Instant::now();
        self.with_session(user, Target::Saved(id.into()), async |s| {
            let statement = statement::check(sql, s.dialect())?;
            s.confirm_single(statement).await?;
            let rows = s.run(statement, max).await?;
            Ok(result(statement.to_string(), rows, started))
        })
        .await
    }
}

fn result(sql: String, rows: engines::Rows, started: Instant) -> QueryResult {
    QueryResult {
        sql,
        row_count: rows.rows.len(),
        columns: rows.columns,
        rows: rows.rows,
        truncated: rows.truncated,
        execution_time: (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
    }
}

fn profile(row: store::ConnectionRow) -> Result<Profile, ConnectionError> {
    let database_type = DatabaseType::parse(&row.database_type)
        .with_context(|| format!("stored database_type {:?}", row.database_type))?;
    let has_password = row.password_sealed.is_some();
    Ok(Profile {
        id: row.id,
        name: row.name,
        database_type,
        host: row.host,
        port: u16::try_from(row.port).unwrap_or(0),
        user: row.username,
        database: row.database_name,
        has_password,
        password: has_password.then_some(PASSWORD_MASK),
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// At start: checks that `key` opens every stored connection password, so a start with another key is refused
/// before anything is used (a value that was altered is left to fail on use).
pub async fn check_key(db: &Db, key: &SealKey) -> anyhow::Result<()> {
    let mut conn = db.pool.acquire().await?;
    for (id, sealed) in store::find_sealed_in(&mut conn).await? {
        if let Err(e @ OpenError::WrongKey { .. }) = key.open(Connections::binding(&id), &sealed) {
            anyhow::bail!(
                "refusing to start: WARDEN_ENCRYPTION_KEY does not open the stored connection passwords \
                 (connection {id}: {e}); set the key they were sealed with (`warden keys rotate` changes it)"
            );
        }
    }
    Ok(())
}

/// Re-seals every stored connection password from `old` to `new` inside `tx` (for `warden keys rotate`);
/// returns how many it re-sealed. A password `old` does not open stops it (the caller rolls back).
pub async fn reseal(
    tx: &mut sqlx::AnyConnection,
    old: &SealKey,
    new: &SealKey,
) -> anyhow::Result<usize> {
    let mut count = 0;
    for (id, sealed) in store::find_sealed_in(tx).await? {
        let plain = old
            .open(Connections::binding(&id), &sealed)
            .map_err(|e| anyhow::anyhow!("the password of connection {id} does not open: {e}"))?;
        let resealed = new.seal(Connections::binding(&id), &plain);
        if store::update_sealed_in(tx, &id, &sealed, &resealed).await? {
            count += 1;
        }
    }
    Ok(count)
}
