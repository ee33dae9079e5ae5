//! The audit viewer (`audit:read`): `GET /api/audit` pages the trail newest first, and `?format=jsonl` or
//! `GET /api/audit/export` streams every matching event as JSON Lines. There is no route that changes or
//! deletes an event.

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::{
    error::{AppError, AppResult},
    extract::{AuditRead, Query, Require},
    routes::Routes,
};
use crate::{
    audit::view::{Action, Cursor, EventView, Filter, parse_time},
    state::AppState,
};

pub fn router() -> Routes {
    Routes::new()
        .get("/api/audit", list_audit_events)
        .get("/api/audit/export", export_audit_events)
}

#[derive(Deserialize)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    subject: Option<String>,
    /// Seed-style alias of `subject`.
    target: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    format: Option<String>,
}

impl AuditQuery {
    fn into_filter(self) -> Result<Filter, AppError> {
        let time = |name: &str, v: Option<String>| {
            v.map(|t| {
                parse_time(&t).ok_or_else(|| {
                    AppError::BadRequest(format!("{name} must be epoch milliseconds or RFC 3339"))
                })
            })
            .transpose()
        };
        Ok(Filter {
            actor: self.actor,
            action: self.action.as_deref().map(Action::parse),
            subject: self.subject.or(self.target),
            outcome: self.outcome,
            from: time("from", self.from)?,
            to: time("to", self.to)?,
            limit: self.limit,
            cursor: self
                .cursor
                .map(|c| {
                    Cursor::parse(&c).ok_or_else(|| AppError::BadRequest("Invalid cursor".into()))
                })
                .transpose()?,
        })
    }
}

#[derive(Serialize)]
struct AuditPage {
    success: bool,
    events: Vec<EventView>,
    count: usize,
    limit: i64,
    next_cursor: Option<String>,
}

async fn list_audit_events(
    State(state): State<AppState>,
    _reader: Require<AuditRead>,
    Query(q): Query<AuditQuery>,
) -> AppResult<Response> {
    match q.format.as_deref() {
        None | Some("json") => {}
        Some("jsonl") => return Ok(json_lines(&state, q.into_filter()?)),
        Some(_) => return Err(AppError::BadRequest("format must be json or jsonl".into())),
    }
    let page = state.audit.find(&q.into_filter()?).await?;
    Ok(axum::Json(AuditPage {
        success: true,
        count: page.events.len(),
        events: page.events,
        limit: page.limit,
        next_cursor: page.next_cursor,
    })
    .into_response())
}

async fn export_audit_events(
    State(state): State<AppState>,
    _reader: Require<AuditRead>,
    Query(q): Query<AuditQuery>,
) -> AppResult<Response> {
    Ok(json_lines(&state, q.into_filter()?))
}

/// Every matching event, one JSON object per line, written a page at a time. A database error after the first
/// page ends the stream early (the status is sent already); it is logged.
fn json_lines(state: &AppState, filter: Filter) -> Response {
    let lines = state.audit.export(filter).map_ok(|events| {
        let mut out = Vec::with_capacity(events.len() * 256);
        for e in &events {
            // An EventView always serialises: its fields are strings, numbers and parsed JSON.
            if serde_json::to_writer(&mut out, e).is_ok() {
                out.push(b'\n');
            }
        }
        Bytes::from(out)
    });
    let lines = lines.inspect_err(|e| tracing::error!(error = %e, "audit export failed"));
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}
