//! What a tool looks like from outside: the catalog's unit of description, shared by the agent's LLM requests,
//! `/mcp`'s `tools/list` and `GET /tools`. It lives here, below its consumers, so the catalog imports none of them.

use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::{Value, value::RawValue};

/// A tool as the model sees it: name, description and a JSON Schema for its arguments.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Schema,
}

/// A JSON Schema kept as its JSON text: it goes out with every model request, where copying text costs a fraction
/// of writing out a JSON tree.
#[derive(Clone, Debug)]
pub struct Schema(Arc<RawValue>);

impl Schema {
    /// The schema as a JSON value, for the places that look inside it.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.0.get()).unwrap_or(Value::Null)
    }
}

impl From<Value> for Schema {
    fn from(value: Value) -> Schema {
        let raw = serde_json::value::to_raw_value(&value).expect("a JSON value serializes");
        Schema(Arc::from(raw))
    }
}

impl PartialEq for Schema {
    fn eq(&self, other: &Schema) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Serialize for Schema {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
