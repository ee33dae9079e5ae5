//! Group commit: the write transactions that many requests make at the same moment (a chat turn's messages and
//! usage) run as one database transaction, one commit for all of them, and each request is answered once its rows
//! are committed.
//!
//! One writer per database takes everything queued (at most `MAX_BATCH` pieces of work), opens a transaction,
//! runs the pieces one after the other, commits, then answers. The batch is whatever arrived while the previous
//! one was being written, so a lone request waits for nobody and a busy database commits less often (on SQLite,
//! the pages a batch touches are written to the log once; on PostgreSQL, one flush to disk serves the batch).
//!
//! Two writers, one per backend, because the costs differ:
//! - PostgreSQL (`pooled`): a task that runs each batch on a connection of the pool, through sqlx. Each statement
//!   is a round trip to the server, so pieces of one kind queued one after another run as one statement where
//!   their kind has one (`Piece::run_pooled_together`: the chat's appends). With the writer keeping its
//!   connection while work waits, a batch of appends became one round trip instead of one per append and three
//!   more; S2 on PostgreSQL went from 5.6x to 12.7x the Python baseline.
//! - SQLite (`sqlite`): a thread of its own with its own connection to the file, on which it runs each batch
//!   directly. Through sqlx every statement, and the batch's `BEGIN` and `COMMIT`, is a hand-off to the
//!   connection's worker thread and back; without them a chat turn took 40% less CPU (151 -> 91 µs).
//!
//! So a piece of work is written for each (`Piece`). The transaction is driven with plain `BEGIN`/`COMMIT`/
//! `ROLLBACK` statements, not sqlx's nested transaction objects: sqlx lowers its own transaction depth when a
//! nested `begin` fails, after which its `commit` of the outer transaction does nothing and reports success. Here
//! a piece is answered `Ok` only when the `COMMIT` statement itself succeeded. A piece that fails with a database
//! error (a constraint, say) is answered with its error, and the others run again without it in a fresh
//! transaction: so pieces must be safe to run more than once before a commit (they only write inside the
//! transaction). When the database is unavailable, every piece of the batch gets an error that means so (the
//! HTTP layer answers 503), and none of their rows are stored.
//!
//! A piece may carry a step to take once it is committed (`run_then`): the writer takes these steps in commit
//! order, before it answers the batch, so state kept beside the database (the chat's recent messages) sees every
//! committed piece in order and nothing that was rolled back.

mod pooled;
mod sqlite;

use std::{
    any::{Any, TypeId},
    path::PathBuf,
};

use futures::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

pub use sqlite::SqliteWriteError;

/// Pieces of work committed together at most; more wait for the next commit.
const MAX_BATCH: usize = 64;
/// Pieces that may wait for the writer before `run` itself waits for room.
const QUEUE: usize = 1024;

/// One piece of work of the group commit, written for each writer. Either may run more than once (when another
/// piece of its batch fails, the batch runs again without that one), always inside a transaction that is rolled
/// back before the next run; it must not commit or roll back itself.
pub trait Piece: Send + Sync + 'static {
    type Value: Send + 'static;
    /// On a connection of the pool (PostgreSQL).
    fn run_pooled<'c>(
        &'c self,
        conn: &'c mut AnyConnection,
    ) -> BoxFuture<'c, sqlx::Result<Self::Value>>;
    /// On the SQLite writer's own connection, on its thread (statements prepared there are kept).
    fn run_sqlite(&self, conn: &rusqlite::Connection) -> rusqlite::Result<Self::Value>;
    /// On a connection of the pool, several pieces of this kind that were queued one after another, as one
    /// statement (one round trip for all of them instead of one each): their values in order. `None`, the default,
    /// when the kind has no such statement; they then run one by one. The writer runs the statement inside its
    /// transaction, or alone when it is the whole batch (a statement is its own transaction). When it fails, the
    /// batch runs again one piece at a time, so that only the piece at fault is answered with the error.
    #[allow(clippy::type_complexity)]
    fn run_pooled_together<'c>(
        pieces: Vec<&'c Self>,
        conn: &'c mut AnyConnection,
    ) -> Option<BoxFuture<'c, sqlx::Result<Vec<Self::Value>>>>
    where
        Self: Sized,
    {
        let _ = (pieces, conn);
        None
    }
}

type Value = Box<dyn Any + Send>;
type Committed = Box<dyn FnOnce(&Value) + Send + Sync>;

