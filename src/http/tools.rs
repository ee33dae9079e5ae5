//! The tool catalog and the tool-call log over HTTP: `GET /tools` (seed 004: the caller's permitted tools) and
//! `GET /api/tool-calls` (the caller's own calls; with `tool-calls:read-all`, everyone's), each with the login
//! session that made it (`?session_id=` reads one session's calls).

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    error::{AppError, AppResult},
    extract::{Json, Query, Require, ToolsList, UsersManage},
    routes::Routes,
};
use crate::{
    auth::Principal,
    mcp::upstream::Health,
    state::AppState,
    tools::{
        Caller, Decision, OutsideChatRefusal, Rule, Schema, ToolSpec, calls::CallsQuery,
        calls::ToolCallView, catalog_name, policy::RuleError, server_of,
    },
};

/// Lets a caller read every user's tool calls, not only their own (named in `auth::permissions`).
pub use crate::auth::permissions::TOOL_CALLS_READ_ALL as READ_ALL_TOOL_CALLS;

pub fn router() -> Routes {
    Routes::new()
        .get("/tools", list_tools)
        .get("/api/tool-calls", list_tool_calls)
        .get("/api/servers", list_servers)
        .get("/api/tool-policies", list_policies)
        .put("/api/tool-policies", set_policy)
        .get("/api/servers/{id}/tools", server_tools)
        .post("/api/servers/{id}/tools/{tool}/execute", execute_tool)
}

#[derive(Serialize)]
struct ServerList {
    success: bool,
    servers: Vec<Health>,
    count: usize,
}

/// Seed 004: the upstream MCP servers and their health (built-in tools are the `builtin` server).
async fn list_servers(
    State(state): State<AppState>,
    _caller: Require<ToolsList>,
) -> axum::Json<ServerList> {
    let servers = state.upstreams.health();
    axum::Json(ServerList {
        success: true,
        count: servers.len(),
        servers,
    })
}

/// A tool as `GET /tools` and `GET /api/servers/{id}/tools` show it.
#[derive(Serialize)]
struct ToolView {
    name: String,
    description: String,
    input_schema: Schema,
    /// The server it comes from (`builtin` or an upstream's name); only `GET /tools` says it.
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<String>,
}

impl ToolView {
    fn new(spec: &ToolSpec, with_server: bool) -> ToolView {
        ToolView {
            server: with_server.then(|| server_of(&spec.name).to_string()),
            name: spec.name.clone(),
            description: spec.description.clone(),
            input_schema: spec.parameters.clone(),
        }
    }
}

#[derive(Serialize)]
struct ServerTools {
    success: bool,
    server_id: String,
    tools: Vec<ToolView>,
}

async fn server_tools(
    State(state): State<AppState>,
    Require(p, ..): Require<ToolsList>,
    Path(id): Path<String>,
) -> AppResult<axum::Json<ServerTools>> {
    let tools = state
        .upstreams
        .server_tools(&Caller::from(&p), &id)
        .ok_or_else(|| AppError::NotFound("MCP server not found".into()))?;
    Ok(axum::Json(ServerTools {
        success: true,
        server_id: id,
        tools: tools
            .into_iter()
            .map(|t| ToolView::new(&t, false))
            .collect(),
    }))
}

#[derive(Deserialize)]
struct Execute {
    #[serde(default)]
    parameters: serde_json::Map<String, Value>,
}

#[derive(Serialize)]
struct Executed {
    success: bool,
    tool: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    duration_ms: f64,
}

/// Seed 004: run one tool directly (same permission check and log as the agent and /mcp).
async fn execute_tool(
    State(state): State<AppState>,
    Require(p, ..): Require<ToolsList>,
    Path((id, tool)): Path<(String, String)>,
    Json(body): Json<Execute>,
) -> AppResult<axum::Json<Executed>> {
    let name = catalog_name(&id, &tool);
    let called = state
        .catalog
        .call_outside_chat(
            &Caller::from(&p),
            &name,
            Value::Object(body.parameters),
            "rest",
        )
        .await
        .map_err(|refusal| match refusal {
            OutsideChatRefusal::Unavailable => AppError::NotFound("Tool not found".into()),
            OutsideChatRefusal::NeedsApproval => AppError::Forbidden(
                "This tool needs a person's approval; use it from a chat".into(),
            ),
        })?;
    let (result, error) = match called.outcome {
        Ok(value) => (Some(value), None),
        Err(e) => (None, Some(e)),
    };
    Ok(axum::Json(Executed {
        success: error.is_none(),
        tool: name,
        result,
        error,
        duration_ms: called.duration_ms,
    }))
}

