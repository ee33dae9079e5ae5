//! Group commit: the write transactions that many requests make at the same moment (a chat turn's messages and
//! usage) run as one database transaction, one commit for all of them, and each request is answered once its rows
//! are committed.
//!
//! One task per database takes everything queued (at most `MAX_BATCH` pieces of work), opens a transaction, runs
//! each piece in its own savepoint, commits, then answers. The batch is whatever arrived while the previous one
//! was being written, so a lone request waits for nobody and a busy database commits less often. A piece that
//! fails is rolled back to its savepoint alone and answered with its error at once; a failed commit answers every
//! piece of the batch with an I/O error (so the HTTP layer answers 503), and none of their rows are stored.

use std::any::Any;

use futures::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool, Connection};
use tokio::sync::{mpsc, oneshot};

/// Pieces of work committed together at most; more wait for the next commit.
const MAX_BATCH: usize = 64;
/// Pieces that may wait for the writer before `run` itself waits for room.
const QUEUE: usize = 1024;

type Value = Box<dyn Any + Send>;
type Work =
    Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<Value>> + Send>;

struct Job {
    work: Work,
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

    /// Runs `work` inside the next group transaction; its value once that transaction has committed. `work` runs
    /// in a savepoint: its error undoes its own statements only. It must not commit or roll back itself.
    pub async fn run<T, F>(&self, work: F) -> sqlx::Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, sqlx::Result<T>> + Send + 'static,
    {
        let (answer, wait) = oneshot::channel();
        let work: Work = Box::new(move |conn| {
            Box::pin(async move { work(conn).await.map(|v| Box::new(v) as Value) })
        });
        self.jobs
            .send(Job { work, answer })
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

async fn write_batch(pool: &AnyPool, batch: Vec<Job>) {
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => return refuse_all(batch.into_iter().map(|j| j.answer), &e),
    };
    let mut tx = match conn.begin().await {
        Ok(tx) => tx,
        Err(e) => return refuse_all(batch.into_iter().map(|j| j.answer), &e),
    };
    let mut done = Vec::with_capacity(batch.len());
    for Job { work, answer } in batch {
        let mut savepoint = match tx.begin().await {
            Ok(sp) => sp,
            Err(e) => {
                let _ = answer.send(Err(e));
                continue;
            }
        };
        match work(&mut savepoint).await {
            Ok(value) => match savepoint.commit().await {
                Ok(()) => done.push((answer, value)),
                Err(e) => {
                    let _ = answer.send(Err(e));
                }
            },
            Err(e) => {
                // Dropping the savepoint would roll it back too, but only lazily: roll back now, so the next
                // piece starts from a clean state.
                let _ = savepoint.rollback().await;
                let _ = answer.send(Err(e));
            }
        }
    }
    match tx.commit().await {
        Ok(()) => {
            for (answer, value) in done {
                let _ = answer.send(Ok(value));
            }
        }
        Err(e) => refuse_all(done.into_iter().map(|(answer, _)| answer), &e),
    }
}

/// Answers pieces that were not committed with a copy of the one error that stopped them (sqlx errors do not
/// clone): an I/O error, which callers treat as the database being unavailable.
fn refuse_all(
    answers: impl Iterator<Item = oneshot::Sender<sqlx::Result<Value>>>,
    cause: &sqlx::Error,
) {
    tracing::warn!(error = %cause, "a group commit failed");
    for answer in answers {
        let _ = answer.send(Err(sqlx::Error::Io(std::io::Error::other(format!(
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
