//! One retry for reads that failed because the database was unavailable. When the server terminates a
//! connection, the request using it fails, but the pool opens a fresh one for the next: a second attempt usually
//! succeeds where the first could not, and the client never sees the hiccup.
//!
//! Only GET and HEAD without a body are retried (they are idempotent and can be replayed exactly), only once,
//! and only when the response is marked [`DatabaseUnavailable`]: other 503s (busy hashing, readiness) are not
//! a lost connection. Writes are not retried here: the first attempt may have committed before the connection
//! broke, so the client decides (it gets a 503 with `Retry-After`).

use axum::{
    body::{Body, HttpBody},
    extract::Request,
    http::Method,
    middleware::Next,
    response::Response,
};

use super::error::DatabaseUnavailable;

/// Middleware: runs the rest of the stack a second time for an idempotent request whose first answer was a
/// database-unavailable 503.
pub async fn retry_reads_once(request: Request, next: Next) -> Response {
    let replayable = matches!(*request.method(), Method::GET | Method::HEAD)
        && request.body().size_hint().exact() == Some(0);
    if !replayable {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let first = next
        .clone()
        .run(Request::from_parts(parts.clone(), body))
        .await;
    if first.extensions().get::<DatabaseUnavailable>().is_none() {
        return first;
    }
    tracing::debug!("database unavailable; retrying the read once");
    next.run(Request::from_parts(parts, Body::empty())).await
}
