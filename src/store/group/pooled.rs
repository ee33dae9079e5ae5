//! The group commit's writer on a pool (PostgreSQL): a task that runs each batch on a pooled connection.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use sqlx::{AnyConnection, AnyPool, pool::PoolConnection};
use tokio::sync::mpsc;

use super::{Failure, Job, MAX_BATCH, Next, Value, refuse_all, settle};

pub(super) async fn write_batches(pool: AnyPool, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut conn = match pool.acquire().await {
            Ok(conn) => conn,
            Err(e) => {
                refuse_all(std::mem::take(&mut batch), &e);
                continue;
            }
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
        }
    }
}

/// Writes one batch: runs the pieces in one transaction and answers them. A piece that fails alone is answered
/// with its error and the rest run again without it, so this loops at most once per piece. False when the
/// connection can no longer be trusted (the pieces left are then answered with the error).
async fn write_batch(conn: &mut AnyConnection, mut batch: Vec<Job>) -> bool {
    loop {
        let attempt = attempt(conn, &batch).await;
        match settle(&mut batch, attempt) {
            Next::Done => return true,
            Next::Again => {}
            Next::Refuse(e) => {
                refuse_all(batch, &e);
                return false;
            }
        }
    }
}

/// One transaction over the whole batch: the pieces' values if `COMMIT` succeeded.
async fn attempt(conn: &mut AnyConnection, batch: &[Job]) -> Result<Vec<Value>, Failure> {
    control(conn, "BEGIN").await.map_err(Failure::Control)?;
    let mut values = Vec::with_capacity(batch.len());
    for (i, job) in batch.iter().enumerate() {
        match job.piece.run_pooled(conn).await {
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
