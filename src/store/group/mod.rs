//! Group commit: the write transactions that many requests make at the same moment (a chat turn's messages and
//! usage) run as one database transaction, one commit for all of them, and each request is answered once its rows
//! are committed.
//!
//! One task per database takes everything queued (at most `MAX_BATCH` pieces of work), opens a transaction, runs
//! the pieces one after the other, commits, then answers. The batch is whatever arrived while the previous one was
//! being written, so a lone request waits for nobody and a busy database commits less often (on SQLite, the pages
//! a batch touches are written to the log once; on PostgreSQL, one flush to disk serves the batch).
//!
//! The transaction is driven with plain `BEGIN`/`COMMIT`/`ROLLBACK` statements, not sqlx's nested transaction
//! objects: sqlx lowers its own transaction depth when a nested `begin` fails, after which its `commit` of the
//! outer transaction does nothing and reports success. Here a piece is answered `Ok` only when the `COMMIT`
//! statement itself succeeded. A piece that fails with a database error (a constraint, say) is answered with its
//! error, and the others run again without it in a fresh transaction: so pieces must be safe to run more than
//! once before a commit (they only write inside the transaction). When the database is unavailable, every piece
//! of the batch gets an error that means so (the HTTP layer answers 503), and none of their rows are stored.
//!
//! A piece may carry a step to take once it is committed (`run_then`): the writer takes these steps in commit
//! order, before it answers the batch, so state kept beside the database (the chat's recent messages) sees every
//! committed piece in order and nothing that was rolled back.

use std::any::Any;

use futures::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool, pool::PoolConnection};
use tokio::sync::{mpsc, oneshot};

/// Pieces of work committed together at most; more wait for the next commit.
const MAX_BATCH: usize = 64;
/// Pieces that may wait for the writer before `run` itself waits for room.
const QUEUE: usize = 1024;

type Value = Box<dyn Any + Send>;
type Work =
    Box<dyn for<'c> Fn(&'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<Value>> + Send + Sync>;
type Committed = Box<dyn FnOnce(&Value) + Send + Sync>;

struct Job {
    work: Work,
    committed: Committed,
    answer: oneshot::Sender<sqlx::Result<Value>>,
}

/// A handle on one database's group-commit writer; clones share it. The task ends when every handle is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer task on `pool` (the pool for writes).
    pub fn start(pool: AnyPool) -> GroupCommit {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(pool, queue));
        GroupCommit { jobs }
    }

    /// Runs `work` inside the next group transaction; its value once that transaction has committed. `work` may
    /// run more than once (when another piece of its batch fails, the batch runs again without that one), always
    /// inside a transaction that is rolled back before the next run; it must not commit or roll back itself.
    pub async fn run<T, F>(&self, work: F) -> sqlx::Result<T>
    where
        T: Send + 'static,
        F: for<'c> Fn(&'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<T>>
            + Send
            + Sync
            + 'static,
    {
        self.run_then(work, |_: &T| {}).await
    }

    /// `run`, and once the piece is committed, `committed` with its value, on the writer, in commit order and
    /// before any piece of the batch is answered. Never called for a piece that was not committed.
    pub async fn run_then<T, F, C>(&self, work: F, committed: C) -> sqlx::Result<T>
    where
        T: Send + 'static,
        F: for<'c> Fn(&'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<T>>
            + Send
            + Sync
            + 'static,
        C: FnOnce(&T) + Send + Sync + 'static,
    {
        let (answer, wait) = oneshot::channel();
        let work: Work = Box::new(move |conn| {
            let piece = work(conn);
            Box::pin(async move { piece.await.map(|v| Box::new(v) as Value) })
        });
        let committed: Committed = Box::new(move |value: &Value| {
            if let Some(value) = value.downcast_ref::<T>() {
                committed(value);
            }
        });
        self.jobs
            .send(Job {
                work,
                committed,
                answer,
            })
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let value = wait.await.map_err(|_| sqlx::Error::WorkerCrashed)??;
        Ok(*value
            .downcast::<T>()
            .expect("a group-commit answer has the type its work returned"))
    }
}

async fn write_batches(pool: AnyPool, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        write_batch(&pool, std::mem::take(&mut batch)).await;
    }
}

/// Writes one batch: runs the pieces in one transaction and answers them. A piece that fails alone is answered
/// with its error and the rest run again without it, so this loops at most once per piece.
async fn write_batch(pool: &AnyPool, mut batch: Vec<Job>) {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => return refuse_all(batch, &e),
    };
    while !batch.is_empty() {
        match attempt(&mut conn, &batch).await {
            Ok(values) => {
                let (steps, answers): (Vec<_>, Vec<_>) =
                    batch.into_iter().map(|j| (j.committed, j.answer)).unzip();
                for (committed, value) in steps.into_iter().zip(&values) {
                    committed(value);
                }
                for (answer, value) in answers.into_iter().zip(values) {
                    let _ = answer.send(Ok(value));
                }
                return;
            }
            Err(Failure::Piece(i, e)) if !super::is_unavailable(&e) => {
                // Rolled back already; answer the failing piece and run the others again.
                let job = batch.remove(i);
                let _ = job.answer.send(Err(e));
            }
            Err(Failure::Piece(_, e) | Failure::Control(e)) => {
                // The connection may be in any state: it is not given back to the pool.
                let _ = PoolConnection::detach(conn);
                return refuse_all(batch, &e);
            }
        }
    }
}

enum Failure {
    /// Piece `i` failed; the transaction has been rolled back.
    Piece(usize, sqlx::Error),
    /// `BEGIN`, `COMMIT` or `ROLLBACK` failed: the state of the transaction is unknown.
    Control(sqlx::Error),
}

