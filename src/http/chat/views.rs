//! The JSON shapes of the chat routes (seed 002's and seed 000's), typed.

use serde::Serialize;
use serde_json::Value;

use crate::{
    agent::ToolRecord,
    chat::{Turn, store::SessionRow},
    clock::rfc3339,
    ids::{ConversationId, UserId},
};

/// Stored metadata text as JSON; an unreadable value shows as `{}`.
pub(super) fn metadata(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::Object(Default::default()))
}

/// A conversation as seed 002 shows it; `id` and `session_id` are the same.
#[derive(Serialize)]
pub(super) struct SessionView<'a> {
    pub(super) id: &'a ConversationId,
    pub(super) session_id: &'a ConversationId,
    pub(super) user_id: &'a UserId,
    pub(super) title: &'a str,
    pub(super) created_at: String,
    pub(super) updated_at: String,
    pub(super) message_count: i64,
    pub(super) total_tokens_used: i64,
    pub(super) metadata: Value,
}

impl<'a> SessionView<'a> {
    pub(super) fn of(s: &'a SessionRow) -> SessionView<'a> {
        SessionView {
            id: &s.id,
            session_id: &s.id,
            user_id: &s.user_id,
            title: &s.title,
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
            message_count: s.message_count,
            total_tokens_used: s.input_tokens + s.output_tokens,
            metadata: metadata(&s.metadata),
        }
    }
}

#[derive(Serialize)]
pub(super) struct SessionCreated<'a> {
    pub(super) success: bool,
    pub(super) session_id: &'a ConversationId,
    pub(super) title: &'a str,
    pub(super) created_at: String,
    pub(super) message: &'static str,
}

/// An answered turn (also the data of the stream's `done` event).
#[derive(Serialize)]
pub(super) struct TurnView<'a> {
    pub(super) success: bool,
    pub(super) message_id: &'a str,
    pub(super) session_id: &'a ConversationId,
    pub(super) role: &'static str,
    pub(super) content: &'a str,
    pub(super) timestamp: String,
    pub(super) sources: &'static [Value],
    pub(super) metadata: TurnMetadata<'a>,
}

#[derive(Serialize)]
pub(super) struct TurnMetadata<'a> {
    pub(super) tokens_used: i64,
    pub(super) input_tokens: i64,
    pub(super) output_tokens: i64,
    pub(super) tool_calls: &'a [ToolRecord],
}

#[derive(Serialize)]
pub(super) struct SessionPage<'a> {
    pub(super) success: bool,
    pub(super) sessions: Vec<SessionView<'a>>,
    pub(super) total: i64,
    pub(super) limit: i64,
    pub(super) offset: i64,
    pub(super) has_more: bool,
}

#[derive(Serialize)]
pub(super) struct OneSession<'a> {
    #[serde(flatten)]
    pub(super) session: SessionView<'a>,
    pub(super) success: bool,
}

#[derive(Serialize)]
pub(super) struct Deleted {
    pub(super) success: bool,
    pub(super) message: &'static str,
}

#[derive(Serialize)]
pub(super) struct MessageView<'a> {
    pub(super) id: &'a str,
    pub(super) role: &'a str,
    pub(super) content: &'a str,
    pub(super) timestamp: String,
    pub(super) tool_calls: Option<Value>,
    pub(super) tool_call_id: Option<&'a str>,
    pub(super) metadata: Value,
}

#[derive(Serialize)]
pub(super) struct History<'a> {
    pub(super) success: bool,
    pub(super) session_id: &'a ConversationId,
    pub(super) session: SessionView<'a>,
    pub(super) messages: Vec<MessageView<'a>>,
    pub(super) total_messages: i64,
}

#[derive(Serialize)]
pub(super) struct SessionTokens<'a> {
    pub(super) success: bool,
    pub(super) session_id: &'a ConversationId,
    pub(super) total_tokens_used: i64,
    pub(super) input_tokens: i64,
    pub(super) output_tokens: i64,
    pub(super) message_count: i64,
}

#[derive(Serialize)]
pub(super) struct UserTokens<'a> {
    pub(super) success: bool,
    pub(super) user_id: &'a UserId,
    pub(super) total_tokens_used: i64,
    pub(super) input_tokens: i64,
    pub(super) output_tokens: i64,
    pub(super) sessions: i64,
    pub(super) messages: i64,
    pub(super) today: Today,
}

#[derive(Serialize)]
pub(super) struct Today {
    pub(super) tokens_used: i64,
    /// `null` when there is no quota.
    pub(super) daily_quota: Option<i64>,
}

/// Seed 000's stateless answer.
#[derive(Serialize)]
pub(super) struct StatelessAnswer<'a> {
    pub(super) response: &'a str,
    pub(super) tool_calls: Vec<StatelessToolCall<'a>>,
    pub(super) session_id: &'a ConversationId,
}

#[derive(Serialize)]
pub(super) struct StatelessToolCall<'a> {
    pub(super) name: &'a str,
    /// The arguments as JSON, or as the text the model sent when it is not JSON.
    pub(super) arguments: Value,
}

pub(super) fn turn_view(turn: &Turn) -> TurnView<'_> {
    let m = &turn.message;
    TurnView {
        success: true,
        message_id: &m.id,
        session_id: &turn.session_id,
        role: "assistant",
        content: &m.content,
        timestamp: rfc3339(m.created_at),
        sources: &[],
        metadata: TurnMetadata {
            tokens_used: turn.usage.input_tokens + turn.usage.output_tokens,
            input_tokens: turn.usage.input_tokens,
            output_tokens: turn.usage.output_tokens,
            tool_calls: &turn.tool_calls,
        },
    }
}
