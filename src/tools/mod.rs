//! The tool catalog: every tool the agent, `/mcp` and the REST execute route can call, behind one interface.
//! Features register their tools here; this module knows none of them but the built-ins, and imports neither
//! `agent` nor `auth`: it owns `ToolSpec` and takes a narrow `Caller`.
//!
//! A caller sees and calls only the tools its permissions allow (`tools:call:<name>`; globs such as
//! `tools:call:*` match) and the policy does not deny. Outside a chat every call goes through
//! `Catalog::call_outside_chat`: find, check, call, log, in one place.

pub mod approval;
pub mod builtin;
pub mod call;
pub mod caller;
pub mod calls;
pub mod log;
pub mod policy;
pub mod spec;
mod store;

use std::{collections::BTreeMap, sync::Arc};

use futures::future::BoxFuture;
use parking_lot::RwLock;
use serde_json::Value;

use crate::{
    audit::Audit,
    clock::SharedClock,
    ids::{ConversationId, SessionId, UserId},
    store::Db,
};
pub use caller::Caller;
pub use policy::{Decision, Rule};
pub use spec::{Schema, ToolSpec};

/// Who is calling a tool, for tools that act on the caller's behalf and for the tool-call log.
#[derive(Clone, Debug)]
pub struct ToolContext {
    pub user_id: UserId,
    /// The login session whose credential made the call: one session's calls can be traced and revoked together.
    pub session_id: SessionId,
    pub conversation_id: Option<ConversationId>,
}

impl ToolContext {
    /// The context of a call made with `caller`'s credential, in `conversation` if it comes from a chat.
    pub fn new(caller: &Caller, conversation: Option<&ConversationId>) -> ToolContext {
        ToolContext {
            user_id: caller.user_id.clone(),
            session_id: caller.session_id.clone(),
            conversation_id: conversation.cloned(),
        }
    }
}

/// A tool any feature can register: its spec, and a call on a caller's behalf.
pub trait Tool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    /// A permission the caller must hold besides `tools:call:<name>`: a tool that does what a route does asks for
    /// that route's permission, so it is never a way around it (the SMS tools ask for `sms:send`/`sms:lookup`).
    fn required_permission(&self) -> Option<&'static str> {
        None
    }
    /// Runs the tool. `Err` is a message for the model (bad arguments, a failed upstream), never a crash.
    fn call<'a>(
        &'a self,
        arguments: Value,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Value, String>>;
}

/// The tools, the policy over them, and what their flows need: the database (policy rules, the call log), the
/// audit trail (policy changes), the call log and the clock.
pub struct Catalog {
    tools: RwLock<BTreeMap<String, Registered>>,
    pub policy: policy::Policy,
    db: Db,
    audit: Audit,
    tool_log: log::ToolLog,
    clock: SharedClock,
}

/// A tool and its spec, taken once when it is registered (every turn and every list hands the spec out).
struct Registered {
    tool: Arc<dyn Tool>,
    spec: Arc<ToolSpec>,
}

/// What `Catalog::new` needs besides the policy.
pub struct CatalogParts {
    pub db: Db,
    pub audit: Audit,
    pub tool_log: log::ToolLog,
    pub clock: SharedClock,
}

/// The permission that lets a caller see and call a tool.
pub fn permission_for(tool: &str) -> String {
    format!("tools:call:{tool}")
}

impl Catalog {
    pub fn new(policy: policy::Policy, parts: CatalogParts) -> Catalog {
        Catalog {
            tools: RwLock::default(),
            policy,
            db: parts.db,
            audit: parts.audit,
            tool_log: parts.tool_log,
            clock: parts.clock,
        }
    }

    /// Adds a tool under its spec's name (replacing one of the same name).
    pub fn register(&self, tool: Arc<dyn Tool>) {
        let spec = Arc::new(tool.spec());
        self.tools
            .write()
            .insert(spec.name.clone(), Registered { tool, spec });
    }

    /// Removes the tools whose names match (an upstream server that went away).
    pub fn remove_where(&self, matches: impl Fn(&str) -> bool) {
        self.tools.write().retain(|name, _| !matches(name));
    }

