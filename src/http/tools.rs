//! The tool catalog and the tool-call log over HTTP: `GET /tools` (seed 004: the caller's permitted tools) and
//! `GET /api/tool-calls` (the caller's own calls; with `tool-calls:read-all`, everyone's).

use axum::{Router, extract::State, routing::get};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    error::AppResult,
    extract::{Query, Require, ToolsList},
};
use crate::{app::AppState, auth::Principal, clock::rfc3339, tools::log};

/// Lets a caller read every user's tool calls, not only their own.
pub const READ_ALL_TOOL_CALLS: &str = "tool-calls:read-all";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tools", get(list_tools))
        .route("/api/tool-calls", get(list_tool_calls))
}

async fn list_tools(
    State(state): State<AppState>,
    Require(p, ..): Require<ToolsList>,
) -> axum::Json<Value> {
    let tools: Vec<Value> = state
        .catalog
        .specs_for(&p.account)
        .into_iter()
        .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters, "server": "builtin" }))
        .collect();
    axum::Json(json!({ "success": true, "tools": tools, "count": tools.len() }))
}

#[derive(Deserialize)]
struct ToolCallQuery {
    tool_name: Option<String>,
    status: Option<String>,
    conversation_id: Option<String>,
    user_id: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list_tool_calls(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ToolCallQuery>,
) -> AppResult<axum::Json<Value>> {
    // Everyone sees their own calls; only a reader of all may look at (or filter by) another user.
    let user_id = if principal.account.has_permission(READ_ALL_TOOL_CALLS) {
        q.user_id
    } else {
        Some(principal.account.id.clone())
    };
    let filter = log::Filter {
        user_id,
        tool_name: q.tool_name,
        status: q.status,
        conversation_id: q.conversation_id,
        limit: q.limit.unwrap_or(50).clamp(1, 200),
        offset: q.offset.unwrap_or(0).max(0),
    };
    let rows = log::find(&state.db, &filter).await?;
    let calls: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "timestamp": rfc3339(r.at),
                "user_id": r.user_id,
                "conversation_id": r.conversation_id,
                "server": r.server,
                "tool_name": r.tool_name,
                "tool_call_id": r.tool_call_id,
                "arguments": serde_json::from_str::<Value>(&r.arguments).unwrap_or(Value::String(r.arguments)),
                "status": r.status,
                "duration_ms": r.duration_ms,
                "result": r.result,
                "result_length": r.result_length,
                "error": r.error,
                "source": r.source,
                "approval": r.approval,
                "approver_id": r.approver_id,
            })
        })
        .collect();
    Ok(axum::Json(
        json!({ "success": true, "tool_calls": calls, "limit": filter.limit, "offset": filter.offset }),
    ))
}
