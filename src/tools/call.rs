//! One finished tool call, as every sink records it (the `tool_calls` table, seed 000's files). It sits below
//! `log` and `store`, which both read it, so neither needs the other's types.

use serde_json::Value;

use crate::ids::{ConversationId, SessionId, UserId};

/// How a tool call ended; stored and sent as the text `success` or `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    Success,
    Error,
}

impl CallStatus {
    /// `Success` for a result, `Error` for a failure.
    pub fn of<T, E>(outcome: &Result<T, E>) -> CallStatus {
        if outcome.is_ok() {
            CallStatus::Success
        } else {
            CallStatus::Error
        }
    }

    /// The text stored in `tool_calls.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Success => "success",
            CallStatus::Error => "error",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub at_ms: i64,
    pub user_id: Option<UserId>,
    /// The login session whose credential made the call.
    pub session_id: Option<SessionId>,
    pub conversation_id: Option<ConversationId>,
    pub server: String,
    pub tool_name: String,
    pub tool_call_id: Option<String>,
    /// The arguments as the model sent them (redacted when recorded).
    pub arguments: Value,
    pub status: CallStatus,
    pub duration_ms: f64,
    pub result: String,
    pub error: Option<String>,
    /// `agent`, `mcp` or `rest`.
    pub source: &'static str,
    pub approval: Option<String>,
    pub approver_id: Option<UserId>,
    pub model: Option<String>,
    pub api: Option<String>,
}

impl Entry {
    /// An entry for one finished call made in `ctx` (user, login session, conversation); the server is read
    /// from the tool's name (`<server>__<tool>`, else `builtin`). Call id, approval and model are for the
    /// caller to add.
    pub fn new(
        at_ms: i64,
        ctx: &super::ToolContext,
        tool_name: &str,
        arguments: Value,
        outcome: &Result<Value, String>,
        duration_ms: f64,
        source: &'static str,
    ) -> Entry {
        Entry {
            at_ms,
            user_id: Some(ctx.user_id.clone()),
            session_id: Some(ctx.session_id.clone()),
            conversation_id: ctx.conversation_id.clone(),
            server: super::server_of(tool_name).to_string(),
            tool_name: tool_name.to_string(),
            tool_call_id: None,
            arguments,
            status: CallStatus::of(outcome),
            duration_ms,
            result: outcome.as_ref().map(super::result_text).unwrap_or_default(),
            error: outcome.as_ref().err().cloned(),
            source,
            approval: None,
            approver_id: None,
            model: None,
            api: Some(source.to_string()),
        }
    }
}
