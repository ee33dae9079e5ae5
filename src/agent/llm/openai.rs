//! OpenAI-compatible chat completions (OpenAI, Groq, Ollama, vLLM, LiteLLM): tool calling and streaming.
//!
//! "Compatible" servers differ: `content` may be null, `arguments` may arrive as an object instead of a string
//! (Ollama), a tool call may lack its id, `finish_reason` may be anything. The reply types are hand-written
//! and lenient; what cannot be read at all is a `Protocol` error.

use std::{collections::BTreeMap, sync::Arc};

use futures::{FutureExt, future::BoxFuture};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer, ser::SerializeSeq};
use serde_json::Value;

use crate::http1::Poster;

use super::{
    DeltaSender, LlmError, LlmProvider, LlmRequest, LlmResponse, Message, Role, ToolCall, Usage,
    http::{RetryPolicy, next_chunk, post_json, poster, read_all},
};

pub struct OpenAi {
    label: String,
    url: String,
    model: String,
    api_key: Option<SecretString>,
    policy: RetryPolicy,
    http: Poster,
}

impl std::fmt::Debug for OpenAi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAi")
            .field("label", &self.label)
            .field("url", &self.url)
            .field("model", &self.model)
            .finish()
    }
}

impl OpenAi {
    /// `base_url` is the API root (`https://api.openai.com/v1`) or the full `/chat/completions` URL.
    pub fn new(
        label: &str,
        base_url: &str,
        model: &str,
        api_key: Option<SecretString>,
        policy: RetryPolicy,
    ) -> OpenAi {
        let base = base_url.trim_end_matches('/');
        let url = if base.ends_with("/chat/completions") {
            base.to_string()
        } else {
            format!("{base}/chat/completions")
        };
        OpenAi {
            label: label.to_string(),
            http: poster(&url),
            url,
            model: model.to_string(),
            api_key,
            policy,
        }
    }

    /// The request as JSON, written straight from the conversation (no JSON tree in between: the history window
    /// is serialized on every turn).
    fn body(&self, request: &LlmRequest, stream: bool) -> Vec<u8> {
        let has_tools = !request.tools.is_empty();
        let body = WireRequest {
            model: &self.model,
            messages: WireMessages(request),
            stream,
            tools: has_tools.then_some(WireTools(&request.tools)),
            tool_choice: has_tools.then_some("auto"),
            stream_options: stream.then_some(StreamOptions {
                include_usage: true,
            }),
        };
        serde_json::to_vec(&body).expect("a request of strings and JSON values serializes")
    }

    async fn run(
        &self,
        request: &LlmRequest,
        deltas: Option<&DeltaSender>,
    ) -> Result<LlmResponse, LlmError> {
        let headers: Vec<(&'static str, String)> = match &self.api_key {
            Some(k) => vec![("authorization", format!("Bearer {}", k.expose_secret()))],
            None => Vec::new(),
        };
        let body = self.body(request, deltas.is_some());
        let mut reply = post_json(&self.http, &headers, body, self.policy).await?;
        match deltas {
            None => parse_completion(&read_all(reply, self.policy.timeout).await?),
            Some(deltas) => {
                let mut stream = StreamAssembler::default();
                loop {
                    // The deadline is per chunk: a long answer may take minutes, a silent server may not.
                    let chunk = next_chunk(&mut reply, self.policy.timeout).await?;
                    match chunk {
                        Some(bytes) => {
                            for text in stream.feed(&bytes)? {
                                let _ = deltas.send(text);
                            }
                            if stream.done {
                                break;
                            }
                        }
                        None => break,
                    }
                }
                stream.finish()
            }
        }
    }
}

impl LlmProvider for OpenAi {
    fn name(&self) -> &str {
        &self.label
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        deltas: Option<&'a DeltaSender>,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        self.run(request, deltas).boxed()
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: WireMessages<'a>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<WireTools<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// The server's system prompt, then the conversation.
struct WireMessages<'a>(&'a LlmRequest);

impl Serialize for WireMessages<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.messages.len() + 1))?;
        seq.serialize_element(&Entry {
            role: "system",
            content: Some(&self.0.system),
            ..Entry::default()
        })?;
        for m in &self.0.messages {
            seq.serialize_element(&wire_message(m))?;
        }
        seq.end()
    }
}

