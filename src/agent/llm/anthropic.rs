//! The Anthropic Messages API (`POST {base}/v1/messages`), plain or streamed as server-sent events.
//!
//! Our conversation model is OpenAI-shaped (tool results are messages of their own); Anthropic wants tool
//! calls and results as content blocks in strictly alternating turns, so the mapping happens here. Replies
//! are parsed leniently: missing fields default, unknown block and event types are ignored.

use std::fmt;

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http1::Poster;

use super::http::{RetryPolicy, next_chunk, post_json, poster, read_all};
use super::{DeltaSender, LlmError, LlmProvider, LlmRequest, LlmResponse, Role, ToolCall, Usage};

const API_VERSION: &str = "2023-06-01";

/// A provider for Anthropic's Messages API.
pub struct Anthropic {
    client: Poster,
    url: String,
    api_key: SecretString,
    model: String,
    max_tokens: u32,
    policy: RetryPolicy,
}

// Hand-written so the key can never reach a log line.
impl fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anthropic")
            .field("url", &self.url)
            .field("api_key", &"[redacted]")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Anthropic {
    /// `base_url` is e.g. `https://api.anthropic.com` (a trailing slash is ignored); `max_tokens` caps each
    /// reply, as the API requires.
    pub fn new(
        base_url: &str,
        api_key: SecretString,
        model: &str,
        max_tokens: u32,
        policy: RetryPolicy,
    ) -> Anthropic {
        let url = format!("{}/v1/messages", base_url.trim_end_matches('/'));
        Anthropic {
            client: poster(&url),
            url,
            api_key,
            model: model.to_string(),
            max_tokens,
            policy,
        }
    }

    async fn call(
        &self,
        request: &LlmRequest,
        deltas: Option<&DeltaSender>,
    ) -> Result<LlmResponse, LlmError> {
        let body = request_body(&self.model, self.max_tokens, request, deltas.is_some());
        // `post_json` sets `content-type: application/json` itself; adding it here would duplicate it.
        let headers = [
            ("x-api-key", self.api_key.expose_secret().to_string()),
            ("anthropic-version", API_VERSION.to_string()),
        ];
        let mut reply = post_json(
            &self.client,
            &headers,
            serde_json::to_vec(&body).expect("a JSON value serializes"),
            self.policy,
        )
        .await?;
        let timeout = self.policy.timeout;
        let Some(deltas) = deltas else {
            return parse_response(&read_all(reply, timeout).await?);
        };
        let mut stream = StreamParser::default();
        // The deadline is per chunk: a long answer may take minutes, a silent server may not.
        while !stream.done {
            let Some(chunk) = next_chunk(&mut reply, timeout).await? else {
                break;
            };
            for text in stream.feed(&chunk)? {
                // A listener that went away must not cost us the answer.
                let _ = deltas.send(text);
            }
        }
        stream.finish()
    }
}

impl LlmProvider for Anthropic {
    fn name(&self) -> &str {
        "anthropic"
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        deltas: Option<&'a DeltaSender>,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        Box::pin(self.call(request, deltas))
    }
}

/// The JSON body for one request.
fn request_body(model: &str, max_tokens: u32, request: &LlmRequest, stream: bool) -> Value {
    let mut messages: Vec<Value> = Vec::new();
    for m in &request.messages {
        match m.role {
            Role::User => match open_user_turn(&mut messages) {
                Some(blocks) => blocks.push(json!({"type": "text", "text": m.content})),
                None => messages.push(json!({"role": "user", "content": m.content})),
            },
            Role::Tool => {
                let block = json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id.as_deref().unwrap_or_default(),
                    "content": m.content,
                });
                match open_user_turn(&mut messages) {
                    // Anthropic wants tool results before any text in the turn.
                    Some(blocks) => {
                        let at = blocks.iter().position(|b| b["type"] != "tool_result");
                        blocks.insert(at.unwrap_or(blocks.len()), block);
                    }
                    None => messages.push(json!({"role": "user", "content": [block]})),
                }
            }
            Role::Assistant => {
                let mut blocks = Vec::new();
                if !m.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": m.content}));
                }
                for call in &m.tool_calls {
                    let input = serde_json::from_str::<Value>(&call.arguments)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
                }
                // The API rejects an empty assistant turn; an empty one says nothing anyway.
                if !blocks.is_empty() {
                    messages.push(json!({"role": "assistant", "content": blocks}));
                }
            }
        }
    }
    let mut body = json!({"model": model, "max_tokens": max_tokens, "messages": messages});
    if !request.system.is_empty() {
        body["system"] = json!(request.system);
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        body["tools"] = json!(tools);
    }
    if stream {
        body["stream"] = json!(true);
    }
    body
}

