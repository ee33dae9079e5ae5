//! `warden bench-mcp-upstream`: a minimal MCP server with one tool, `add(a, b)`, at `/mcp` (Streamable HTTP,
//! stateless, JSON responses). Rust, so the upstream is not the bottleneck when the gateway is measured against it.

use std::sync::Arc;

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde_json::Value;

/// Serves the `add` upstream at `/mcp` on `bind`.
pub async fn run(bind: &str) -> anyhow::Result<()> {
    let mut config = StreamableHttpServerConfig::default();
    config.legacy_session_mode = false;
    config.json_response = true;
    let service = StreamableHttpService::new(
        || Ok(BenchUpstream),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new().route_service("/mcp", service);
    super::serve(bind, router).await
}

/// The benchmark upstream: one tool, `add(a, b)`.
#[derive(Clone)]
pub struct BenchUpstream;

impl ServerHandler for BenchUpstream {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_server_info(
            Implementation::new("warden-bench-upstream", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let schema = serde_json::json!({
            "type": "object",
            "properties": { "a": { "type": "integer" }, "b": { "type": "integer" } },
            "required": ["a", "b"]
        });
        let Value::Object(schema) = schema else {
            unreachable!("a JSON object literal")
        };
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "add",
            "Add two integers",
            Arc::new(schema),
        )]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let (Some(a), Some(b)) = (
            args.get("a").and_then(Value::as_i64),
            args.get("b").and_then(Value::as_i64),
        ) else {
            return Ok(CallToolResult::error(vec![ContentBlock::text(
                "add needs integers a and b",
            )])
            .into());
        };
        let mut r = CallToolResult::success(vec![ContentBlock::text((a + b).to_string())]);
        r.structured_content = Some(serde_json::json!({ "result": a + b }));
        Ok(r.into())
    }
}
