//! The database: one sqlx `Any` pool over SQLite (default, a file under the data dir) or PostgreSQL (by URL),
//! and the migrations of both, kept in step (same numbers, same meaning; applied by sqlx's migrator, `migrate`).
//! `BatchWriter` is the one background writer the append-only logs (audit, tool calls) queue into; `GroupCommit`
//! runs the writes many requests make at once (a chat turn's rows) in one transaction and answers each when stored.
//!
//! Only bool, integers, floats, text and bytes cross the `Any` driver: times are epoch milliseconds (BIGINT),
//! ids and JSON are TEXT, flags are 0/1 integers. Ids and times are made in Rust, never by the database.

mod batch;
mod group;
pub mod migrate;
pub mod multi_row;

use std::{path::Path, time::Duration};

use anyhow::Context;

use crate::private_files;
use sqlx::{AnyPool, Executor, any::AnyPoolOptions};

pub use batch::BatchWriter;
pub use group::{GroupCommit, Piece};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The shared pools and which database they talk to. SQLite allows one writer at a time, and a writer that
/// finds the file locked sleeps and polls; so writes go through a one-connection pool, where they queue in
/// order instead, and reads use the others (WAL lets them run beside the writer). On PostgreSQL both are one pool.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    writer: AnyPool,
    group: GroupCommit,
    pub backend: Backend,
}

impl Db {
    /// Connects (creating the SQLite file and its folder if needed). Does not migrate.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite: or postgres:");
        };
        let sqlite_file = match backend {
            Backend::Sqlite => Some(sqlite_path(url).context(
                "an in-memory SQLite database is not supported (each connection would see its own): give a file",
            )?),
            Backend::Postgres => None,
        };
        if let Some(path) = &sqlite_file {
            prepare_sqlite_file(Path::new(path), creates_file(url))?;
        }
        let pool = options(backend, if backend == Backend::Sqlite { 8 } else { 16 })
            .connect(url)
            .await
            .with_context(|| format!("connecting to {}", crate::config::redact_url(url)))?;
        let writer = match backend {
            Backend::Sqlite => options(backend, 1).connect(url).await?,
            Backend::Postgres => pool.clone(),
        };
        let group = match sqlite_file {
            Some(path) => GroupCommit::sqlite(path.into(), writer.clone()),
            None => GroupCommit::pooled(writer.clone()),
        };
        Ok(Db {
            pool,
            group,
            writer,
            backend,
        })
    }

    /// The pool for statements that write (and for transactions that read what they then write).
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// The group-commit writer, for the write transactions many requests make at once (see `group`).
    pub fn group(&self) -> &GroupCommit {
        &self.group
    }

    /// Closes every connection (tests use this to take the database away).
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// Applies the migrations not yet applied (see `migrate`), each in its own transaction, under a lock;
    /// returns the versions applied now. Refuses a database whose applied migrations were edited.
    pub async fn migrate(&self) -> anyhow::Result<Vec<i64>> {
        migrate::run(self).await
    }

    /// True when the database answers a trivial query.
    pub async fn is_ready(&self) -> bool {
        tokio::time::timeout(
            Duration::from_secs(2),
            sqlx::query("SELECT 1").execute(&self.pool),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }

    /// True when an insert or update failed on a uniqueness constraint.
    pub fn is_unique_violation(err: &sqlx::Error) -> bool {
        matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
    }
}

/// Whether `err` means "the database is unavailable now" (answered 503 and worth a retry) rather than a bug
/// (500). This is the one place that decides it; services and the HTTP error mapping ask it.
///
/// Unavailable: the pool cannot hand out a connection (timed out, closed), the connection broke (I/O, TLS, a
/// protocol error after the server closed the socket, SQLite's worker gone), PostgreSQL ended the session (any
/// FATAL or PANIC, e.g. 57P01 terminated, 55000 "not accepting connections", 3D000 database gone at connect) or
/// answered with SQLSTATE class 08 (connection exception), 57 (operator intervention), 53300 (too many
/// connections) or 3D000, and SQLite busy, locked or unable to open the file.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        // A protocol error is a reply that breaks off or makes no sense, which is what a socket closed by the
        // server mid-reply gives; the connection is unusable and a fresh one is the cure, as for I/O errors.
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => is_unavailable_database_error(e.as_ref()),
        _ => false,
    }
}

/// Whether an error anywhere in `err`'s chain (as `.context()` leaves it) is the database being unavailable.
pub fn is_unavailable_cause(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.downcast_ref::<sqlx::Error>().is_some_and(is_unavailable))
}

fn is_unavailable_database_error(e: &dyn sqlx::error::DatabaseError) -> bool {
    if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        || e.try_downcast_ref::<group::SqliteWriteError>().is_some()
    {
        // Extended result codes keep the primary code in the low byte: SQLITE_BUSY, SQLITE_LOCKED, SQLITE_CANTOPEN.
        let primary = e
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff);
        return matches!(primary, Some(5 | 6 | 14));
    }
    // FATAL and PANIC end the session: whatever the code, this connection can do no more work.
    if let Some(pg) = e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        && matches!(
            pg.severity(),
            sqlx::postgres::PgSeverity::Fatal | sqlx::postgres::PgSeverity::Panic
        )
    {
        return true;
    }
    e.code().is_some_and(|code| {
        code.starts_with("08") || code.starts_with("57") || code == "53300" || code == "3D000"
    })
}

