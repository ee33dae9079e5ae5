//! What a tool looks like from outside: the catalog's unit of description, shared by the agent's LLM requests,
//! `/mcp`'s `tools/list` and `GET /tools`. It lives here, below its consumers, so the catalog imports none of them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A tool as the model sees it: name, description and a JSON Schema for its arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}
