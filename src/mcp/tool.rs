//! A tool of an upstream server as the catalog sees it: a call goes to the server's live connection, and its
//! content comes back as the tool's result.

use std::sync::Arc;

use futures::{FutureExt, future::BoxFuture};
use rmcp::model::{CallToolRequestParams, ContentBlock};
use serde_json::Value;

use super::{connection::Upstream, http_call::CallError};
use crate::tools::{Tool, ToolContext, ToolSpec};

/// A tool of an upstream server, as the catalog sees it.
pub(super) struct UpstreamTool {
    pub(super) up: Arc<Upstream>,
    pub(super) remote_name: String,
    pub(super) spec: ToolSpec,
}

impl Tool for UpstreamTool {
    fn spec(&self) -> ToolSpec {
        self.spec.clone()
    }

    fn call<'a>(
        &'a self,
        arguments: Value,
        _: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Value, String>> {
        async move {
            let live = self
                .up
                .live
                .lock()
                .clone()
                .ok_or_else(|| format!("the MCP server {:?} is down", self.up.config.name))?;
            self.up.health.lock().total_requests += 1;
            let arguments = match arguments {
                Value::Object(map) => Some(map),
                _ => None,
            };
            let name = &self.up.config.name;
            let result = match &live.http {
                Some(http) => http
                    .call_tool(&self.remote_name, arguments)
                    .await
                    .map_err(|e| match e {
                        CallError::Refused(e) => refused(name, &e.message),
                        CallError::Lost(e) => {
                            live.lost.cancel();
                            unavailable(name, &e)
                        }
                    })?,
                None => {
                    let mut params = CallToolRequestParams::new(self.remote_name.clone());
                    params.arguments = arguments;
                    live.peer.call_tool(params).await.map_err(|e| match e {
                        rmcp::ServiceError::McpError(e) => refused(name, &e.message),
                        // The connection is lost (the server died mid-call): the supervisor drops it and
                        // reconnects.
                        e @ (rmcp::ServiceError::TransportSend(_)
                        | rmcp::ServiceError::TransportClosed) => {
                            live.lost.cancel();
                            unavailable(name, &e.to_string())
                        }
                        // A timeout or a cancelled call.
                        e => unavailable(name, &e.to_string()),
                    })?
                }
            };
            let text: Vec<String> = result
                .content
                .iter()
                .filter_map(|c| match c {
                    ContentBlock::Text(t) => Some(t.text.clone()),
                    _ => None,
                })
                .collect();
            if result.is_error == Some(true) {
                return Err(text.join("\n"));
            }
            self.up.health.lock().successful_requests += 1;
            Ok(match result.structured_content {
                Some(Value::Object(mut map)) if map.len() == 1 && map.contains_key("result") => {
                    map.remove("result").unwrap_or(Value::Null)
                }
                Some(v) => v,
                None => Value::String(text.join("\n")),
            })
        }
        .boxed()
    }
}

/// The server answered with an error: it is there, the call was wrong.
fn refused(server: &str, message: &str) -> String {
    format!("the MCP server {server:?} refused the call: {message}")
}

fn unavailable(server: &str, error: &str) -> String {
    format!("the MCP server {server:?} is unavailable: {error}")
}
