//! The tool catalog: every tool the agent (and, later, `/mcp` and the REST execute route) can call, behind one
//! interface. Features register their tools here; this module knows none of them but the built-ins.
//!
//! A caller sees and calls only the tools its permissions allow: `tools:call:<name>` (globs such as
//! `tools:call:*` match).

pub mod approval;
pub mod builtin;
pub mod log;
pub mod policy;
mod store;

use std::{collections::BTreeMap, sync::Arc};

use futures::future::BoxFuture;
use parking_lot::RwLock;
use serde_json::Value;

use crate::{
    agent::llm::ToolSpec,
    auth::{Account, Principal},
};
pub use policy::Decision;

/// Who is calling a tool, for tools that act on the caller's behalf and for the tool-call log.
#[derive(Clone, Debug)]
pub struct ToolContext {
    pub user_id: String,
    /// The login session whose credential made the call: one session's calls can be traced and revoked together.
    pub session_id: String,
    pub conversation_id: Option<String>,
}

impl ToolContext {
    /// The context of a call made with `caller`'s credential, in `conversation` if it comes from a chat.
    pub fn new(caller: &Principal, conversation: Option<&str>) -> ToolContext {
        ToolContext {
            user_id: caller.account.id.clone(),
            session_id: caller.session_id.clone(),
            conversation_id: conversation.map(str::to_string),
        }
    }
}

pub trait Tool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    /// Runs the tool. `Err` is a message for the model (bad arguments, a failed upstream), never a crash.
    fn call<'a>(
        &'a self,
        arguments: Value,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Value, String>>;
}

#[derive(Default)]
pub struct Catalog {
    tools: RwLock<BTreeMap<String, Arc<dyn Tool>>>,
    pub policy: policy::Policy,
}

/// The permission that lets a caller see and call a tool.
pub fn permission_for(tool: &str) -> String {
    format!("tools:call:{tool}")
}

impl Catalog {
    pub fn new(policy: policy::Policy) -> Catalog {
        Catalog {
            tools: RwLock::default(),
            policy,
        }
    }

    pub fn register(&self, tool: Arc<dyn Tool>) {
        self.tools.write().insert(tool.spec().name, tool);
    }

    /// Removes the tools whose names match (an upstream server that went away).
    pub fn remove_where(&self, matches: impl Fn(&str) -> bool) {
        self.tools.write().retain(|name, _| !matches(name));
    }

    /// The specs of the tools `account` may call, by name.
    pub fn specs_for(&self, account: &Account) -> Vec<ToolSpec> {
        self.tools
            .read()
            .iter()
            .filter(|(name, _)| {
                account.has_permission(&permission_for(name))
                    && self.policy.decide(&account.role, name) != Decision::Deny
            })
            .map(|(_, t)| t.spec())
            .collect()
    }

    /// The tool, if it exists and `account` may call it, with the policy's decision (`Allow` or `Ask`).
    pub fn find_for(
        &self,
        account: &Account,
        name: &str,
    ) -> Result<(Arc<dyn Tool>, Decision), ToolRefusal> {
        let tool = self
            .tools
            .read()
            .get(name)
            .cloned()
            .ok_or(ToolRefusal::Unknown)?;
        let decision = self.policy.decide(&account.role, name);
        if !account.has_permission(&permission_for(name)) || decision == Decision::Deny {
            return Err(ToolRefusal::NotPermitted);
        }
        Ok((tool, decision))
    }
}

/// Separates a feeding server's name from its tool's name in the catalog (`<server>__<tool>`).
pub const SERVER_SEPARATOR: &str = "__";

/// The server a catalog tool comes from: `<server>__<tool>` for upstream tools, else `builtin`.
pub fn server_of(tool_name: &str) -> &str {
    tool_name
        .split_once(SERVER_SEPARATOR)
        .map_or("builtin", |(server, _)| server)
}

/// The text of a tool's result: a string as is, anything else as JSON.
pub fn result_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// Runs a tool for a caller outside a chat turn (`/mcp`, the REST execute route) and records the call in the
/// tool-call log under `source`. Returns the outcome and its duration in milliseconds.
pub async fn call_logged(
    tool: &dyn Tool,
    tool_log: &log::ToolLog,
    at_ms: i64,
    caller: &Principal,
    name: &str,
    arguments: Value,
    source: &'static str,
) -> (Result<Value, String>, f64) {
    let started = std::time::Instant::now();
    let ctx = ToolContext::new(caller, None);
    let outcome = tool.call(arguments.clone(), &ctx).await;
    let duration_ms = (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
    tool_log.record(log::Entry::new(
        at_ms,
        &ctx,
        name,
        arguments,
        &outcome,
        duration_ms,
        source,
    ));
    (outcome, duration_ms)
}

#[derive(Debug, PartialEq, Eq)]
pub enum ToolRefusal {
    Unknown,
    NotPermitted,
}
