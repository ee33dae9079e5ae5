//! A chat turn as server-sent events: `token`, `tool_call`, `tool_result`, `approval_required`, then `done` (the
//! turn, as the JSON reply would show it) or `error` (the one error body; an internal error's text stays in the
//! log under the id the client sees). The turn runs to the end and is stored even if the client goes away.

use std::convert::Infallible;

use axum::response::{
    IntoResponse, Response,
    sse::{Event, KeepAlive, Sse},
};
use serde_json::json;
use tokio::sync::mpsc;

use super::views::turn_view;
use crate::{
    agent::AgentEvent, auth::Principal, http::error::AppError, ids::ConversationId, state::AppState,
};

/// Starts the turn in its own task and answers with the stream of its events.
pub(super) fn turn(state: AppState, p: Principal, id: ConversationId, text: String) -> Response {
    let (events, mut agent_events) = mpsc::unbounded_channel::<AgentEvent>();
    let (out, rx) = mpsc::unbounded_channel::<Event>();
    let forward = {
        let out = out.clone();
        tokio::spawn(async move {
            while let Some(e) = agent_events.recv().await {
                let (name, data) = match &e {
                    AgentEvent::Token { text } => ("token", json!({ "text": text })),
                    AgentEvent::ToolCall { .. } => {
                        ("tool_call", serde_json::to_value(&e).unwrap_or_default())
                    }
                    AgentEvent::ToolResult { .. } => {
                        ("tool_result", serde_json::to_value(&e).unwrap_or_default())
                    }
                    AgentEvent::ApprovalRequired { .. } => (
                        "approval_required",
                        serde_json::to_value(&e).unwrap_or_default(),
                    ),
                };
                let _ = out.send(Event::default().event(name).data(data.to_string()));
            }
        })
    };
    tokio::spawn(async move {
        let result = state.chat.send(&p, &id, text, Some(events)).await;
        let _ = forward.await;
        let last = match result {
            Ok(turn) => Event::default()
                .event("done")
                .data(serde_json::to_string(&turn_view(&turn)).unwrap_or_default()),
            // The same body as a JSON error: an internal error is logged under the id the client sees.
            Err(e) => Event::default()
                .event("error")
                .data(AppError::from(e).into_body().to_json().to_string()),
        };
        let _ = out.send(last);
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