/// A `Piece` whose value is boxed, so that one queue holds pieces of every kind.
trait AnyPiece: Send + Sync {
    fn run_pooled<'c>(&'c self, conn: &'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<Value>>;
    fn run_sqlite(&self, conn: &rusqlite::Connection) -> rusqlite::Result<Value>;
    /// The piece's kind: pieces of one kind may run together.
    fn kind(&self) -> TypeId;
    /// `Piece::run_pooled_together` for `pieces`, all of this piece's kind.
    fn run_pooled_together<'c>(
        &self,
        pieces: &'c [&'c dyn AnyPiece],
        conn: &'c mut AnyConnection,
    ) -> Option<BoxFuture<'c, sqlx::Result<Vec<Value>>>>;
    fn as_any(&self) -> &dyn Any;
}

impl<P: Piece> AnyPiece for P {
    fn kind(&self) -> TypeId {
        TypeId::of::<P>()
    }

    fn run_pooled_together<'c>(
        &self,
        pieces: &'c [&'c dyn AnyPiece],
        conn: &'c mut AnyConnection,
    ) -> Option<BoxFuture<'c, sqlx::Result<Vec<Value>>>> {
        let pieces = pieces
            .iter()
            .map(|p| {
                p.as_any()
                    .downcast_ref::<P>()
                    .expect("pieces run together are of one kind")
            })
            .collect();
        let values = P::run_pooled_together(pieces, conn)?;
        Some(Box::pin(async move {
            Ok(values
                .await?
                .into_iter()
                .map(|v| Box::new(v) as Value)
                .collect())
        }))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn run_pooled<'c>(&'c self, conn: &'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<Value>> {
        Box::pin(async move {
            Piece::run_pooled(self, conn)
                .await
                .map(|v| Box::new(v) as Value)
        })
    }

    fn run_sqlite(&self, conn: &rusqlite::Connection) -> rusqlite::Result<Value> {
        Piece::run_sqlite(self, conn).map(|v| Box::new(v) as Value)
    }
}

struct Job {
    piece: Box<dyn AnyPiece>,
    committed: Committed,
    answer: oneshot::Sender<sqlx::Result<Value>>,
}

/// A handle on one database's group-commit writer; clones share it. The writer ends when every handle is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer task that runs each batch on a connection of `pool` (PostgreSQL's).
    pub fn pooled(pool: AnyPool) -> GroupCommit {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(pooled::write_batches(pool, queue));
        GroupCommit { jobs }
    }

    /// Starts the writer thread for the SQLite database at `path`. `writer` is the pool that every other write
    /// goes through (one connection): the thread holds that connection while it writes a batch, so writes
    /// outside the group wait for it there, in order, instead of finding the file locked. Must be called
    /// within the runtime.
    pub fn sqlite(path: PathBuf, writer: AnyPool) -> GroupCommit {
        let (jobs, queue) = mpsc::channel(QUEUE);
        sqlite::start(path, writer, queue);
        GroupCommit { jobs }
    }

    /// Runs `piece` inside the next group transaction; its value once that transaction has committed.
    pub async fn run<P: Piece>(&self, piece: P) -> sqlx::Result<P::Value> {
        self.run_then(piece, |_: &P::Value| {}).await
    }

    /// `run`, and once the piece is committed, `committed` with its value, on the writer, in commit order and
    /// before any piece of the batch is answered. Never called for a piece that was not committed.
    pub async fn run_then<P, C>(&self, piece: P, committed: C) -> sqlx::Result<P::Value>
    where
        P: Piece,
        C: FnOnce(&P::Value) + Send + Sync + 'static,
    {
        let (answer, wait) = oneshot::channel();
        let committed: Committed = Box::new(move |value: &Value| {
            if let Some(value) = value.downcast_ref::<P::Value>() {
                committed(value);
            }
        });
        self.jobs
            .send(Job {
                piece: Box::new(piece),
                committed,
                answer,
            })
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let value = wait.await.map_err(|_| sqlx::Error::WorkerCrashed)??;
        Ok(*value
            .downcast::<P::Value>()
            .expect("a group-commit answer has the type its piece returned"))
    }
}

enum Failure {
    /// Piece `i` failed; the transaction has been rolled back.
    Piece(usize, sqlx::Error),
    /// `BEGIN`, `COMMIT` or `ROLLBACK` failed: the state of the transaction is unknown.
    Control(sqlx::Error),
    /// Pieces run together failed (`Piece::run_pooled_together`); the transaction has been rolled back.
    Together(sqlx::Error),
}

