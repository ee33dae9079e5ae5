//! The group commit's writer on a pool (PostgreSQL): a task that runs each batch on a pooled connection.

use std::{ops::Range, panic::AssertUnwindSafe};

use futures::FutureExt;
use sqlx::{Any, AnyConnection, AnyPool, pool::PoolConnection};
use tokio::sync::mpsc;

use super::{AnyPiece, Failure, Job, MAX_BATCH, Next, Value, refuse_all, settle};

pub(super) async fn write_batches(pool: AnyPool, mut queue: mpsc::Receiver<Job>) {
    // The connection is kept from one batch to the next while more work waits: taking it from the pool again
    // costs a round trip (the pool tests a connection before handing it out), as much as a batch run together.
    // It goes back once the queue is empty, so an idle writer holds nothing, and a connection broken while idle
    // (the database restarted) is caught by the pool's test instead of failing the next batch.
    let mut held: Option<PoolConnection<Any>> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut conn = match held.take() {
            Some(conn) => conn,
            None => match pool.acquire().await {
                Ok(conn) => conn,
                Err(e) => {
                    refuse_all(std::mem::take(&mut batch), &e);
                    continue;
                }
            },
        };
        let written = AssertUnwindSafe(write_batch(&mut conn, std::mem::take(&mut batch)))
            .catch_unwind()
            .await;
        let trusted = match written {
            Ok(trusted) => trusted,
            Err(_) => {
                super::panicked();
                false
            }
        };
        if !trusted {
            // The connection may be in any state (a transaction left open): it is not given back to the pool.
            let _ = PoolConnection::detach(conn);
        } else if !queue.is_empty() {
            held = Some(conn);
        }
    }
}

/// Writes one batch: runs the pieces in one transaction and answers them. A piece that fails alone is answered
/// with its error and the rest run again without it, so this loops at most once per piece (once more when pieces
/// run together failed, and `CONFLICT_RETRIES` more after deadlocks). False when the connection can no longer be
/// trusted (the pieces left are then answered with the error).
async fn write_batch(conn: &mut AnyConnection, mut batch: Vec<Job>) -> bool {
    let (mut together, mut conflicts) = (true, 0);
    loop {
        let attempt = attempt(conn, &batch, together).await;
        if conflicts < CONFLICT_RETRIES && is_conflict(&attempt) {
            conflicts += 1;
            continue;
        }
        match settle(&mut batch, attempt) {
            Next::Done => return true,
            Next::Again => {}
            Next::Apart => together = false,
            Next::Refuse(e) => {
                refuse_all(batch, &e);
                return false;
            }
        }
    }
}

/// How many times a batch runs again, rolled back by the database to break a deadlock with another transaction
/// (another instance's batch, say, holding a user's usage row and waiting for a conversation this one holds),
/// before its piece is answered with that error. The other transaction goes on once this one is rolled back.
const CONFLICT_RETRIES: usize = 3;

/// Whether an attempt failed on a deadlock or a serialisation failure: nothing wrong with the pieces, only their
/// timing against another transaction.
fn is_conflict(attempt: &Result<Vec<Value>, Failure>) -> bool {
    let (Err(Failure::Piece(_, e)) | Err(Failure::Together(e))) = attempt else {
        return false;
    };
    e.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

/// One transaction over the whole batch: the pieces' values if it committed. With `together`, consecutive pieces
/// of a kind that can run together do (`Piece::run_pooled_together`); a batch that is one such run is one
/// statement, which commits alone, without `BEGIN` and `COMMIT`.
async fn attempt(
    conn: &mut AnyConnection,
    batch: &[Job],
    together: bool,
) -> Result<Vec<Value>, Failure> {
    let one_by_one = || (0..batch.len()).map(|i| i..i + 1).collect();
    let mut runs = if together { runs(batch) } else { one_by_one() };
    if let [run] = runs.as_slice()
        && run.len() > 1
    {
        match run_together(conn, &batch[run.clone()]).await {
            Some(values) => return values.map_err(Failure::Together),
            // Their kind cannot run together: not asked again below.
            None => runs = one_by_one(),
        }
    }
    control(conn, "BEGIN").await.map_err(Failure::Control)?;
    let mut values = Vec::with_capacity(batch.len());
    for run in runs {
        if let Some(written) = run_together(conn, &batch[run.clone()]).await {
            match written {
                Ok(written) => values.extend(written),
                Err(e) => return rolled_back(conn, Failure::Together(e)).await,
            }
            continue;
        }
        for i in run {
            match batch[i].piece.run_pooled(conn).await {
                Ok(value) => values.push(value),
                Err(e) => return rolled_back(conn, Failure::Piece(i, e)).await,
            }
        }
    }
    control(conn, "COMMIT").await.map_err(Failure::Control)?;
    Ok(values)
}

/// Rolls the transaction back after `failure`.
async fn rolled_back(conn: &mut AnyConnection, failure: Failure) -> Result<Vec<Value>, Failure> {
    control(conn, "ROLLBACK").await.map_err(Failure::Control)?;
    Err(failure)
}

/// The batch cut into runs: consecutive pieces of one kind (each alone when its kind cannot run together).
fn runs(batch: &[Job]) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    for (i, job) in batch.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if batch[run.start].piece.kind() == job.piece.kind() => run.end = i + 1,
            _ => runs.push(i..i + 1),
        }
    }
    runs
}

/// Runs `jobs` (of one kind) as one statement: `None` when they are a single piece or their kind cannot.
async fn run_together(conn: &mut AnyConnection, jobs: &[Job]) -> Option<sqlx::Result<Vec<Value>>> {
    if jobs.len() < 2 {
        return None;
    }
    let pieces: Vec<&dyn AnyPiece> = jobs.iter().map(|j| j.piece.as_ref()).collect();
    Some(jobs[0].piece.run_pooled_together(&pieces, conn)?.await)
}

/// `BEGIN`, `COMMIT` or `ROLLBACK`, as a statement the connection keeps prepared (a plain `execute` of a string
/// prepares it each time: two prepares per batch, seen under callgrind).
async fn control(conn: &mut AnyConnection, statement: &'static str) -> sqlx::Result<()> {
    sqlx::query(statement).execute(&mut *conn).await.map(|_| ())
}