/// One transaction over the whole batch: the pieces' values if `COMMIT` succeeded.
async fn attempt(conn: &mut AnyConnection, batch: &[Job]) -> Result<Vec<Value>, Failure> {
    control(conn, "BEGIN").await.map_err(Failure::Control)?;
    let mut values = Vec::with_capacity(batch.len());
    for (i, job) in batch.iter().enumerate() {
        match (job.work)(conn).await {
            Ok(value) => values.push(value),
            Err(e) => {
                control(conn, "ROLLBACK").await.map_err(Failure::Control)?;
                return Err(Failure::Piece(i, e));
            }
        }
    }
    control(conn, "COMMIT").await.map_err(Failure::Control)?;
    Ok(values)
}

/// `BEGIN`, `COMMIT` or `ROLLBACK`, as a statement the connection keeps prepared (a plain `execute` of a string
/// prepares it each time: two prepares per batch, seen under callgrind).
async fn control(conn: &mut AnyConnection, statement: &'static str) -> sqlx::Result<()> {
    sqlx::query(statement).execute(&mut *conn).await.map(|_| ())
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
    use sqlx::{Executor, any::AnyPoolOptions};

    use super::*;

    async fn memory_pool() -> AnyPool {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        pool.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .await
            .unwrap();
        pool
    }

    async fn insert(group: &GroupCommit, id: i64) -> sqlx::Result<i64> {
        group
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO t (id, v) VALUES ($1, 'x')")
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    Ok(id)
                })
            })
            .await
    }

    async fn ids(pool: &AnyPool) -> Vec<i64> {
        sqlx::query_as::<_, (i64,)>("SELECT id FROM t ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(id,)| id)
            .collect()
    }

    #[tokio::test]
    async fn concurrent_pieces_are_committed_and_a_failing_one_is_undone_alone() {
        let pool = memory_pool().await;
        let group = GroupCommit::start(pool.clone());
        // Piece 3 inserts a row, then fails on a duplicate key: its first row must be undone, the others kept.
        let failing = group.run(|conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t (id, v) VALUES (30, 'x')")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("INSERT INTO t (id, v) VALUES (30, 'again')")
                    .execute(&mut *conn)
                    .await?;
                Ok(30)
            })
        });
        let (a, b, c, d) = tokio::join!(
            insert(&group, 1),
            insert(&group, 2),
            failing,
            insert(&group, 4),
        );
        assert_eq!((a.unwrap(), b.unwrap(), d.unwrap()), (1, 2, 4));
        assert!(c.unwrap_err().as_database_error().is_some());
        assert_eq!(ids(&pool).await, [1, 2, 4]);
        // The connection is left outside any transaction: a write outside the writer is durable at once.
        pool.execute("INSERT INTO t (id, v) VALUES (5, 'y')")
            .await
            .unwrap();
        assert_eq!(ids(&pool).await, [1, 2, 4, 5]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn steps_after_commit_run_in_commit_order_before_the_answers_and_never_for_a_failed_piece()
     {
        let pool = memory_pool().await;
        let group = GroupCommit::start(pool.clone());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        // Each piece inserts `id` (30 twice: it fails) and, once committed, notes its id after a pause; its caller
        // reads the notes as soon as it is answered. Had the answer gone out before the step, the caller, free on
        // the other worker thread, would read them during the pause, without its own id.
        let piece = |id: i64| {
            let (seen, noted) = (seen.clone(), seen.clone());
            let group = group.clone();
            async move {
                let stored = group
                    .run_then(
                        move |conn| {
                            Box::pin(async move {
                                sqlx::query("INSERT INTO t (id, v) VALUES ($1, 'x')")
                                    .bind(id)
                                    .execute(&mut *conn)
                                    .await?;
                                if id == 30 {
                                    sqlx::query("INSERT INTO t (id, v) VALUES (30, 'again')")
                                        .execute(&mut *conn)
                                        .await?;
                                }
                                Ok(id)
                            })
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
                    assert!(seen.contains(id), "{id} answered before its step: {seen:?}");
                    assert_eq!(seen[..], [1, 2, 4][..seen.len()]);
                }
                Err(e) => assert!(e.as_database_error().is_some(), "{e}"),
            }
        }
        assert!(answers[2].0.is_err());
        assert_eq!(*seen.lock().unwrap(), [1, 2, 4]);
        assert_eq!(ids(&pool).await, [1, 2, 4]);
    }

    #[tokio::test]
    async fn pieces_queued_together_share_one_commit() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("g.db").display());
        let writer = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        writer
            .execute(
                "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
            )
            .await
            .unwrap();
        let reader = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let group = GroupCommit::start(writer.clone());
        // Each piece inserts a row and reports how many rows are committed, as another connection sees them:
        // the same number for every piece of one transaction, so the distinct numbers count the commits.
        let piece = |id: i64| {
            let reader = reader.clone();
            group.run(move |conn| {
                let reader = reader.clone();
                Box::pin(async move {
                    sqlx::query("INSERT INTO t (id, v) VALUES ($1, 'x')")
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM t")
                        .fetch_one(&reader)
                        .await?;
                    Ok(n)
                })
            })
        };
        let committed = futures::future::join_all((1..=20).map(piece)).await;
        let mut commits: Vec<i64> = committed.into_iter().map(Result::unwrap).collect();
        commits.dedup();
        assert!(commits.len() < 20, "one transaction per piece: {commits:?}");
        assert_eq!(ids(&writer).await, (1..=20).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_closed_database_answers_every_piece_with_an_error_that_means_unavailable() {
        let pool = memory_pool().await;
        let group = GroupCommit::start(pool.clone());
        pool.close().await;
        let err = insert(&group, 1).await.unwrap_err();
        assert!(crate::store::is_unavailable(&err), "{err}");
    }
}
