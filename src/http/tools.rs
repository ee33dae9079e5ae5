//! The tool catalog and the tool-call log over HTTP: `GET /tools` (seed 004: the caller's permitted tools) and
//! `GET /api/tool-calls` (the caller's own calls; with `tool-calls:read-all`, everyone's), each with the login
//! session that made it (`?session_id=` reads one session's calls).

use axum::{
    Router,
    extract::{Path, State},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    error::{AppError, AppResult},
    extract::{Json, Query, Require, ToolsList, UsersManage},
};
use crate::{
    app::AppState,
    auth::Principal,
    clock::rfc3339,
    tools::{call_logged, log},
};

/// Lets a caller read every user's tool calls, not only their own (named in `auth::permissions`).
pub use crate::auth::permissions::TOOL_CALLS_READ_ALL as READ_ALL_TOOL_CALLS;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tools", get(list_tools))
        .route("/api/tool-calls", get(list_tool_calls))
        .route("/api/servers", get(list_servers))
        .route("/api/tool-policies", get(list_policies).put(set_policy))
        .route("/api/servers/{id}/tools", get(server_tools))
        .route("/api/servers/{id}/tools/{tool}/execute", post(execute_tool))
}

/// Seed 004: the upstream MCP servers and their health (built-in tools are the `builtin` server).
async fn list_servers(
    State(state): State<AppState>,
    _caller: Require<ToolsList>,
) -> axum::Json<Value> {
    let servers = state.upstreams.health();
    axum::Json(json!({ "success": true, "servers": servers, "count": servers.len() }))
}

/// The catalog name of a server's tool: built-ins are unprefixed, upstream tools are `server__tool`.
fn catalog_name(server: &str, tool: &str) -> String {
    if server == "builtin" {
        tool.to_string()
    } else {
        format!("{server}{}{tool}", crate::mcp::upstream::SEPARATOR)
    }
}

async fn server_tools(
    State(state): State<AppState>,
    Require(p, ..): Require<ToolsList>,
    Path(id): Path<String>,
) -> AppResult<axum::Json<Value>> {
    let prefix = catalog_name(&id, "");
    let tools: Vec<Value> = state
        .catalog
        .specs_for(&p.account)
        .into_iter()
        .filter(|t| if id == "builtin" { !t.name.contains(crate::mcp::upstream::SEPARATOR) } else { t.name.starts_with(&prefix) })
        .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
        .collect();
    if tools.is_empty()
        && id != "builtin"
        && !state.upstreams.health().iter().any(|h| h.server_name == id)
    {
        return Err(AppError::NotFound("MCP server not found".into()));
    }
    Ok(axum::Json(
        json!({ "success": true, "server_id": id, "tools": tools }),
    ))
}

#[derive(Deserialize)]
struct Execute {
    #[serde(default)]
    parameters: serde_json::Map<String, Value>,
}

/// Seed 004: run one tool directly (same permission check and log as the agent and /mcp).
async fn execute_tool(
    State(state): State<AppState>,
    Require(p, ..): Require<ToolsList>,
    Path((id, tool)): Path<(String, String)>,
    Json(body): Json<Execute>,
) -> AppResult<axum::Json<Value>> {
    let name = catalog_name(&id, &tool);
    let (found, decision) = state
        .catalog
        .find_for(&p.account, &name)
        .map_err(|_| AppError::NotFound("Tool not found".into()))?;
    if decision != crate::tools::Decision::Allow {
        return Err(AppError::Forbidden(
            "This tool needs a person's approval; use it from a chat".into(),
        ));
    }
    let arguments = Value::Object(body.parameters);
    let (outcome, duration_ms) = call_logged(
        found.as_ref(),
        &state.tool_log,
        state.clock.now_ms(),
        &p,
        &name,
        arguments,
        "rest",
    )
    .await;
    Ok(axum::Json(match outcome {
        Ok(value) => {
            json!({ "success": true, "tool": name, "result": value, "duration_ms": duration_ms })
        }
        Err(e) => json!({ "success": false, "tool": name, "error": e, "duration_ms": duration_ms }),
    }))
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
    session_id: Option<String>,
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
        session_id: q.session_id,
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
                "session_id": r.session_id,
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

async fn list_policies(
    State(state): State<AppState>,
    _admin: Require<UsersManage>,
) -> axum::Json<Value> {
    let rules: Vec<Value> = state
        .catalog
        .policy
        .all()
        .into_iter()
        .map(|(role, tool, decision)| json!({ "role": role, "tool": tool, "decision": decision }))
        .collect();
    axum::Json(json!({ "success": true, "policies": rules }))
}

#[derive(Deserialize)]
struct SetPolicy {
    role: String,
    tool: String,
    /// `allow`, `ask`, `deny`, or null to remove the rule.
    decision: Option<String>,
}

async fn set_policy(
    State(state): State<AppState>,
    Require(admin, ..): Require<UsersManage>,
    Json(body): Json<SetPolicy>,
) -> AppResult<axum::Json<Value>> {
    let decision = match body.decision.as_deref() {
        None => None,
        Some(d) => Some(crate::tools::Decision::parse(d).ok_or_else(|| {
            AppError::Unprocessable("decision must be allow, ask, deny or null".into())
        })?),
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-*.:".contains(c))
    };
    if !valid(&body.role) || !valid(&body.tool) {
        return Err(AppError::Unprocessable(
            "role and tool must be names (letters, digits, _ - . : and a trailing *)".into(),
        ));
    }
    if !state
        .auth
        .roles()
        .await?
        .iter()
        .any(|r| r.name == body.role)
    {
        return Err(AppError::Unprocessable(format!(
            "unknown role {:?}",
            body.role
        )));
    }
    state
        .catalog
        .policy
        .set(
            &state.db,
            &body.role,
            &body.tool,
            decision,
            state.clock.now_ms(),
        )
        .await?;
    state.audit.record(
        crate::audit::Event::new("tool.policy", "ok")
            .actor(&admin.account.id)
            .subject(&format!("{}:{}", body.role, body.tool))
            .detail(json!({ "decision": decision })),
    );
    Ok(axum::Json(
        json!({ "success": true, "role": body.role, "tool": body.tool, "decision": decision }),
    ))
}