/// What to do after one attempt at a batch.
enum Next {
    /// Every piece is answered.
    Done,
    /// A piece failed alone and is answered: run the rest again (the batch is one shorter).
    Again,
    /// Pieces run together failed: run the batch again one piece at a time, to find the piece at fault.
    Apart,
    /// The connection cannot be trusted any more (the database unavailable, or a transaction's state unknown);
    /// the pieces left in the batch are not answered.
    Refuse(sqlx::Error),
}

/// Settles one attempt at `batch`: once committed, takes the pieces' steps in order and then answers them all;
/// when one piece failed with an error of its own, answers it and takes it out of the batch.
fn settle(batch: &mut Vec<Job>, attempt: Result<Vec<Value>, Failure>) -> Next {
    match attempt {
        Ok(values) => {
            let (steps, answers): (Vec<_>, Vec<_>) =
                batch.drain(..).map(|j| (j.committed, j.answer)).unzip();
            for (committed, value) in steps.into_iter().zip(&values) {
                committed(value);
            }
            for (answer, value) in answers.into_iter().zip(values) {
                let _ = answer.send(Ok(value));
            }
            Next::Done
        }
        Err(Failure::Piece(i, e)) if !super::is_unavailable(&e) => {
            let job = batch.remove(i);
            let _ = job.answer.send(Err(e));
            if batch.is_empty() {
                Next::Done
            } else {
                Next::Again
            }
        }
        Err(Failure::Together(e)) if !super::is_unavailable(&e) => Next::Apart,
        Err(Failure::Piece(_, e) | Failure::Control(e) | Failure::Together(e)) => Next::Refuse(e),
    }
}

/// After a piece or a step panicked (a bug): the pieces of its batch were dropped unanswered, so their callers get
/// an error that means "unavailable" (503), whether or not the batch had committed; the writer goes on with the
/// next batch on a fresh connection, instead of ending and leaving every later write unanswered.
fn panicked() {
    tracing::error!("a group-commit batch panicked; its pieces were answered with an error");
}

