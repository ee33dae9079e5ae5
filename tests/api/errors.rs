//! One error path: a streamed chat turn's `error` event is the same body as a JSON error, so an internal
//! failure sends the generic message, its error id and a `code`, never the internal error's text.

use std::time::Duration;

use sqlx::Executor;

use reqwest::header;

use crate::helpers::prelude::*;
use crate::llm_mock::{Mock, openai_stream};

db_tests!(
    an_internal_failure_in_a_streamed_turn_sends_a_code_and_no_internal_text,
    the_edge_the_gateway_and_oauth_errors_come_from_the_one_builder,
);

/// The `error` event's data of a streamed turn, read to the end of the stream.
async fn error_event(mut r: reqwest::Response) -> Value {
    let mut buffer = String::new();
    while let Ok(Ok(Some(bytes))) = tokio::time::timeout(Duration::from_secs(10), r.chunk()).await {
        buffer.push_str(&String::from_utf8_lossy(&bytes));
    }
    for block in buffer.split("\n\n") {
        if block
            .lines()
            .any(|l| l.trim() == "event: error" || l.trim() == "event:error")
        {
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            return serde_json::from_str(&data).unwrap();
        }
    }
    panic!("no error event in {buffer}");
}

async fn an_internal_failure_in_a_streamed_turn_sends_a_code_and_no_internal_text(kind: DbKind) {
    // Arrange: a model that answers slowly, so the turn is in flight when the messages table goes away.
    let mock = Mock::default();
    mock.push(openai_stream(
        &["Hello", " there"],
        None,
        Duration::from_millis(300),
    ));
    let base = mock.start("/v1/chat/completions").await;
    let url = format!("{base}/v1");
    let app = spawn_app_with(
        kind,
        &[
            ("LLM_PROVIDER", "openai"),
            ("LLM_API_URL", url.as_str()),
            ("LLM_MODEL", "mock-model"),
            ("OPENAI_API_KEY", "sk-test-key-0123456789"),
            ("LLM_MAX_RETRIES", "1"),
        ],
    )
    .await;
    let token = app.admin().await.access;
    let sid = new_session(&app, &token).await;

    // Act
    let r = app
        .client
        .post(app.url("/chat/message"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .json(&json!({ "session_id": sid, "message": "hi" }))
        .send()
        .await
        .unwrap();
    for _ in 0..100 {
        if !mock.bodies().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mock.bodies().len(), 1, "the model was called");
    app.db()
        .pool
        .execute("ALTER TABLE chat_messages RENAME TO chat_messages_moved")
        .await
        .unwrap();
    let event = error_event(r).await;

    // Assert: the JSON error's shape, the generic message with its id, and nothing of the internal error.
    assert_eq!(event["success"], json!(false), "{event}");
    assert_eq!(event["code"], json!("internal_error"), "{event}");
    let message = event["error"].as_str().unwrap();
    assert!(
        message.starts_with("Internal server error (error id "),
        "{event}"
    );
    assert_eq!(event["message"], event["error"], "{event}");
    let text = event.to_string();
    for internal in [
        "chat_messages",
        "no such table",
        "relation",
        "sqlx",
        "database",
    ] {
        assert!(!text.contains(internal), "{internal:?} leaked: {event}");
    }
}

async fn the_edge_the_gateway_and_oauth_errors_come_from_the_one_builder(kind: DbKind) {
    let app = spawn_app(kind).await;

    // Headers too large: its own code, not `bad_request`.
    let r = app
        .get_as(
            "/health",
            &crate::helpers::header("x-padding", "v".repeat(20_000)),
        )
        .await;
    let body = expect_error(r, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).await;
    assert_eq!(body["code"], json!("headers_too_large"), "{body}");
    assert_eq!(body["error"], json!("Request headers too large"), "{body}");
    assert_eq!(body["message"], body["error"], "{body}");

    // The MCP gateway's 401: the standard body with the RFC 9728 challenge.
    let r = app
        .client
        .post(app.url("/mcp"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let challenge = r.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Bearer resource_metadata=\"")
            && challenge.ends_with("/.well-known/oauth-protected-resource/mcp\""),
        "{challenge}"
    );
    let body = expect_error(r, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["code"], json!("unauthorized"), "{body}");
    assert_eq!(
        body["error"],
        json!("Unauthorized - Invalid or missing token")
    );

    // The OAuth dialect keeps RFC 6749's fields, with `code` beside them.
    let r = app
        .client
        .post(app.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password")
        .send()
        .await
        .unwrap();
    let body = expect_error(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], json!("unsupported_grant_type"), "{body}");
    assert_eq!(body["code"], json!("unsupported_grant_type"), "{body}");
    assert!(body["error_description"].is_string(), "{body}");
}