/// One chat message as the API takes it; which fields appear depends on the role.
#[derive(Serialize, Default)]
struct Entry<'a> {
    role: &'static str,
    /// Absent only where `null` is sent instead (an assistant message that only calls tools).
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<WireCalls<'a>>,
    /// For tool results, both sent even when unknown (`null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<Option<&'a str>>,
}

fn wire_message(m: &Message) -> Entry<'_> {
    match m.role {
        Role::User => Entry {
            role: "user",
            content: Some(&m.content),
            ..Entry::default()
        },
        Role::Assistant if m.tool_calls.is_empty() => Entry {
            role: "assistant",
            content: Some(&m.content),
            ..Entry::default()
        },
        Role::Assistant => Entry {
            role: "assistant",
            content: (!m.content.is_empty()).then_some(m.content.as_str()),
            tool_calls: Some(WireCalls(&m.tool_calls)),
            ..Entry::default()
        },
        Role::Tool => Entry {
            role: "tool",
            content: Some(&m.content),
            tool_call_id: Some(m.tool_call_id.as_deref()),
            name: Some(m.name.as_deref()),
            ..Entry::default()
        },
    }
}

/// `[{"id", "type": "function", "function": {"name", "arguments"}}]`
struct WireCalls<'a>(&'a [ToolCall]);

impl Serialize for WireCalls<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Function<'a> {
            name: &'a str,
            arguments: &'a str,
        }
        #[derive(Serialize)]
        struct Call<'a> {
            id: &'a str,
            r#type: &'static str,
            function: Function<'a>,
        }
        s.collect_seq(self.0.iter().map(|c| Call {
            id: &c.id,
            r#type: "function",
            function: Function {
                name: &c.name,
                arguments: &c.arguments,
            },
        }))
    }
}

/// `[{"type": "function", "function": {"name", "description", "parameters"}}]`
struct WireTools<'a>(&'a [Arc<super::ToolSpec>]);

impl Serialize for WireTools<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Function<'a> {
            name: &'a str,
            description: &'a str,
            parameters: &'a super::Schema,
        }
        #[derive(Serialize)]
        struct Tool<'a> {
            r#type: &'static str,
            function: Function<'a>,
        }
        s.collect_seq(self.0.iter().map(|t| Tool {
            r#type: "function",
            function: Function {
                name: &t.name,
                description: &t.description,
                parameters: &t.parameters,
            },
        }))
    }
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: i64,
    #[serde(default)]
    completion_tokens: i64,
}

#[derive(Deserialize, Default)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    /// A string normally; an object from some servers.
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Deserialize, Default)]
struct WireToolCall {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: WireFunction,
}

#[derive(Deserialize, Default)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default, alias = "delta")]
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireCompletion {
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

fn arguments_text(v: Option<Value>) -> String {
    match v {
        Some(Value::String(s)) => s,
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn parse_completion(bytes: &[u8]) -> Result<LlmResponse, LlmError> {
    let c: WireCompletion = serde_json::from_slice(bytes)
        .map_err(|e| LlmError::Protocol(format!("not a chat completion: {e}")))?;
    let choice = c
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| LlmError::Protocol("no choices in the reply".into()))?;
    let tool_calls = choice
        .message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, t)| ToolCall {
            id: t
                .id
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("call_{i}")),
            name: t.function.name.unwrap_or_default(),
            arguments: non_empty_arguments(arguments_text(t.function.arguments)),
        })
        .collect();
    let usage = c.usage.unwrap_or_default();
    Ok(LlmResponse {
        content: choice.message.content.unwrap_or_default(),
        tool_calls,
        usage: Usage {
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
        },
        finish_reason: choice.finish_reason.unwrap_or_else(|| "stop".into()),
    })
}

