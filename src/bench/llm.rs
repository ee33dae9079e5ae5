//! `warden bench-llm`: an OpenAI-compatible chat completion that answers at once, so a chat turn's cost is
//! Warden's own.

/// Serves a constant completion at `/v1/chat/completions` on `bind`.
pub async fn run(bind: &str) -> anyhow::Result<()> {
    let reply = serde_json::json!({
        "id": "bench", "object": "chat.completion", "model": "bench",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": "ok" }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11 }
    });
    let router = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let reply = reply.clone();
            async move { axum::Json(reply) }
        }),
    );
    super::serve(bind, router).await
}
