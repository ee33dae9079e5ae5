//! The agent's database tools: `db_list_tables`, `db_describe` and `db_query`, on the caller's own profiles
//! only (the user id comes from the call's context, never from the arguments). They go through the same
//! [`Connections`] service as the routes (host rules, the classifier, read-only sessions, limits) and ask for
//! the routes' permission, `connections:use`, on top of `tools:call:<name>` and the tool policy.

use std::sync::Arc;

use futures::{FutureExt, future::BoxFuture};
use serde_json::{Value, json};

use super::{ConnectionError, Connections};
use crate::tools::{Tool, ToolContext, ToolSpec};

/// The permission the tools ask for (the same as `auth::permissions::CONNECTIONS_USE`).
pub const CONNECTIONS_USE: &str = "connections:use";

pub fn all(connections: Arc<Connections>) -> Vec<Arc<dyn Tool>> {
    [ToolKind::ListTables, ToolKind::Describe, ToolKind::Query]
        .into_iter()
        .map(|kind| {
            Arc::new(DbTool {
                kind,
                connections: connections.clone(),
            }) as Arc<dyn Tool>
        })
        .collect()
}

#[derive(Clone, Copy)]
enum ToolKind {
    ListTables,
    Describe,
    Query,
}

struct DbTool {
    kind: ToolKind,
    connections: Arc<Connections>,
}

/// A message for the model: what went wrong, never an internal detail.
fn model_error(e: ConnectionError) -> String {
    match e {
        ConnectionError::Internal(_) => "the connection service failed".into(),
        e => e.to_string(),
    }
}

fn connection_property() -> Value {
    json!({"type": "string", "description": "the id of one of your saved database connections"})
}

impl Tool for DbTool {
    fn required_permission(&self) -> Option<&'static str> {
        Some(CONNECTIONS_USE)
    }

    fn spec(&self) -> ToolSpec {
        match self.kind {
            ToolKind::ListTables => ToolSpec {
                name: "db_list_tables".into(),
                description: "List the tables and views of one of your saved database connections".into(),
                parameters: json!({
                    "type": "object",
                    "properties": {"connection_id": connection_property()},
                    "required": ["connection_id"]
                }).into(),
            },
            ToolKind::Describe => ToolSpec {
                name: "db_describe".into(),
                description: "Describe the columns of a table of one of your saved database connections"
                    .into(),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "connection_id": connection_property(),
                        "table": {"type": "string", "description": "name or schema.name"}
                    },
                    "required": ["connection_id", "table"]
                }).into(),
            },
            ToolKind::Query => ToolSpec {
                name: "db_query".into(),
                description: "Run one read-only SQL statement (SELECT, WITH, SHOW, EXPLAIN, ...) on one of \
                              your saved database connections; rows are limited and the statement is timed out"
                    .into(),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "connection_id": connection_property(),
                        "query": {"type": "string"}
                    },
                    "required": ["connection_id", "query"]
                }).into(),
            },
        }
    }

    fn call<'a>(
        &'a self,
        arguments: Value,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Value, String>> {
        async move {
            let id = arguments["connection_id"]
                .as_str()
                .ok_or("connection_id is required")?;
            let user = &ctx.user_id;
            match self.kind {
                ToolKind::ListTables => {
                    let tables = self
                        .connections
                        .list_tables(user, id)
                        .await
                        .map_err(model_error)?;
                    Ok(json!({ "tables": tables }))
                }
                ToolKind::Describe => {
                    let table = arguments["table"].as_str().ok_or("table is required")?;
                    let columns = self
                        .connections
                        .describe(user, id, table)
                        .await
                        .map_err(model_error)?;
                    Ok(json!({ "table": table, "columns": columns }))
                }
                ToolKind::Query => {
                    let query = arguments["query"].as_str().ok_or("query is required")?;
                    let result = self
                        .connections
                        .query(user, id, query)
                        .await
                        .map_err(model_error)?;
                    serde_json::to_value(result).map_err(|e| e.to_string())
                }
            }
        }
        .boxed()
    }
}
