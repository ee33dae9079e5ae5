//! MCP: the gateway at `/mcp`, serving the tool catalog to MCP clients with the caller's permissions.
//! (Upstream servers feeding the catalog come next.)
//!
//! The HTTP layer authenticates the caller and puts its `Principal` in the request extensions; rmcp hands the
//! request parts to this handler, which lists and calls only the tools that principal may use. Calls are
//! logged like the agent's. The caller's token never leaves this process.

pub mod store;
pub mod upstream;

use std::sync::Arc;

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext,
};
use serde_json::Value;

use crate::{
    auth::Principal,
    clock::SharedClock,
    tools::{Catalog, Decision, ToolRefusal, call_logged, log::ToolLog, result_text},
};

#[derive(Clone)]
pub struct Gateway {
    pub catalog: Arc<Catalog>,
    pub tool_log: ToolLog,
    pub clock: SharedClock,
}

fn principal(context: &RequestContext<RoleServer>) -> Result<Principal, ErrorData> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>().cloned())
        .ok_or_else(|| ErrorData::invalid_request("not authenticated", None))
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("warden", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let principal = principal(&context)?;
        let tools = self
            .catalog
            .specs_for(&principal.account)
            .into_iter()
            .map(|spec| {
                let schema = match spec.parameters {
                    Value::Object(map) => map,
                    _ => serde_json::Map::new(),
                };
                Tool::new(spec.name, spec.description, Arc::new(schema))
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let principal = principal(&context)?;
        let name = request.name.to_string();
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let tool = match self.catalog.find_for(&principal.account, &name) {
            Ok((tool, Decision::Allow)) => tool,
            // Nobody can be asked to approve a call made through /mcp.
            Ok(_) => {
                let text = format!("the tool {name} needs a person's approval; use it from a chat");
                return Ok(CallToolResult::error(vec![ContentBlock::text(text)]).into());
            }
            // An unknown tool and one the caller may not use look the same from outside.
            Err(ToolRefusal::Unknown | ToolRefusal::NotPermitted) => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool: {name}"),
                    None,
                ));
            }
        };
        let (outcome, _) = call_logged(
            tool.as_ref(),
            &self.tool_log,
            self.clock.now_ms(),
            &principal,
            &name,
            arguments,
            "mcp",
        )
        .await;
        let response = match outcome {
            Ok(value) => {
                let mut r = CallToolResult::success(vec![ContentBlock::text(result_text(&value))]);
                // Structured content is an object; a bare value is wrapped as {"result": value}.
                r.structured_content = Some(match value {
                    Value::Object(_) => value,
                    other => serde_json::json!({ "result": other }),
                });
                r
            }
            Err(e) => CallToolResult::error(vec![ContentBlock::text(e)]),
        };
        Ok(response.into())
    }
}