/// Answers pieces that were not committed with a copy of the one error that stopped them (sqlx errors do not
/// clone): an I/O error, which callers treat as the database being unavailable.
fn refuse_all(batch: Vec<Job>, cause: &sqlx::Error) {
    tracing::warn!(error = %cause, pieces = batch.len(), "a group commit failed");
    for job in batch {
        let _ = job
            .answer
            .send(Err(sqlx::Error::Io(std::io::Error::other(format!(
                "group commit failed: {cause}"
            )))));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use sqlx::{Executor, any::AnyPoolOptions};

    use super::*;

    /// A database file with a table `t`, its one-connection write pool, and a group-commit writer of each kind
    /// on it: the pooled one (PostgreSQL's, here on SQLite through sqlx) and SQLite's own.
    struct Fixture {
        _dir: tempfile::TempDir,
        path: PathBuf,
        pool: AnyPool,
    }

    async fn fixture() -> Fixture {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        pool.execute(
            "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
        )
        .await
        .unwrap();
        Fixture {
            _dir: dir,
            path,
            pool,
        }
    }

    impl Fixture {
        fn writers(&self) -> [(&'static str, GroupCommit); 2] {
            [
                ("pooled", GroupCommit::pooled(self.pool.clone())),
                (
                    "sqlite",
                    GroupCommit::sqlite(self.path.clone(), self.pool.clone()),
                ),
            ]
        }

        async fn ids(&self) -> Vec<i64> {
            sqlx::query_as::<_, (i64,)>("SELECT id FROM t ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .unwrap()
                .into_iter()
                .map(|(id,)| id)
                .collect()
        }

        async fn clear(&self) {
            self.pool.execute("DELETE FROM t").await.unwrap();
        }
    }

    /// Inserts row `id`; with `again`, inserts it a second time, which fails on the key after the first insert.
    struct Insert {
        id: i64,
        again: bool,
    }

    fn insert(id: i64) -> Insert {
        Insert { id, again: false }
    }

    const INSERT: &str = "INSERT INTO t (id, v) VALUES ($1, 'x')";

    impl Piece for Insert {
        type Value = i64;

        fn run_pooled<'c>(
            &'c self,
            conn: &'c mut AnyConnection,
        ) -> BoxFuture<'c, sqlx::Result<i64>> {
            Box::pin(async move {
                for _ in 0..=usize::from(self.again) {
                    sqlx::query(INSERT)
                        .bind(self.id)
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(self.id)
            })
        }

        fn run_sqlite(&self, conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
            for _ in 0..=usize::from(self.again) {
                conn.execute(&INSERT.replace('$', "?"), [self.id])?;
            }
            Ok(self.id)
        }
    }

    #[tokio::test]
    async fn concurrent_pieces_are_committed_and_a_failing_one_is_undone_alone() {
        let db = fixture().await;
        for (kind, group) in db.writers() {
            db.clear().await;
            // Piece 30 inserts a row, then fails on a duplicate key: its first row must be undone, the others kept.
            let (a, b, c, d) = tokio::join!(
                group.run(insert(1)),
                group.run(insert(2)),
                group.run(Insert {
                    id: 30,
                    again: true
                }),
                group.run(insert(4)),
            );
            assert_eq!((a.unwrap(), b.unwrap(), d.unwrap()), (1, 2, 4), "{kind}");
            let failed = c.unwrap_err();
            let failed = failed.as_database_error().expect(kind);
            assert!(failed.is_unique_violation(), "{kind}: {failed}");
            assert_eq!(db.ids().await, [1, 2, 4], "{kind}");
            // The writer is left outside any transaction: a write outside it is durable at once.
            db.pool
                .execute("INSERT INTO t (id, v) VALUES (5, 'y')")
                .await
                .unwrap();
            assert_eq!(db.ids().await, [1, 2, 4, 5], "{kind}");
            // And it goes on writing.
            assert_eq!(group.run(insert(6)).await.unwrap(), 6, "{kind}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn steps_after_commit_run_in_commit_order_before_the_answers_and_never_for_a_failed_piece()
     {
        let db = fixture().await;
        for (kind, group) in db.writers() {
            db.clear().await;
            let seen = Arc::new(Mutex::new(Vec::new()));
            // Each piece inserts `id` (30 twice: it fails) and, once committed, notes its id after a pause; its
            // caller reads the notes as soon as it is answered. Had the answer gone out before the step, the
            // caller, free on another thread, would read them during the pause, without its own id.
            let piece = |id: i64| {
                let (seen, noted) = (seen.clone(), seen.clone());
                let group = group.clone();
                async move {
                    let stored = group
                        .run_then(
                            Insert {
                                id,
                                again: id == 30,
                            },
                            move |id: &i64| {
                                std::thread::sleep(std::time::Duration::from_millis(20));
                                noted.lock().unwrap().push(*id);
                            },
                        )
                        .await;
                    (stored, seen.lock().unwrap().clone())
                }
            };
            let answers = futures::future::join_all([1, 2, 30, 4].map(piece)).await;
            for (stored, seen) in &answers {
                match stored {
                    // Answered after its own step and those committed before it, in commit order.
                    Ok(id) => {
                        assert!(
                            seen.contains(id),
                            "{kind}: {id} answered before its step: {seen:?}"
                        );
                        assert_eq!(seen[..], [1, 2, 4][..seen.len()], "{kind}");
                    }
                    Err(e) => assert!(e.as_database_error().is_some(), "{kind}: {e}"),
                }
            }
            assert!(answers[2].0.is_err(), "{kind}");
            assert_eq!(*seen.lock().unwrap(), [1, 2, 4], "{kind}");
            assert_eq!(db.ids().await, [1, 2, 4], "{kind}");
        }
    }

    /// Inserts row `id`, and with others of its kind, as one multi-row insert (`run_pooled_together`). Counts
    /// how it ran: `together` statements and pieces `alone`.
    struct Row {
        insert: Insert,
        runs: Arc<Runs>,
    }

    #[derive(Default)]
    struct Runs {
        together: std::sync::atomic::AtomicUsize,
        alone: std::sync::atomic::AtomicUsize,
    }

    impl Runs {
        fn counts(&self) -> (usize, usize) {
            use std::sync::atomic::Ordering::SeqCst;
            (self.together.load(SeqCst), self.alone.load(SeqCst))
        }
    }

    impl Piece for Row {
        type Value = i64;

        fn run_pooled<'c>(
            &'c self,
            conn: &'c mut AnyConnection,
        ) -> BoxFuture<'c, sqlx::Result<i64>> {
            self.runs
                .alone
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Piece::run_pooled(&self.insert, conn)
        }

        fn run_sqlite(&self, conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
            Piece::run_sqlite(&self.insert, conn)
        }

        fn run_pooled_together<'c>(
            rows: Vec<&'c Self>,
            conn: &'c mut AnyConnection,
        ) -> Option<BoxFuture<'c, sqlx::Result<Vec<i64>>>> {
            rows[0]
                .runs
                .together
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let sql = format!(
                "INSERT INTO t (id, v) VALUES {}",
                vec!["(?, 'x')"; rows.len()].join(", ")
            );
            Some(Box::pin(async move {
                let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
                for row in &rows {
                    insert = insert.bind(row.insert.id);
                }
                insert.execute(&mut *conn).await?;
                Ok(rows.iter().map(|r| r.insert.id).collect())
            }))
        }
    }

    #[tokio::test]
    async fn on_the_pool_pieces_of_one_kind_run_together_and_a_failing_one_is_found_and_undone_alone()
     {
        let db = fixture().await;
        let group = GroupCommit::pooled(db.pool.clone());
        let runs = Arc::new(Runs::default());
        let row = |id| Row {
            insert: insert(id),
            runs: runs.clone(),
        };
        // Queued together: one statement for the three.
        let (a, b, c) = tokio::join!(group.run(row(1)), group.run(row(2)), group.run(row(3)));
        assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (1, 2, 3));
        assert_eq!(runs.counts(), (1, 0));
        // A run between pieces of another kind, in one transaction; the second 3 is a duplicate: the statement
        // fails, the batch runs again one piece at a time, and only the duplicate is answered with its error.
        let (a, b, c, d) = tokio::join!(
            group.run(insert(10)),
            group.run(row(11)),
            group.run(row(3)),
            group.run(insert(12)),
        );
        assert_eq!((a.unwrap(), b.unwrap(), d.unwrap()), (10, 11, 12));
        let failed = c.unwrap_err();
        assert!(
            failed.as_database_error().unwrap().is_unique_violation(),
            "{failed}"
        );
        // 11 and 3 alone, then 11 again without 3.
        assert_eq!(runs.counts(), (2, 3));
        assert_eq!(db.ids().await, [1, 2, 3, 10, 11, 12]);
        // A lone piece runs alone.
        assert_eq!(group.run(row(13)).await.unwrap(), 13);
        assert_eq!(runs.counts(), (2, 4));
    }

    /// Inserts row 50, then panics: a bug in a piece.
    struct Panics;

    impl Piece for Panics {
        type Value = ();

        fn run_pooled<'c>(
            &'c self,
            conn: &'c mut AnyConnection,
        ) -> BoxFuture<'c, sqlx::Result<()>> {
            Box::pin(async move {
                Piece::run_pooled(&insert(50), conn).await?;
                panic!("a bug in a piece");
            })
        }

        fn run_sqlite(&self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
            Piece::run_sqlite(&insert(50), conn)?;
            panic!("a bug in a piece");
        }
    }

    #[tokio::test]
    async fn a_piece_that_panics_is_answered_unavailable_and_the_writer_goes_on() {
        let db = fixture().await;
        for (kind, group) in db.writers() {
            db.clear().await;
            let err = group.run(Panics).await.unwrap_err();
            assert!(crate::store::is_unavailable(&err), "{kind}: {err}");
            assert_eq!(group.run(insert(1)).await.unwrap(), 1, "{kind}");
            // The panicking piece's row was rolled back with its connection.
            assert_eq!(db.ids().await, [1], "{kind}");
        }
    }

    /// Inserts a row and reports how many rows are committed, as another connection sees them.
    struct InsertAndCount {
        id: i64,
        path: PathBuf,
    }

    impl Piece for InsertAndCount {
        type Value = i64;

        fn run_pooled<'c>(
            &'c self,
            conn: &'c mut AnyConnection,
        ) -> BoxFuture<'c, sqlx::Result<i64>> {
            Box::pin(async move {
                Piece::run_pooled(&insert(self.id), conn).await?;
                Ok(self.committed_rows())
            })
        }

        fn run_sqlite(&self, conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
            Piece::run_sqlite(&insert(self.id), conn)?;
            Ok(self.committed_rows())
        }
    }

    impl InsertAndCount {
        fn committed_rows(&self) -> i64 {
            let reader = rusqlite::Connection::open(&self.path).unwrap();
            reader
                .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
                .unwrap()
        }
    }

    #[tokio::test]
    async fn pieces_queued_together_share_one_commit() {
        let db = fixture().await;
        for (kind, group) in db.writers() {
            db.clear().await;
            // Every piece of one transaction sees the same number of committed rows, so the distinct numbers
            // count the commits.
            let pieces = (1..=20).map(|id| {
                group.run(InsertAndCount {
                    id,
                    path: db.path.clone(),
                })
            });
            let mut commits: Vec<i64> = futures::future::join_all(pieces)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            commits.dedup();
            assert!(
                commits.len() < 20,
                "{kind}: one transaction per piece: {commits:?}"
            );
            assert_eq!(db.ids().await, (1..=20).collect::<Vec<_>>(), "{kind}");
        }
    }

    #[tokio::test]
    async fn a_closed_database_answers_every_piece_with_an_error_that_means_unavailable() {
        let db = fixture().await;
        let writers = db.writers();
        db.pool.close().await;
        for (kind, group) in writers {
            let err = group.run(insert(1)).await.unwrap_err();
            assert!(crate::store::is_unavailable(&err), "{kind}: {err}");
        }
    }

    /// Inserts row `.0` and takes half a millisecond doing it.
    struct SlowInsert(i64);

    impl Piece for SlowInsert {
        type Value = ();

        fn run_pooled<'c>(&'c self, _: &'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<()>> {
            unreachable!("only SQLite's writer runs this piece")
        }

        fn run_sqlite(&self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
            std::thread::sleep(std::time::Duration::from_micros(500));
            Piece::run_sqlite(&insert(self.0), conn).map(|_| ())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_sqlite_a_write_outside_the_group_gets_its_turn_under_sustained_load() {
        use std::sync::atomic::{AtomicI64, Ordering};

        let db = fixture().await;
        let group = GroupCommit::sqlite(db.path.clone(), db.pool.clone());
        // 128 callers each submit a piece as soon as the last is answered: twice what a batch holds, so work is
        // always waiting and the writer keeps the write pool's connection from batch to batch. 40 pieces each
        // of half a millisecond: about 2.6 s of load, of which the write outside must not wait for the end.
        let next = Arc::new(AtomicI64::new(100));
        let load: Vec<_> = (0..128)
            .map(|_| {
                let (group, next) = (group.clone(), next.clone());
                tokio::spawn(async move {
                    for _ in 0..40 {
                        let id = next.fetch_add(1, Ordering::Relaxed);
                        group.run(SlowInsert(id)).await.unwrap();
                    }
                })
            })
            .collect();
        while next.load(Ordering::Relaxed) < 300 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        db.pool
            .execute("INSERT INTO t (id, v) VALUES (1, 'outside')")
            .await
            .unwrap();
        let submitted = next.load(Ordering::Relaxed) - 100;
        let load_running = load.iter().any(|task| !task.is_finished());
        for task in load {
            task.await.unwrap();
        }
        assert!(
            load_running,
            "the write outside the group waited for the whole load ({submitted} pieces submitted)"
        );
        assert!(submitted < 128 * 40, "{submitted}");
    }

    #[tokio::test]
    async fn on_sqlite_a_file_locked_elsewhere_is_unavailable_and_the_writer_recovers_once_it_is_free()
     {
        let db = fixture().await;
        let group = GroupCommit::sqlite(db.path.clone(), db.pool.clone());
        group.run(insert(1)).await.unwrap();
        // Another process (a CLI command, say) holds the file's write lock past the 5 s busy timeout.
        let other = rusqlite::Connection::open(&db.path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let err = group.run(insert(2)).await.unwrap_err();
        assert!(crate::store::is_unavailable(&err), "{err}");
        other.execute_batch("ROLLBACK").unwrap();
        // The same writer goes on once the file is free.
        assert_eq!(group.run(insert(3)).await.unwrap(), 3);
        assert_eq!(db.ids().await, [1, 3]);
    }

    #[test]
    fn sqlite_errors_read_as_sqlx_reads_them() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
            .unwrap();
        let duplicate = sqlite::to_sqlx(conn.execute("INSERT INTO t VALUES (1)", []).unwrap_err());
        assert!(
            crate::store::Db::is_unique_violation(&duplicate),
            "{duplicate}"
        );
        assert!(!crate::store::is_unavailable(&duplicate), "{duplicate}");
        let busy = sqlite::to_sqlx(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ));
        assert!(crate::store::is_unavailable(&busy), "{busy}");
    }
}
