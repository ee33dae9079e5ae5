//! `warden bench-llm`: an OpenAI-compatible chat completion that answers at once, so a chat turn's cost is
//! Warden's own. Asked to stream, it sends one token, `t=<epoch ms>` (the moment it sent it, so a browser on
//! the same machine can measure how long the token took to reach the page), then the usage and `[DONE]`.

use axum::response::IntoResponse;
use serde_json::{Value, json};

/// Serves a constant completion at `/v1/chat/completions` on `bind`.
pub async fn run(bind: &str) -> anyhow::Result<()> {
    let router = axum::Router::new().route(
        "/v1/chat/completions",
        // Raw bytes, so a probe without a body (bench/lib.sh's wait_ready) gets the plain answer too.
        axum::routing::post(|body: axum::body::Bytes| async move {
            let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if asked.get("stream") == Some(&Value::Bool(true)) {
                stream().into_response()
            } else {
                axum::Json(json!({
                    "id": "bench", "object": "chat.completion", "model": "bench",
                    "choices": [{ "index": 0, "message": { "role": "assistant", "content": "ok" }, "finish_reason": "stop" }],
                    "usage": { "prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11 }
                }))
                .into_response()
            }
        }),
    );
    super::serve(bind, router).await
}

fn stream() -> impl IntoResponse {
    let sent_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let token = json!({ "choices": [{ "index": 0, "delta": { "role": "assistant", "content": format!("t={sent_ms}") } }] });
    let done = json!({ "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11 } });
    (
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        format!("data: {token}\n\ndata: {done}\n\ndata: [DONE]\n\n"),
    )
}
