//! The rmcp server handler behind `/mcp`: the web face's adapter into the tool catalog. rmcp hands it the
//! request parts (axum's type) in which `http::mcp::require_bearer` put the authenticated `Principal`, so this is
//! the one file below `http` that reads axum's request parts and `auth`'s principal; everything it does goes
//! through the catalog's outside-a-chat path.

use std::sync::Arc;

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
        JsonObject, JsonRpcMessage, ListToolsResult, PaginatedRequestParams, RequestId,
        ServerCapabilities, ServerConfig, ServerJsonRpcMessage, ServerResult, Tool,
    },
    service::RequestContext,
};
use serde_json::Value;

use crate::{
    auth::Principal,
    tools::{Caller, Catalog, OutsideChatRefusal, result_text},
};

/// The rmcp server handler behind `/mcp`.
#[derive(Clone)]
pub struct Gateway {
    pub catalog: Arc<Catalog>,
}

/// The catalog's view of an authenticated principal. Defined here, beside the one adapter below `http` that
/// receives a `Principal`, so that `tools` never imports `auth`; chat and the http handlers use it too.
impl From<&Principal> for Caller {
    fn from(p: &Principal) -> Caller {
        Caller {
            user_id: p.account.id.clone(),
            session_id: p.session_id.clone(),
            role: p.account.role.clone(),
            permissions: p.account.permissions.clone(),
        }
    }
}

/// The caller that `http::mcp::require_bearer` authenticated for this request.
fn caller(context: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>())
        .map(Caller::from)
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
        let caller = caller(&context)?;
        let tools = self
            .catalog
            .specs_for(&caller)
            .into_iter()
            .map(|spec| {
                let schema = match spec.parameters.to_value() {
                    Value::Object(map) => map,
                    _ => serde_json::Map::new(),
                };
                Tool::new(
                    spec.name.clone(),
                    spec.description.clone(),
                    Arc::new(schema),
                )
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = caller(&context)?;
        self.call(&caller, &request.name, request.arguments)
            .await
            .map(Into::into)
    }
}

impl Gateway {
    /// A `tools/call` through `/mcp`: the one handler of both paths (rmcp's service and the direct path).
    async fn call(
        &self,
        caller: &Caller,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, ErrorData> {
        let arguments = Value::Object(arguments.unwrap_or_default());
        let outcome = match self
            .catalog
            .call_outside_chat(caller, name, arguments, "mcp")
            .await
        {
            Ok(called) => called.outcome,
            // Nobody can be asked to approve a call made through /mcp.
            Err(OutsideChatRefusal::NeedsApproval) => {
                let text = format!("the tool {name} needs a person's approval; use it from a chat");
                return Ok(CallToolResult::error(vec![ContentBlock::text(text)]));
            }
            // An unknown tool and one the caller may not use look the same from outside.
            Err(OutsideChatRefusal::Unavailable) => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool: {name}"),
                    None,
                ));
            }
        };
        Ok(match outcome {
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
        })
    }

    /// The JSON-RPC answer to a `tools/call` from a client on a protocol version before 2026-07-28 (one with an
    /// `initialize` handshake), written as rmcp's service writes it: such peers get no `resultType`, and a
    /// refusal is a JSON-RPC error with the request's id. `http::mcp`'s direct path sends it.
    pub async fn answer_legacy_call(
        &self,
        caller: &Caller,
        id: RequestId,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> serde_json::Result<Vec<u8>> {
        let message: ServerJsonRpcMessage = match self.call(caller, name, arguments).await {
            Ok(result) => {
                let mut result = ServerResult::from(CallToolResponse::from(result));
                result.strip_result_type_for_legacy_peer();
                JsonRpcMessage::response(result, id)
            }
            Err(error) => JsonRpcMessage::error(error, Some(id)),
        };
        serde_json::to_vec(&message)
    }
}