fn options(backend: Backend, max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        // A PostgreSQL connection is tested before it is handed out, so one that a restart broke is replaced, not
        // used. A SQLite connection is a file handle that cannot break that way, and testing it is a round trip to
        // its worker thread on every acquire (sqlx tests it again when it is given back).
        .test_before_acquire(backend == Backend::Postgres)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the writer; busy_timeout covers other processes (the CLI).
                    conn.execute(sqlx::raw_sql(
                        "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;",
                    ))
                    .await?;
                }
                Ok(())
            })
        })
}

/// Makes the SQLite database private to the service user before SQLite opens it: its folder 0700 when created
/// here, the file 0600. SQLite gives the -wal and -shm files the mode of the database file, so pre-creating
/// that one (when the URL lets SQLite create it) keeps all three private; files an earlier version left
/// readable by others are tightened.
fn prepare_sqlite_file(path: &Path, create: bool) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        private_files::create_dir(parent)?;
    }
    if create && !path.exists() {
        private_files::create_file(path)?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        private_files::tighten(Path::new(&name), 0o600)?;
    }
    Ok(())
}

/// Whether the URL lets SQLite create a missing database file (`mode=rwc`); sqlx does not otherwise.
fn creates_file(url: &str) -> bool {
    url.split_once('?')
        .is_some_and(|(_, query)| query.split('&').any(|pair| pair == "mode=rwc"))
}

fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}

#[cfg(test)]
mod tests {
    use std::{borrow::Cow, error::Error as StdError};

    use sqlx::{
        Connection,
        error::{DatabaseError, ErrorKind},
        sqlite::{SqliteConnectOptions, SqliteConnection},
    };

    use super::*;

    /// A database error with only a SQLSTATE, as another driver would report it.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error {}", self.0)
        }
    }

    impl StdError for Coded {}

    impl DatabaseError for Coded {
        fn message(&self) -> &str {
            "test error"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    fn database(code: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(Coded(code)))
    }

    #[test]
    fn a_lost_connection_or_pool_is_unavailable() {
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
            sqlx::Error::Io(std::io::ErrorKind::UnexpectedEof.into()),
            sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()),
            sqlx::Error::Protocol("expected ReadyForQuery".into()),
        ] {
            assert!(is_unavailable(&e), "{e}");
        }
    }

    #[test]
    fn connection_and_operator_sqlstates_are_unavailable() {
        for code in [
            "08006", "08001", "57P01", "57P02", "57P03", "57014", "53300", "3D000",
        ] {
            assert!(is_unavailable(&database(code)), "{code}");
        }
    }

    #[test]
    fn bugs_and_bad_data_are_not_unavailable() {
        for code in ["23505", "22021", "42P01", "42601", "40001", "53100"] {
            assert!(!is_unavailable(&database(code)), "{code}");
        }
        for e in [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("id".into()),
            sqlx::Error::Decode("bad".into()),
            sqlx::Error::InvalidArgument("bad".into()),
        ] {
            assert!(!is_unavailable(&e), "{e}");
        }
    }

    #[test]
    fn an_unavailable_cause_is_found_under_context() {
        let wrapped = anyhow::Error::from(database("57P01")).context("listing sessions");
        assert!(is_unavailable_cause(&wrapped));
        let bug = anyhow::Error::from(database("42P01")).context("listing sessions");
        assert!(!is_unavailable_cause(&bug));
        assert!(!is_unavailable_cause(&anyhow::anyhow!("no message stored")));
    }

    #[tokio::test]
    async fn an_in_memory_sqlite_database_is_refused_with_the_reason() {
        let err = Db::connect("sqlite::memory:").await.err().expect("refused");
        assert!(format!("{err:#}").contains("in-memory SQLite"), "{err:#}");
    }

    #[tokio::test]
    async fn a_busy_sqlite_file_is_unavailable_and_a_constraint_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("busy.db"))
            .create_if_missing(true)
            .busy_timeout(Duration::ZERO);
        let mut holder = SqliteConnection::connect_with(&options).await.unwrap();
        holder
            .execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .await
            .unwrap();
        holder.execute("BEGIN EXCLUSIVE").await.unwrap();
        let mut other = SqliteConnection::connect_with(&options).await.unwrap();

        let busy = other
            .execute("INSERT INTO t (id) VALUES (1)")
            .await
            .unwrap_err();
        holder
            .execute("INSERT INTO t (id) VALUES (1)")
            .await
            .unwrap();
        let duplicate = holder
            .execute("INSERT INTO t (id) VALUES (1)")
            .await
            .unwrap_err();

        assert!(is_unavailable(&busy), "{busy}");
        assert!(!is_unavailable(&duplicate), "{duplicate}");
    }
}
