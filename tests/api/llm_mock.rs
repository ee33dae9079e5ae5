//! Scripted language-model servers on loopback, speaking the real wire formats: OpenAI chat completions and
//! Anthropic Messages, plain JSON or server-sent events. Each request takes the next scripted reply; every
//! request body is recorded for the test to inspect.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Body,
    http::{Response, StatusCode},
    routing::post,
};
use serde_json::{Value, json};

use crate::helpers::{DbKind, TestApp, spawn_app_with};

pub enum Reply {
    Json(Value),
    /// Server-sent events, each string one `data:` payload (OpenAI) or a full `event:`/`data:` block (Anthropic).
    Stream {
        events: Vec<String>,
        delay: Duration,
    },
    Status {
        status: u16,
        retry_after: Option<u64>,
        body: Value,
    },
    Hang(Duration),
}

#[derive(Clone, Default)]
pub struct Mock {
    script: Arc<Mutex<VecDeque<Reply>>>,
    pub requests: Arc<Mutex<Vec<(Value, axum::http::HeaderMap)>>>,
}

impl Mock {
    pub fn push(&self, reply: Reply) {
        self.script.lock().unwrap().push_back(reply);
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(b, _)| b.clone())
            .collect()
    }

    /// Starts the server; returns its base URL. `path` is where the API answers.
    pub async fn start(&self, path: &str) -> String {
        let mock = self.clone();
        let app = axum::Router::new().route(
            path,
            post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let mock = mock.clone();
                    async move {
                        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        mock.requests.lock().unwrap().push((body, headers));
                        let reply = mock.script.lock().unwrap().pop_front();
                        respond(reply).await
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }
}

async fn respond(reply: Option<Reply>) -> Response<Body> {
    match reply {
        None => json_response(500, json!({ "error": { "message": "script exhausted" } })),
        Some(Reply::Json(v)) => json_response(200, v),
        Some(Reply::Status {
            status,
            retry_after,
            body,
        }) => {
            let mut r = json_response(status, body);
            if let Some(s) = retry_after {
                r.headers_mut()
                    .insert("retry-after", s.to_string().parse().unwrap());
            }
            r
        }
        Some(Reply::Hang(d)) => {
            tokio::time::sleep(d).await;
            json_response(500, json!({ "error": { "message": "hung" } }))
        }
        Some(Reply::Stream { events, delay }) => {
            let stream = futures::stream::unfold(events.into_iter(), move |mut it| async move {
                let next = it.next()?;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let frame = if next.starts_with("event:") {
                    format!("{next}\n\n")
                } else {
                    format!("data: {next}\n\n")
                };
                Some((Ok::<_, std::convert::Infallible>(frame), it))
            });
            Response::builder()
                .status(200)
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(stream))
                .unwrap()
        }
    }
}

fn json_response(status: u16, v: Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

// ---- OpenAI shapes ----

pub fn openai_text(content: &str, prompt_tokens: i64, completion_tokens: i64) -> Reply {
    Reply::Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "mock",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens }
    }))
}

pub fn openai_tools(calls: &[(&str, &str, &str)]) -> Reply {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| json!({ "id": id, "type": "function", "function": { "name": name, "arguments": args } }))
        .collect();
    Reply::Json(json!({
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": null, "tool_calls": calls }, "finish_reason": "tool_calls" }],
        "usage": { "prompt_tokens": 10, "completion_tokens": 5 }
    }))
}

/// A streamed answer: the text in pieces, optionally one tool call in two argument fragments.
pub fn openai_stream(
    pieces: &[&str],
    tool: Option<(&str, &str, &str, &str)>,
    delay: Duration,
) -> Reply {
    let mut events: Vec<String> = pieces
        .iter()
        .map(|p| json!({ "choices": [{ "index": 0, "delta": { "content": p } }] }).to_string())
        .collect();
    let finish = if let Some((id, name, args1, args2)) = tool {
        events.push(json!({ "choices": [{ "index": 0, "delta": { "tool_calls": [{ "index": 0, "id": id, "type": "function", "function": { "name": name, "arguments": args1 } }] } }] }).to_string());
        events.push(json!({ "choices": [{ "index": 0, "delta": { "tool_calls": [{ "index": 0, "function": { "arguments": args2 } }] } }] }).to_string());
        "tool_calls"
    } else {
        "stop"
    };
    events.push(
        json!({ "choices": [{ "index": 0, "delta": {}, "finish_reason": finish }] }).to_string(),
    );
    events.push(
        json!({ "choices": [], "usage": { "prompt_tokens": 11, "completion_tokens": 4 } })
            .to_string(),
    );
    events.push("[DONE]".into());
    Reply::Stream { events, delay }
}

// ---- Anthropic shapes ----

pub fn anthropic_text(text: &str) -> Reply {
    Reply::Json(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "mock",
        "content": [{ "type": "text", "text": text }],
        "stop_reason": "end_turn", "usage": { "input_tokens": 9, "output_tokens": 3 }
    }))
}

pub fn anthropic_tool(id: &str, name: &str, input: Value) -> Reply {
    Reply::Json(json!({
        "id": "msg_2", "type": "message", "role": "assistant", "model": "mock",
        "content": [{ "type": "text", "text": "Adding." }, { "type": "tool_use", "id": id, "name": name, "input": input }],
        "stop_reason": "tool_use", "usage": { "input_tokens": 8, "output_tokens": 6 }
    }))
}

pub fn anthropic_stream(pieces: &[&str]) -> Reply {
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}");
    let mut events = vec![
        event(
            "message_start",
            json!({ "type": "message_start", "message": { "id": "msg_3", "role": "assistant", "content": [], "usage": { "input_tokens": 7, "output_tokens": 0 } } }),
        ),
        event(
            "content_block_start",
            json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
        ),
    ];
    for p in pieces {
        events.push(event("content_block_delta", json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": p } })));
    }
    events.push(event(
        "content_block_stop",
        json!({ "type": "content_block_stop", "index": 0 }),
    ));
    events.push(event("message_delta", json!({ "type": "message_delta", "delta": { "stop_reason": "end_turn" }, "usage": { "output_tokens": 5 } })));
    events.push(event("message_stop", json!({ "type": "message_stop" })));
    Reply::Stream {
        events,
        delay: Duration::ZERO,
    }
}

/// An app whose language model is `mock`, speaking OpenAI chat completions, with `extra` settings on top.
pub async fn openai_app(kind: DbKind, mock: &Mock, extra: &[(&str, &str)]) -> TestApp {
    let base = mock.start("/v1/chat/completions").await;
    let url = format!("{base}/v1");
    let mut settings = vec![
        ("LLM_PROVIDER", "openai"),
        ("LLM_API_URL", url.as_str()),
        ("LLM_MODEL", "mock-model"),
        ("OPENAI_API_KEY", "sk-test-key-0123456789"),
        ("LLM_MAX_RETRIES", "1"),
        ("AGENT_SYSTEM_PROMPT", "You are Warden's test assistant."),
    ];
    settings.extend_from_slice(extra);
    spawn_app_with(kind, &settings).await
}
