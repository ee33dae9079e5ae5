//! The group commit's writer on SQLite: a thread with its own connection to the database file, which runs each
//! batch on it directly (statements stay prepared on it), while it holds the write pool's one connection.

use std::{
    borrow::Cow,
    fmt,
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
};

use rusqlite::{Connection, OpenFlags};
use sqlx::{AnyPool, error::ErrorKind};
use tokio::{runtime::Handle, sync::mpsc};

use super::{Failure, Job, MAX_BATCH, Next, Value, refuse_all, settle};

/// Batches written, at most, while the write pool's connection is held once.
const BATCHES_PER_HOLD: usize = 16;
/// Statements kept prepared on the writer's connection (a chat append has a few shapes, one per length).
const KEPT_STATEMENTS: usize = 64;

pub(super) fn start(path: PathBuf, writer: AnyPool, queue: mpsc::Receiver<Job>) {
    let runtime = Handle::current();
    std::thread::Builder::new()
        .name("group-commit".into())
        .spawn(move || write_batches(&path, &writer, &runtime, queue))
        .expect("the group commit's thread starts");
}

fn write_batches(path: &Path, writer: &AnyPool, runtime: &Handle, mut queue: mpsc::Receiver<Job>) {
    // Opened at the first batch (after the migrations) and again after a failure.
    let mut conn: Option<Connection> = None;
    // The write pool's one connection, held while batches are written: the writes outside the group wait for it
    // in the pool, in order, instead of finding the file locked (where SQLite sleeps and polls). It is kept from
    // one batch to the next while more work waits (sqlx tests a connection given back, a round trip to its
    // worker thread), for at most BATCHES_PER_HOLD batches, so the writes outside the group get their turn.
    let mut held = None;
    let mut batches_held = 0;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = queue.blocking_recv() {
        batch.push(job);
        while batch.len() < MAX_BATCH
            && let Ok(job) = queue.try_recv()
        {
            batch.push(job);
        }
        if held.is_none() {
            match runtime.block_on(writer.acquire()) {
                Ok(conn) => held = Some(conn),
                Err(e) => {
                    refuse_all(std::mem::take(&mut batch), &e);
                    continue;
                }
            }
            batches_held = 0;
        }
        let pieces = std::mem::take(&mut batch);
        match std::panic::catch_unwind(AssertUnwindSafe(|| write_batch(&mut conn, path, pieces))) {
            Ok(Ok(())) => {}
            Ok(Err((unanswered, e))) => refuse_all(unanswered, &e),
            Err(_) => {
                super::panicked();
                // Closed, rolling back whatever transaction the panic left open.
                conn = None;
            }
        }
        batches_held += 1;
        if queue.is_empty() || batches_held == BATCHES_PER_HOLD {
            // Given back within the runtime: the pool tests a connection given back on a task of its own.
            let _runtime = runtime.enter();
            held = None;
        }
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // As the pool's connections (store::options); the file is already in WAL mode, which the pool set.
    conn.execute_batch(
        "PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;",
    )?;
    conn.set_prepared_statement_cache_capacity(KEPT_STATEMENTS);
    Ok(conn)
}

/// Writes one batch on `conn` (opened first if it is not): runs the pieces in one transaction and answers them.
/// A piece that fails alone is answered with its error and the rest run again without it, so this loops at most
/// once per piece. Any other error hands back the pieces not answered, and closes the connection, whose
/// transaction may be in any state (a fresh one serves the next batch).
fn write_batch(
    conn: &mut Option<Connection>,
    path: &Path,
    mut batch: Vec<Job>,
) -> Result<(), (Vec<Job>, sqlx::Error)> {
    if conn.is_none() {
        match open(path) {
            Ok(opened) => *conn = Some(opened),
            Err(e) => return Err((batch, to_sqlx(e))),
        }
    }
    let open = conn.as_ref().expect("opened above");
    loop {
        let attempt = attempt(open, &batch);
        match settle(&mut batch, attempt) {
            Next::Done => return Ok(()),
            // This writer runs every piece alone (`Apart` follows only pieces run together).
            Next::Again | Next::Apart => {}
            Next::Refuse(e) => {
                *conn = None;
                return Err((batch, e));
            }
        }
    }
}

/// One transaction over the whole batch: the pieces' values if `COMMIT` succeeded. `BEGIN IMMEDIATE` takes the
/// file's write lock at once, so a transaction never has to upgrade a read to a write halfway.
fn attempt(conn: &Connection, batch: &[Job]) -> Result<Vec<Value>, Failure> {
    let control = |sql| {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map_err(|e| Failure::Control(to_sqlx(e)))
    };
    control("BEGIN IMMEDIATE")?;
    let mut values = Vec::with_capacity(batch.len());
    for (i, job) in batch.iter().enumerate() {
        match job.piece.run_sqlite(conn) {
            Ok(value) => values.push(value),
            Err(e) => {
                control("ROLLBACK")?;
                return Err(Failure::Piece(i, to_sqlx(e)));
            }
        }
    }
    control("COMMIT")?;
    Ok(values)
}

/// A rusqlite error as the rest of Warden sees database errors: SQLite's own errors as a database error with
/// its extended result code (as sqlx reports them, so `is_unavailable` and `is_unique_violation` read both
/// alike); anything else (a value of the wrong type, say) as a decoding error, a bug rather than an outage.
pub(super) fn to_sqlx(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::SqliteFailure(failure, message) => {
            sqlx::Error::Database(Box::new(SqliteWriteError {
                code: failure.extended_code,
                message: message.unwrap_or_else(|| failure.to_string()),
            }))
        }
        other => sqlx::Error::Decode(Box::new(other)),
    }
}

/// An error SQLite reported to the group commit's writer.
#[derive(Debug)]
pub struct SqliteWriteError {
    /// The extended result code.
    code: i32,
    message: String,
}

impl fmt::Display for SqliteWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for SqliteWriteError {}

impl sqlx::error::DatabaseError for SqliteWriteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}