#[derive(Serialize)]
struct ToolList {
    success: bool,
    tools: Vec<ToolView>,
    count: usize,
}

async fn list_tools(
    State(state): State<AppState>,
    Require(p, ..): Require<ToolsList>,
) -> axum::Json<ToolList> {
    let tools: Vec<ToolView> = state
        .catalog
        .specs_for(&Caller::from(&p))
        .into_iter()
        .map(|t| ToolView::new(&t, true))
        .collect();
    axum::Json(ToolList {
        success: true,
        count: tools.len(),
        tools,
    })
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

#[derive(Serialize)]
struct ToolCallList {
    success: bool,
    tool_calls: Vec<ToolCallView>,
    limit: i64,
    offset: i64,
}

async fn list_tool_calls(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ToolCallQuery>,
) -> AppResult<axum::Json<ToolCallList>> {
    let query = CallsQuery {
        user_id: q.user_id,
        tool_name: q.tool_name,
        status: q.status,
        conversation_id: q.conversation_id,
        session_id: q.session_id,
        limit: q.limit,
        offset: q.offset,
    };
    let page = state
        .catalog
        .find_calls(&Caller::from(&principal), query)
        .await?;
    Ok(axum::Json(ToolCallList {
        success: true,
        tool_calls: page.calls,
        limit: page.limit,
        offset: page.offset,
    }))
}

#[derive(Serialize)]
struct PolicyRule {
    role: String,
    tool: String,
    decision: Option<Decision>,
    /// Approving needs a fresh second-factor code (only with `ask`).
    step_up: bool,
}

#[derive(Serialize)]
struct PolicyList {
    success: bool,
    policies: Vec<PolicyRule>,
}

async fn list_policies(
    State(state): State<AppState>,
    _admin: Require<UsersManage>,
) -> axum::Json<PolicyList> {
    let policies = state
        .catalog
        .policy
        .all()
        .into_iter()
        .map(|(role, tool, rule)| PolicyRule {
            role,
            tool,
            decision: Some(rule.decision),
            step_up: rule.step_up,
        })
        .collect();
    axum::Json(PolicyList {
        success: true,
        policies,
    })
}

#[derive(Deserialize)]
struct SetPolicy {
    role: String,
    tool: String,
    /// `allow`, `ask`, `deny`, or null to remove the rule.
    decision: Option<String>,
    /// With `ask`: approving needs a fresh second-factor code.
    #[serde(default)]
    step_up: bool,
}

#[derive(Serialize)]
struct PolicySet {
    success: bool,
    #[serde(flatten)]
    rule: PolicyRule,
}

impl From<RuleError> for AppError {
    fn from(e: RuleError) -> Self {
        match e {
            RuleError::Invalid(m) => AppError::Unprocessable(m),
            RuleError::Internal(e) => AppError::Internal(e),
        }
    }
}

async fn set_policy(
    State(state): State<AppState>,
    Require(admin, ..): Require<UsersManage>,
    Json(body): Json<SetPolicy>,
) -> AppResult<axum::Json<PolicySet>> {
    let rule = match body.decision.as_deref() {
        None => None,
        Some(d) => Some(Rule {
            decision: Decision::parse(d).ok_or_else(|| {
                AppError::Unprocessable("decision must be allow, ask, deny or null".into())
            })?,
            step_up: body.step_up,
        }),
    };
    // The catalog does not know roles; the accounts service says whether this one exists.
    let role_exists = state
        .auth
        .roles()
        .await?
        .iter()
        .any(|r| r.name == body.role);
    state
        .catalog
        .set_rule(&admin.account.id, &body.role, &body.tool, rule, role_exists)
        .await?;
    Ok(axum::Json(PolicySet {
        success: true,
        rule: PolicyRule {
            role: body.role,
            tool: body.tool,
            decision: rule.map(|r| r.decision),
            step_up: rule.is_some_and(|r| r.step_up),
        },
    }))
}
