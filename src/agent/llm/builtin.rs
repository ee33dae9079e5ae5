//! The offline provider used when no language model is configured: deterministic, useful for a first run and
//! for tests, and honest that it is not a model.
//!
//! - `/tools` lists the caller's tools.
//! - `/call <tool> <json>` calls a tool with those arguments.
//! - "add 5 and 3", "add 5 to 3", "what is 5 + 3", "5 plus 3" call `add`.
//! - After a tool result it answers with the result; anything else gets a note on how to configure a model.

use futures::{FutureExt, future::BoxFuture};
use serde_json::json;

use super::{DeltaSender, LlmError, LlmProvider, LlmRequest, LlmResponse, Role, ToolCall, Usage};

pub struct Builtin;

pub const NOT_CONFIGURED: &str = "No language model is configured, so this is Warden's built-in assistant. \
It understands `/tools`, `/call <tool> <json arguments>` and sums such as \"add 5 and 3\". To use a real model, \
set LLM_PROVIDER with OPENAI_API_KEY, GROQ_API_KEY, ANTHROPIC_API_KEY, or LLM_API_URL and LLM_MODEL for a local \
server such as Ollama.";

impl LlmProvider for Builtin {
    fn name(&self) -> &str {
        "builtin"
    }

    fn model(&self) -> &str {
        "builtin"
    }

    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        deltas: Option<&'a DeltaSender>,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        let response = answer(request);
        if let Some(d) = deltas
            && !response.content.is_empty()
        {
            for word in response.content.split_inclusive(' ') {
                let _ = d.send(word.to_string());
            }
        }
        async move { Ok(response) }.boxed()
    }
}

fn answer(request: &LlmRequest) -> LlmResponse {
    let words = |s: &str| i64::try_from(s.split_whitespace().count()).unwrap_or(i64::MAX);
    let input_tokens = request
        .messages
        .iter()
        .map(|m| words(&m.content))
        .sum::<i64>()
        + words(&request.system);
    let reply = |content: String, tool_calls: Vec<ToolCall>| LlmResponse {
        usage: Usage {
            input_tokens,
            output_tokens: words(&content) + i64::try_from(tool_calls.len()).unwrap_or(0),
        },
        finish_reason: if tool_calls.is_empty() {
            "stop".into()
        } else {
            "tool_calls".into()
        },
        content,
        tool_calls,
    };
    let Some(last) = request.messages.last() else {
        return reply(NOT_CONFIGURED.into(), Vec::new());
    };
    if last.role == Role::Tool {
        // Answer with every result of the last step.
        let results: Vec<String> = request
            .messages
            .iter()
            .rev()
            .take_while(|m| m.role == Role::Tool)
            .map(|m| format!("{}: {}", m.name.as_deref().unwrap_or("tool"), m.content))
            .collect();
        return reply(
            results.into_iter().rev().collect::<Vec<_>>().join("\n"),
            Vec::new(),
        );
    }
    let text = last.content.trim();
    if text == "/tools" {
        let list: Vec<String> = request
            .tools
            .iter()
            .map(|t| format!("- {}: {}", t.name, t.description))
            .collect();
        let content = if list.is_empty() {
            "You have no tools.".to_string()
        } else {
            format!("Your tools:\n{}", list.join("\n"))
        };
        return reply(content, Vec::new());
    }
    if let Some(rest) = text.strip_prefix("/call ") {
        let (name, arguments) = rest
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((rest.trim(), "{}"));
        return reply(String::new(), vec![call(name, arguments.trim())]);
    }
    if let Some((a, b)) = sum_of(text) {
        return reply(
            String::new(),
            vec![call("add", &json!({ "a": a, "b": b }).to_string())],
        );
    }
    reply(NOT_CONFIGURED.into(), Vec::new())
}

fn call(name: &str, arguments: &str) -> ToolCall {
    ToolCall {
        id: format!("builtin_{}", uuid::Uuid::new_v4().simple()),
        name: name.to_string(),
        arguments: arguments.to_string(),
    }
}

/// Two integers in "add A and B", "add A to B", "A + B", "A plus B" (with an optional "what is").
fn sum_of(text: &str) -> Option<(i64, i64)> {
    let lower = text.to_lowercase();
    let cleaned: String = lower
        .chars()
        .map(|c| if c == '?' || c == ',' { ' ' } else { c })
        .collect();
    let words: Vec<&str> = cleaned
        .split_whitespace()
        .filter(|w| !["what", "is", "please", "the", "sum", "of"].contains(w))
        .collect();
    let number = |w: &str| w.parse::<i64>().ok();
    match words.as_slice() {
        ["add", a, "and" | "to", b] => Some((number(a)?, number(b)?)),
        [a, "+" | "plus", b] => Some((number(a)?, number(b)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Message;
    use super::*;

    fn ask(text: &str) -> LlmResponse {
        answer(&LlmRequest {
            system: String::new(),
            messages: vec![Message::user(text)],
            tools: Vec::new(),
        })
    }

    #[test]
    fn plain_sums_become_add_calls() {
        for text in ["add 5 and 3", "Add 5 to 3", "what is 5 + 3?", "5 plus 3"] {
            let r = ask(text);
            assert_eq!(r.tool_calls.len(), 1, "{text}");
            assert_eq!(r.tool_calls[0].name, "add");
            assert_eq!(r.tool_calls[0].arguments, r#"{"a":5,"b":3}"#);
        }
    }

    #[test]
    fn call_commands_pass_arguments_through_and_other_text_explains_itself() {
        let r = ask("/call add {\"a\":5,\"b\":3}");
        assert_eq!(
            (
                r.tool_calls[0].name.as_str(),
                r.tool_calls[0].arguments.as_str()
            ),
            ("add", "{\"a\":5,\"b\":3}")
        );
        assert_eq!(ask("hello").content, NOT_CONFIGURED);
    }
}