    /// The specs of the tools `caller` may call, by name.
    pub fn specs_for(&self, caller: &Caller) -> Vec<Arc<ToolSpec>> {
        self.tools
            .read()
            .iter()
            .filter(|(name, r)| {
                may_use(caller, name, r.tool.as_ref())
                    && self.policy.decide(&caller.role, name) != Decision::Deny
            })
            .map(|(_, r)| r.spec.clone())
            .collect()
    }

    /// The tool, if it exists and `caller` may call it, with the policy's rule (`Allow`, or `Ask` and whether it
    /// needs a step-up).
    pub fn find_for(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<(Arc<dyn Tool>, Rule), ToolRefusal> {
        let tool = self
            .tools
            .read()
            .get(name)
            .map(|r| r.tool.clone())
            .ok_or(ToolRefusal::Unknown)?;
        let rule = self.policy.rule(&caller.role, name);
        if !may_use(caller, name, tool.as_ref()) || rule.decision == Decision::Deny {
            return Err(ToolRefusal::NotPermitted);
        }
        Ok((tool, rule))
    }
}

/// Whether `caller` holds `tools:call:<name>` and the tool's own permission, if it names one.
fn may_use(caller: &Caller, name: &str, tool: &dyn Tool) -> bool {
    caller.can_call(name)
        && tool
            .required_permission()
            .is_none_or(|p| caller.has_permission(p))
}

/// Separates a feeding server's name from its tool's name in the catalog (`<server>__<tool>`).
pub const SERVER_SEPARATOR: &str = "__";

/// The catalog name of a server's tool: built-ins are unprefixed, upstream tools are `<server>__<tool>`.
pub fn catalog_name(server: &str, tool: &str) -> String {
    if server == BUILTIN_SERVER {
        tool.to_string()
    } else {
        format!("{server}{SERVER_SEPARATOR}{tool}")
    }
}

/// The name under which the built-in tools are reported as a server.
pub const BUILTIN_SERVER: &str = "builtin";

/// The server a catalog tool comes from: `<server>__<tool>` for upstream tools, else `builtin`.
pub fn server_of(tool_name: &str) -> &str {
    tool_name
        .split_once(SERVER_SEPARATOR)
        .map_or(BUILTIN_SERVER, |(server, _)| server)
}

/// The text of a tool's result: a string as is, anything else as JSON.
pub fn result_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// Why the catalog will not hand out a tool.
#[derive(Debug, PartialEq, Eq)]
pub enum ToolRefusal {
    Unknown,
    NotPermitted,
}

/// Why a call outside a chat did not run.
#[derive(Debug, PartialEq, Eq)]
pub enum OutsideChatRefusal {
    /// No such tool, or one the caller may not use: the two look the same from outside.
    Unavailable,
    /// The policy says `ask`, and outside a chat nobody can be asked.
    NeedsApproval,
}

/// A call that ran: its outcome (an `Err` is a message for the caller) and its duration in milliseconds.
#[derive(Debug)]
pub struct Called {
    pub outcome: Result<Value, String>,
    pub duration_ms: f64,
}

impl Catalog {
    /// The one path for calls outside a chat turn (`/mcp`, the REST execute route): find the tool, check the
    /// caller's permission and the policy (only `allow` runs), call it, and record the call in the tool-call log
    /// under `source`.
    pub async fn call_outside_chat(
        &self,
        caller: &Caller,
        name: &str,
        arguments: Value,
        source: &'static str,
    ) -> Result<Called, OutsideChatRefusal> {
        let tool = match self.find_for(caller, name) {
            Ok((tool, rule)) if rule.decision == Decision::Allow => tool,
            Ok(_) => return Err(OutsideChatRefusal::NeedsApproval),
            Err(_) => return Err(OutsideChatRefusal::Unavailable),
        };
        let at_ms = self.clock.now_ms();
        let started = std::time::Instant::now();
        let ctx = ToolContext::new(caller, None);
        let outcome = tool.call(arguments.clone(), &ctx).await;
        let duration_ms = (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
        self.tool_log.record(log::Entry::new(
            at_ms,
            &ctx,
            name,
            arguments,
            &outcome,
            duration_ms,
            source,
        ));
        Ok(Called {
            outcome,
            duration_ms,
        })
    }
}