/// The content blocks of the last message if it is a user turn made of blocks (one holding tool results),
/// so that further results and text join it instead of breaking the alternation of roles.
fn open_user_turn(messages: &mut [Value]) -> Option<&mut Vec<Value>> {
    let last = messages.last_mut()?;
    if last["role"] != "user" {
        return None;
    }
    last["content"].as_array_mut()
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireResponse {
    content: Vec<WireBlock>,
    stop_reason: Option<String>,
    usage: Option<WireUsage>,
}

/// A content block, or (in a stream) a delta to one or to the message.
#[derive(Default, Deserialize)]
#[serde(default)]
struct WireBlock {
    #[serde(rename = "type")]
    kind: String,
    text: String,
    id: String,
    name: String,
    input: Value,
    partial_json: String,
    stop_reason: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireUsage {
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireEvent {
    #[serde(rename = "type")]
    kind: String,
    index: usize,
    message: Option<WireResponse>,
    content_block: Option<WireBlock>,
    delta: Option<WireBlock>,
    usage: Option<WireUsage>,
    error: Option<WireError>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireError {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

/// An empty or non-object input becomes `{}`, the arguments of a call without parameters.
fn input_text(input: &Value) -> String {
    match input {
        Value::Object(map) if !map.is_empty() => input.to_string(),
        _ => "{}".to_string(),
    }
}

fn parse_response(bytes: &[u8]) -> Result<LlmResponse, LlmError> {
    let wire: WireResponse = serde_json::from_slice(bytes)
        .map_err(|e| LlmError::Protocol(format!("invalid message JSON: {e}")))?;
    let mut response = LlmResponse {
        content: String::new(),
        tool_calls: Vec::new(),
        usage: Usage::default(),
        finish_reason: wire.stop_reason.unwrap_or_default(),
    };
    for block in wire.content {
        match block.kind.as_str() {
            "text" => response.content.push_str(&block.text),
            "tool_use" => response.tool_calls.push(ToolCall {
                id: block.id,
                name: block.name,
                arguments: input_text(&block.input),
            }),
            _ => {}
        }
    }
    if let Some(usage) = wire.usage {
        response.usage.input_tokens = usage.input_tokens.unwrap_or(0);
        response.usage.output_tokens = usage.output_tokens.unwrap_or(0);
    }
    Ok(response)
}

/// Assembles a streamed reply from raw bytes, split wherever the network split them.
#[derive(Default)]
struct StreamParser {
    /// Bytes after the last complete line.
    buffer: Vec<u8>,
    /// The `data:` lines of the event being read.
    data: String,
    content: String,
    /// Tool calls by block index, with the input sent in `content_block_start`.
    tools: Vec<(usize, ToolCall, Value)>,
    usage: Usage,
    finish_reason: String,
    done: bool,
}

impl StreamParser {
    /// Takes the next bytes; returns the text fragments they completed, in order.
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, LlmError> {
        self.buffer.extend_from_slice(bytes);
        let mut texts = Vec::new();
        // Splitting on `\n` bytes keeps multi-byte characters whole: they never contain one.
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            self.line(line.trim_end_matches(['\n', '\r']), &mut texts)?;
        }
        Ok(texts)
    }

    fn line(&mut self, line: &str, texts: &mut Vec<String>) -> Result<(), LlmError> {
        if line.is_empty() {
            return self.dispatch(texts);
        }
        // The event name is repeated as the data's `type`, which is what we go by; comments are ignored.
        if let Some(data) = line.strip_prefix("data:") {
            if !self.data.is_empty() {
                self.data.push('\n');
            }
            self.data.push_str(data.strip_prefix(' ').unwrap_or(data));
        }
        Ok(())
    }

    fn dispatch(&mut self, texts: &mut Vec<String>) -> Result<(), LlmError> {
        if self.data.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(&mut self.data);
        let event: WireEvent = serde_json::from_str(&data)
            .map_err(|e| LlmError::Protocol(format!("invalid stream event: {e}")))?;
        match event.kind.as_str() {
            "message_start" => {
                let usage = event.message.and_then(|m| m.usage).unwrap_or_default();
                self.usage.input_tokens = usage.input_tokens.unwrap_or(0);
            }
            "content_block_start" => match event.content_block {
                Some(b) if b.kind == "tool_use" => {
                    let call = ToolCall {
                        id: b.id,
                        name: b.name,
                        arguments: String::new(),
                    };
                    self.tools.push((event.index, call, b.input));
                }
                Some(b) if b.kind == "text" && !b.text.is_empty() => {
                    self.content.push_str(&b.text);
                    texts.push(b.text);
                }
                _ => {}
            },
            "content_block_delta" => match event.delta.unwrap_or_default() {
                d if d.kind == "text_delta" && !d.text.is_empty() => {
                    self.content.push_str(&d.text);
                    texts.push(d.text);
                }
                d if d.kind == "input_json_delta" => {
                    if let Some((_, call, _)) = self.tools.iter_mut().find(|t| t.0 == event.index) {
                        call.arguments.push_str(&d.partial_json);
                    }
                }
                _ => {}
            },
            "message_delta" => {
                if let Some(reason) = event.delta.and_then(|d| d.stop_reason) {
                    self.finish_reason = reason;
                }
                let usage = event.usage.unwrap_or_default();
                self.usage.output_tokens = usage.output_tokens.unwrap_or(self.usage.output_tokens);
                // Newer API versions repeat the input count here; take it when present.
                self.usage.input_tokens = usage.input_tokens.unwrap_or(self.usage.input_tokens);
            }
            "message_stop" => self.done = true,
            "error" => return Err(stream_error(event.error.unwrap_or_default())),
            _ => {} // ping, content_block_stop, and whatever comes later
        }
        Ok(())
    }

    /// The assembled reply, once the stream has ended.
    fn finish(mut self) -> Result<LlmResponse, LlmError> {
        // A last event without its blank line still counts.
        let rest = String::from_utf8_lossy(&std::mem::take(&mut self.buffer)).into_owned();
        self.line(rest.trim_end_matches('\r'), &mut Vec::new())?;
        self.dispatch(&mut Vec::new())?;
        if !self.done {
            return Err(LlmError::Protocol(
                "the stream ended before message_stop".to_string(),
            ));
        }
        let tool_calls = self
            .tools
            .into_iter()
            .map(|(_, mut call, input)| {
                if call.arguments.is_empty() {
                    call.arguments = input_text(&input);
                }
                call
            })
            .collect();
        Ok(LlmResponse {
            content: self.content,
            tool_calls,
            usage: self.usage,
            finish_reason: self.finish_reason,
        })
    }
}

/// An `error` event mid-stream, mapped to the status the same failure has before a stream begins.
fn stream_error(error: WireError) -> LlmError {
    let status = match error.kind.as_str() {
        "rate_limit_error" => {
            return LlmError::RateLimited {
                retry_after_secs: None,
            };
        }
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "overloaded_error" => 529,
        _ => 500,
    };
    let message = [error.message, error.kind]
        .into_iter()
        .find(|m| !m.is_empty());
    let message = message.unwrap_or_default().chars().take(300).collect();
    LlmError::Upstream { status, message }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::http::HeaderMap;
    use axum::response::IntoResponse;

    use super::super::{Message, ToolSpec};
    use super::*;

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    fn conversation() -> LlmRequest {
        let (weather, time) = (
            call("c1", "weather", r#"{"city":"Paris"}"#),
            call("c2", "time", "not json"),
        );
        LlmRequest {
            system: "Be brief.".into(),
            messages: vec![
                Message::user("Weather and time in Paris?"),
                Message::assistant("Checking.", vec![weather.clone(), time.clone()]),
                Message::tool_result(&weather, "18C"),
                Message::tool_result(&time, "noon"),
                Message::user("Thanks"),
            ],
            tools: vec![Arc::new(ToolSpec {
                name: "weather".into(),
                description: "Current weather".into(),
                parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}})
                    .into(),
            })],
        }
    }

    #[test]
    fn maps_a_conversation_merging_tool_results_into_one_user_turn() {
        let body = request_body("claude-x", 512, &conversation(), false);
        let expected = json!({
            "model": "claude-x",
            "max_tokens": 512,
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": "Weather and time in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "c1", "name": "weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "c2", "name": "time", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "c1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "c2", "content": "noon"},
                    {"type": "text", "text": "Thanks"},
                ]},
            ],
            "tools": [{
                "name": "weather",
                "description": "Current weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }],
        });
        assert_eq!(body, expected);

        let mut plain = conversation();
        plain.tools.clear();
        let body = request_body("claude-x", 512, &plain, true);
        assert_eq!(body["stream"], json!(true));
        assert!(body.get("tools").is_none());
    }

    const REPLY: &str = r#"{"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "text", "text": "Let me "},
            {"type": "thinking", "thinking": "ignored"},
            {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "text", "text": "look."},
            {"type": "tool_use", "id": "t2", "name": "time", "input": {}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 42, "output_tokens": 17, "cache_read_input_tokens": 0}}"#;

    fn reply() -> LlmResponse {
        LlmResponse {
            content: "Let me look.".into(),
            tool_calls: vec![
                call("t1", "weather", r#"{"city":"Paris"}"#),
                call("t2", "time", "{}"),
            ],
            usage: Usage {
                input_tokens: 42,
                output_tokens: 17,
            },
            finish_reason: "tool_use".into(),
        }
    }

    #[test]
    fn parses_a_reply_with_text_and_tool_calls() {
        assert_eq!(parse_response(REPLY.as_bytes()).unwrap(), reply());
        let bare = parse_response(br#"{"content": [], "stop_reason": "something_new"}"#).unwrap();
        assert_eq!(
            (bare.usage, bare.finish_reason.as_str()),
            (Usage::default(), "something_new")
        );
        assert!(matches!(
            parse_response(b"<html>"),
            Err(LlmError::Protocol(_))
        ));
    }

    /// A realistic event stream: text deltas, then a tool call sent in pieces and one without input.
    fn sse() -> String {
        [
            r#"{"type":"message_start","message":{"id":"msg_1","content":[],"stop_reason":null,"usage":{"input_tokens":42,"output_tokens":1}}}"#,
            r#"{"type": "ping"}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Il fait "}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"beau ☀"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"weather","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Pa"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ris\"}"}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"t2","name":"time","input":{}}}"#,
            r#"{"type":"content_block_stop","index":2}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":17}}"#,
            r#"{"type":"message_stop"}"#,
        ]
        .iter()
        .map(|data| {
            let kind = serde_json::from_str::<Value>(data).unwrap()["type"].clone();
            format!("event: {}\ndata: {data}\n\n", kind.as_str().unwrap())
        })
        .collect()
    }

    fn streamed() -> LlmResponse {
        LlmResponse {
            content: "Il fait beau ☀".into(),
            tool_calls: vec![
                call("t1", "weather", r#"{"city": "Paris"}"#),
                call("t2", "time", "{}"),
            ],
            ..reply()
        }
    }

    #[test]
    fn assembles_a_stream_split_at_awkward_places() {
        for stream in [sse(), sse().replace('\n', "\r\n")] {
            // Pieces of 1, 2, 3... 12 bytes: they cut lines, JSON and the multi-byte sun alike.
            let (mut parser, mut texts, mut at, mut size) =
                (StreamParser::default(), Vec::new(), 0, 1);
            while at < stream.len() {
                let end = (at + size).min(stream.len());
                texts.extend(parser.feed(&stream.as_bytes()[at..end]).unwrap());
                (at, size) = (end, size % 12 + 1);
            }
            assert_eq!(texts, ["Il fait ", "beau ☀"]);
            assert_eq!(parser.finish().unwrap(), streamed());
        }
    }

    #[test]
    fn reports_stream_errors_and_truncation() {
        let mut parser = StreamParser::default();
        let error = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let err = parser.feed(error.as_bytes()).unwrap_err();
        assert!(
            matches!(err, LlmError::Upstream { status: 529, ref message } if message == "Overloaded")
        );

        let (stream, mut parser) = (sse(), StreamParser::default());
        parser
            .feed(&stream.as_bytes()[..stream.find("event: message_delta").unwrap()])
            .unwrap();
        assert!(matches!(parser.finish(), Err(LlmError::Protocol(_))));
    }

    type Seen = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

    /// A stand-in for the API: records each request and answers plainly or as a stream, as asked.
    async fn fake_api(
        axum::extract::State(seen): axum::extract::State<Seen>,
        headers: HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> axum::response::Response {
        let stream = body["stream"] == json!(true);
        seen.lock().unwrap().push((headers, body));
        if stream {
            ([("content-type", "text/event-stream")], sse()).into_response()
        } else {
            ([("content-type", "application/json")], REPLY).into_response()
        }
    }

    #[tokio::test]
    async fn completes_against_a_local_server() {
        let seen = Seen::default();
        let app = axum::Router::new()
            .route("/v1/messages", axum::routing::post(fake_api))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let key = SecretString::from("sk-test-secret");
        let provider = Anthropic::new(&base, key, "claude-x", 512, RetryPolicy::default());
        assert!(!format!("{provider:?}").contains("sk-test-secret"));
        assert_eq!(
            (provider.name(), provider.model()),
            ("anthropic", "claude-x")
        );

        assert_eq!(
            provider.complete(&conversation(), None).await.unwrap(),
            reply()
        );
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        assert_eq!(
            provider.complete(&conversation(), Some(&tx)).await.unwrap(),
            streamed()
        );
        let mut texts = Vec::new();
        while let Ok(text) = rx.try_recv() {
            texts.push(text);
        }
        assert_eq!(texts, ["Il fait ", "beau ☀"]);

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        let (headers, body) = &seen[0];
        assert_eq!(headers["x-api-key"], "sk-test-secret");
        assert_eq!(headers["anthropic-version"], "2023-06-01");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body["model"], "claude-x");
        assert!(body.get("stream").is_none());
        assert_eq!(seen[1].1["stream"], json!(true));
    }
}