fn non_empty_arguments(a: String) -> String {
    if a.trim().is_empty() { "{}".into() } else { a }
}

/// Reads `data:` lines of a streamed completion and assembles text and tool-call fragments (by `index`).
#[derive(Default)]
pub struct StreamAssembler {
    buffer: Vec<u8>,
    content: String,
    calls: BTreeMap<usize, (Option<String>, String, String)>,
    usage: Usage,
    finish_reason: Option<String>,
    pub done: bool,
}

impl StreamAssembler {
    /// Feeds raw bytes; returns the text fragments completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, LlmError> {
        self.buffer.extend_from_slice(bytes);
        let mut texts = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim().strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                self.done = true;
                break;
            }
            if data.is_empty() {
                continue;
            }
            let chunk: WireCompletion = serde_json::from_str(data)
                .map_err(|e| LlmError::Protocol(format!("bad stream chunk: {e}")))?;
            if let Some(u) = chunk.usage {
                self.usage = Usage {
                    input_tokens: u.prompt_tokens,
                    output_tokens: u.completion_tokens,
                };
            }
            for choice in chunk.choices {
                if let Some(text) = choice.message.content.filter(|t| !t.is_empty()) {
                    self.content.push_str(&text);
                    texts.push(text);
                }
                for (i, call) in choice
                    .message
                    .tool_calls
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                {
                    let slot = self.calls.entry(call.index.unwrap_or(i)).or_default();
                    if let Some(id) = call.id.filter(|s| !s.is_empty()) {
                        slot.0 = Some(id);
                    }
                    if let Some(name) = call.function.name {
                        slot.1.push_str(&name);
                    }
                    slot.2.push_str(&arguments_text(call.function.arguments));
                }
                if let Some(reason) = choice.finish_reason {
                    self.finish_reason = Some(reason);
                }
            }
        }
        Ok(texts)
    }

    pub fn finish(self) -> Result<LlmResponse, LlmError> {
        if !self.done && self.finish_reason.is_none() {
            return Err(LlmError::Protocol(
                "the stream ended before the answer was complete".into(),
            ));
        }
        let tool_calls = self
            .calls
            .into_iter()
            .map(|(i, (id, name, arguments))| ToolCall {
                id: id.unwrap_or_else(|| format!("call_{i}")),
                name,
                arguments: non_empty_arguments(arguments),
            })
            .collect();
        Ok(LlmResponse {
            content: self.content,
            tool_calls,
            usage: self.usage,
            finish_reason: self.finish_reason.unwrap_or_else(|| "stop".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn odd_replies_are_read_leniently() {
        let reply = br#"{"choices":[{"message":{"content":null,"tool_calls":[
            {"function":{"name":"add","arguments":{"a":5,"b":3}}},
            {"id":"c2","type":"function","function":{"name":"time","arguments":""}}]},
            "finish_reason":"function_call_or_whatever"}],"usage":{"prompt_tokens":12}}"#;
        let r = parse_completion(reply).unwrap();
        assert_eq!(r.content, "");
        assert_eq!(
            r.tool_calls[0],
            ToolCall {
                id: "call_0".into(),
                name: "add".into(),
                arguments: r#"{"a":5,"b":3}"#.into()
            }
        );
        assert_eq!(r.tool_calls[1].arguments, "{}");
        assert_eq!(r.finish_reason, "function_call_or_whatever");
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 12,
                output_tokens: 0
            }
        );
        assert!(parse_completion(b"<html>").is_err());
        assert!(parse_completion(br#"{"choices":[]}"#).is_err());
    }

    #[test]
    fn streamed_text_and_tool_call_fragments_are_assembled_across_chunk_boundaries() {
        let stream = concat!(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"Let me \"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"add.\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"function\":{\"name\":\"add\",\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"5,\\\"b\\\":3}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":7}}\n\n",
            "data: [DONE]\n\n"
        );
        let mut a = StreamAssembler::default();
        let mut texts = Vec::new();
        for piece in stream.as_bytes().chunks(7) {
            texts.extend(a.feed(piece).unwrap());
        }
        assert!(a.done);
        let r = a.finish().unwrap();
        assert_eq!(texts.concat(), "Let me add.");
        assert_eq!(r.content, "Let me add.");
        assert_eq!(
            r.tool_calls,
            vec![ToolCall {
                id: "call_a".into(),
                name: "add".into(),
                arguments: r#"{"a":5,"b":3}"#.into()
            }]
        );
        assert_eq!(r.finish_reason, "tool_calls");
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 20,
                output_tokens: 7
            }
        );
    }

    #[test]
    fn a_cut_stream_is_an_error() {
        let mut a = StreamAssembler::default();
        a.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"hal\"}}]}\n")
            .unwrap();
        assert!(a.finish().is_err());
    }

    /// A plain-HTTP model server is called on driven connections that are used again: three turns, one
    /// connection (an https:// one would go through reqwest, whose pool this test cannot see).
    #[tokio::test]
    async fn turns_to_a_plain_http_server_share_one_connection() {
        let (url, accepted) = crate::http1::testing::server("/v1", || {
            hyper::Response::new(crate::http1::testing::full(
                r#"{"choices":[{"message":{"content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
            ))
        })
        .await;
        let p = OpenAi::new("openai", &url, "m", None, RetryPolicy::default());
        assert!(matches!(p.http, Poster::Driven(_)));
        let req = LlmRequest {
            system: "s".into(),
            messages: vec![Message::user("hi")],
            tools: vec![],
        };
        for _ in 0..3 {
            let r = p.complete(&req, None).await.unwrap();
            assert_eq!((r.content.as_str(), r.usage.input_tokens), ("ok", 3));
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Anything but plain http without credentials stays on reqwest.
        for url in [
            "https://api.openai.com/v1",
            "http://user:key@127.0.0.1:1/v1",
        ] {
            let p = OpenAi::new("openai", url, "m", None, RetryPolicy::default());
            assert!(matches!(p.http, Poster::Reqwest(..)), "{url}");
        }
    }

    #[test]
    fn requests_carry_the_server_system_prompt_tools_and_tool_results() {
        let p = OpenAi::new("openai", "http://x/v1/", "m", None, RetryPolicy::default());
        assert_eq!(p.url, "http://x/v1/chat/completions");
        let call = ToolCall {
            id: "c1".into(),
            name: "add".into(),
            arguments: "{}".into(),
        };
        let req = LlmRequest {
            system: "server prompt".into(),
            messages: vec![
                Message::user("hi"),
                Message::assistant("", vec![call.clone()]),
                Message::tool_result(&call, "8"),
            ],
            tools: vec![Arc::new(super::super::ToolSpec {
                name: "add".into(),
                description: "d".into(),
                parameters: json!({}).into(),
            })],
        };
        let body: Value = serde_json::from_slice(&p.body(&req, true)).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "m",
                "messages": [
                    { "role": "system", "content": "server prompt" },
                    { "role": "user", "content": "hi" },
                    { "role": "assistant", "content": null, "tool_calls": [
                        { "id": "c1", "type": "function", "function": { "name": "add", "arguments": "{}" } }
                    ] },
                    { "role": "tool", "tool_call_id": "c1", "name": "add", "content": "8" },
                ],
                "stream": true,
                "tools": [
                    { "type": "function", "function": { "name": "add", "description": "d", "parameters": {} } }
                ],
                "tool_choice": "auto",
                "stream_options": { "include_usage": true },
            })
        );
        // Without tools and without streaming, neither field is sent; an assistant's text stays text.
        let plain = LlmRequest {
            system: "s".into(),
            messages: vec![Message::user("hi"), Message::assistant("hello", vec![])],
            tools: vec![],
        };
        let body: Value = serde_json::from_slice(&p.body(&plain, false)).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "m",
                "messages": [
                    { "role": "system", "content": "s" },
                    { "role": "user", "content": "hi" },
                    { "role": "assistant", "content": "hello" },
                ],
                "stream": false,
            })
        );
    }
}
