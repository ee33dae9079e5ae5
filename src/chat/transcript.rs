//! A conversation's transcript: how a turn becomes rows (the user's message, the agent's steps, the answer with
//! its usage) and how rows become the model's history again.

use serde_json::json;

use super::store::{HistoryRow, MessageRow, NewMessage};
use crate::agent::{
    ToolRecord,
    llm::{Message, Role, ToolCall, Usage},
};

/// The agent's intermediate steps as rows: each assistant message that called tools, and each tool result with
/// its tool's name, status and duration. Room is left for the answer that follows them.
pub(super) fn step_messages(steps: &[Message], records: &[ToolRecord]) -> Vec<NewMessage> {
    let mut rows: Vec<NewMessage> = Vec::with_capacity(steps.len() + 1);
    for m in steps {
        rows.push(match m.role {
            Role::Assistant => NewMessage {
                role: "assistant",
                content: m.content.clone(),
                input_tokens: 0,
                output_tokens: 0,
                tool_calls: Some(serde_json::to_string(&m.tool_calls).unwrap_or_default()),
                tool_call_id: None,
                metadata: json!({ "step": true }).to_string(),
            },
            _ => {
                let record = records
                    .iter()
                    .find(|r| Some(&r.id) == m.tool_call_id.as_ref());
                NewMessage {
                    role: "tool",
                    content: m.content.clone(),
                    input_tokens: 0,
                    output_tokens: 0,
                    tool_calls: None,
                    tool_call_id: m.tool_call_id.clone(),
                    metadata: json!({
                        "name": m.name,
                        "status": record.map(|r| r.status.as_str()),
                        "duration_ms": record.map(|r| r.duration_ms),
                    })
                    .to_string(),
                }
            }
        });
    }
    rows
}

pub(super) fn user_message(text: String) -> NewMessage {
    NewMessage {
        role: "user",
        content: text,
        input_tokens: 0,
        output_tokens: 0,
        tool_calls: None,
        tool_call_id: None,
        metadata: "{}".into(),
    }
}

pub(super) fn assistant_message(
    content: String,
    usage: Usage,
    records: &[ToolRecord],
    extra: Option<serde_json::Value>,
) -> NewMessage {
    let mut metadata = extra.unwrap_or_else(|| json!({}));
    metadata["tokens_used"] = json!(usage.input_tokens + usage.output_tokens);
    metadata["tool_calls"] = json!(records);
    NewMessage {
        role: "assistant",
        content,
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        tool_calls: None,
        tool_call_id: None,
        metadata: metadata.to_string(),
    }
}

/// A stored message (its columns) back into a model message.
fn to_message(
    role: &str,
    content: String,
    tool_calls: Option<&str>,
    tool_call_id: Option<&str>,
    metadata: &str,
) -> Message {
    match role {
        "user" => Message::user(content),
        "tool" => {
            let name = serde_json::from_str::<serde_json::Value>(metadata)
                .ok()
                .and_then(|m| m["name"].as_str().map(String::from))
                .unwrap_or_default();
            let call = ToolCall {
                id: tool_call_id.unwrap_or_default().to_string(),
                name,
                arguments: String::new(),
            };
            Message::tool_result(&call, content)
        }
        _ => {
            let calls: Vec<ToolCall> = tool_calls
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default();
            Message::assistant(content, calls)
        }
    }
}

pub(super) fn history_message(row: HistoryRow) -> Message {
    to_message(
        &row.role,
        row.content,
        row.tool_calls.as_deref(),
        row.tool_call_id.as_deref(),
        &row.metadata,
    )
}

pub(super) fn stored_message(row: &MessageRow) -> Message {
    to_message(
        &row.role,
        row.content.clone(),
        row.tool_calls.as_deref(),
        row.tool_call_id.as_deref(),
        &row.metadata,
    )
}

/// A window as the model's history. A window may begin in the middle of a tool exchange: everything before the
/// first user message in it is dropped, so the model never sees a tool result without its call.
pub(super) fn from_first_user(mut window: Vec<Message>) -> Vec<Message> {
    let start = window
        .iter()
        .position(|m| m.role == Role::User)
        .unwrap_or(window.len());
    window.drain(..start);
    window
}
