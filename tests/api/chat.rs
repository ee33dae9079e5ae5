//! Chat and the agent over HTTP, driven by scripted OpenAI-compatible and Anthropic servers on loopback.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::db_tests;
use crate::helpers::{
    ADMIN_PASSWORD, DbKind, TestApp, expect_error, new_session, send, spawn_app, spawn_app_with,
};
use crate::llm_mock::{
    Mock, Reply, anthropic_stream, anthropic_text, anthropic_tool, openai_stream, openai_text,
    openai_tools,
};

db_tests!(
    the_builtin_provider_lists_tools_and_calls_add,
    a_plain_answer_is_stored_with_its_usage,
    one_tool_call_then_an_answer,
    several_tool_calls_in_one_step_and_a_multi_step_chain,
    unknown_tools_and_invalid_arguments_go_back_to_the_model,
    the_step_cap_ends_a_loop_that_never_answers,
    llm_failures_are_502_or_504_and_keep_the_users_message,
    a_429_with_retry_after_is_retried,
    streaming_sends_tokens_tool_events_and_done,
    a_stream_whose_client_leaves_still_stores_the_answer,
    another_users_conversation_is_a_404_everywhere,
    seed_000_api_chat_needs_cookie_and_csrf,
    input_limits_are_4xx_with_clear_messages,
    the_daily_token_quota_answers_429,
    the_history_sent_to_the_model_is_windowed,
    the_anthropic_provider_answers_calls_tools_and_streams,
);

async fn openai_app(kind: DbKind, mock: &Mock, extra: &[(&str, &str)]) -> TestApp {
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

/// The same turn as `send`, asking for server-sent events.
async fn send_streaming(
    app: &TestApp,
    token: &str,
    session: &str,
    text: &str,
) -> reqwest::Response {
    app.client
        .post(app.url("/chat/message"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .json(&json!({ "session_id": session, "message": text }))
        .send()
        .await
        .unwrap()
}

async fn history(app: &TestApp, token: &str, session: &str) -> Value {
    app.get_bearer(&format!("/chat/session/{session}/history"), token)
        .await
        .json()
        .await
        .unwrap()
}

async fn the_builtin_provider_lists_tools_and_calls_add(kind: DbKind) {
    let app = spawn_app(kind).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    let r: Value = send(&app, &t.access, &sid, "/tools")
        .await
        .json()
        .await
        .unwrap();
    assert!(r["content"].as_str().unwrap().contains("add"), "{r}");
    let r = send(&app, &t.access, &sid, r#"/call add {"a":5,"b":3}"#).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["role"], json!("assistant"));
    assert_eq!(body["content"], json!("add: 8"));
    let call = &body["metadata"]["tool_calls"][0];
    assert_eq!(
        (
            call["name"].clone(),
            call["status"].clone(),
            call["result"].clone()
        ),
        (json!("add"), json!("success"), json!("8"))
    );
    assert_eq!(call["arguments"], json!(r#"{"a":5,"b":3}"#));
    assert!(call["duration_ms"].is_number());
    let h = history(&app, &t.access, &sid).await;
    let roles: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "user",
            "assistant",
            "user",
            "assistant",
            "tool",
            "assistant"
        ]
    );
    assert_eq!(h["total_messages"], json!(6));
    assert_eq!(h["messages"][4]["metadata"]["name"], json!("add"));
    // "add 5 and 3" is understood too, and a note explains what the builtin is.
    let r: Value = send(&app, &t.access, &sid, "add 5 and 3")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["content"], json!("add: 8"));
    let r: Value = send(&app, &t.access, &sid, "hello")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        r["content"]
            .as_str()
            .unwrap()
            .contains("No language model is configured")
    );
}

async fn a_plain_answer_is_stored_with_its_usage(kind: DbKind) {
    let mock = Mock::default();
    mock.push(openai_text("Hello there.", 12, 3));
    let app = openai_app(kind, &mock, &[]).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    let body: Value = send(&app, &t.access, &sid, "hi")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["content"], json!("Hello there."));
    assert_eq!(body["metadata"]["tokens_used"], json!(15));
    for field in ["message_id", "session_id", "timestamp", "sources"] {
        assert!(!body[field].is_null(), "{field}");
    }
    let (request, headers) = mock.requests.lock().unwrap()[0].clone();
    assert_eq!(headers["authorization"], "Bearer sk-test-key-0123456789");
    assert_eq!(request["model"], json!("mock-model"));
    assert_eq!(
        request["messages"][0],
        json!({ "role": "system", "content": "You are Warden's test assistant." })
    );
    assert_eq!(
        request["messages"][1],
        json!({ "role": "user", "content": "hi" })
    );
    let tools: Vec<&str> = request["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["add", "calculator", "time"]);
    let tokens: Value = app
        .get_bearer(&format!("/chat/session/{sid}/tokens"), &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            tokens["input_tokens"].clone(),
            tokens["output_tokens"].clone(),
            tokens["total_tokens_used"].clone()
        ),
        (json!(12), json!(3), json!(15))
    );
    let user: Value = app
        .get_bearer("/chat/user/tokens", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["total_tokens_used"], json!(15));
    assert_eq!(user["today"]["tokens_used"], json!(15));
    let list: Value = app
        .get_bearer("/chat/sessions", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], json!(1));
    assert_eq!(list["sessions"][0]["total_tokens_used"], json!(15));
    assert_eq!(list["has_more"], json!(false));
}

async fn one_tool_call_then_an_answer(kind: DbKind) {
    let mock = Mock::default();
    mock.push(openai_tools(&[("call_1", "add", r#"{"a":5,"b":3}"#)]));
    mock.push(openai_text("5 + 3 = 8", 20, 4));
    let app = openai_app(kind, &mock, &[]).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    let body: Value = send(&app, &t.access, &sid, "add 5 and 3")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["content"], json!("5 + 3 = 8"));
    assert_eq!(body["metadata"]["tool_calls"][0]["result"], json!("8"));
    assert_eq!(body["metadata"]["tokens_used"], json!(10 + 5 + 20 + 4));
    let second = &mock.bodies()[1];
    let msgs = second["messages"].as_array().unwrap();
    assert_eq!(msgs[2]["tool_calls"][0]["id"], json!("call_1"));
    assert_eq!(
        msgs[3],
        json!({ "role": "tool", "tool_call_id": "call_1", "name": "add", "content": "8" })
    );
}

async fn several_tool_calls_in_one_step_and_a_multi_step_chain(kind: DbKind) {
    let mock = Mock::default();
    mock.push(openai_tools(&[
        ("a", "add", r#"{"a":1,"b":2}"#),
        ("b", "add", r#"{"a":3,"b":4}"#),
    ]));
    mock.push(openai_tools(&[(
        "c",
        "calculator",
        r#"{"expression":"3 * 7"}"#,
    )]));
    mock.push(openai_text("21", 1, 1));
    let app = openai_app(kind, &mock, &[]).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    let body: Value = send(&app, &t.access, &sid, "compute")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["content"], json!("21"));
    let results: Vec<Value> = body["metadata"]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["result"].clone())
        .collect();
    assert_eq!(results, [json!("3"), json!("7"), json!("21")]);
    let bodies = mock.bodies();
    assert_eq!(bodies.len(), 3);
    let step2 = bodies[1]["messages"].as_array().unwrap();
    assert_eq!(
        step2.len(),
        5,
        "system, user, assistant with two calls, two results"
    );
    assert_eq!(step2[4]["content"], json!("7"));
}

async fn unknown_tools_and_invalid_arguments_go_back_to_the_model(kind: DbKind) {
    let mock = Mock::default();
    mock.push(openai_tools(&[
        ("x", "delete_everything", "{}"),
        ("y", "add", "{not json"),
        ("z", "add", "[1,2]"),
    ]));
    mock.push(openai_text("Sorry.", 1, 1));
    let app = openai_app(kind, &mock, &[]).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    let body: Value = send(&app, &t.access, &sid, "do things")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["content"], json!("Sorry."));
    let calls = body["metadata"]["tool_calls"].as_array().unwrap();
    assert!(calls.iter().all(|c| c["status"] == json!("error")));
    let msgs = mock.bodies()[1]["messages"].as_array().unwrap().clone();
    assert!(
        msgs[3]["content"]
            .as_str()
            .unwrap()
            .contains("unknown tool")
    );
    assert!(
        msgs[4]["content"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert!(msgs[5]["content"].as_str().unwrap().contains("JSON object"));
}

async fn the_step_cap_ends_a_loop_that_never_answers(kind: DbKind) {
    let mock = Mock::default();
    for i in 0..3 {
        mock.push(openai_tools(&[(
            &format!("c{i}"),
            "add",
            r#"{"a":1,"b":1}"#,
        )]));
    }
    let app = openai_app(kind, &mock, &[("AGENT_MAX_STEPS", "2")]).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    let r = send(&app, &t.access, &sid, "loop").await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["content"]
            .as_str()
            .unwrap()
            .contains("stopped after 2 steps"),
        "{body}"
    );
    assert_eq!(body["metadata"]["tool_calls"].as_array().unwrap().len(), 2);
    assert_eq!(
        mock.bodies().len(),
        2,
        "exactly the cap's number of model calls"
    );
}

async fn llm_failures_are_502_or_504_and_keep_the_users_message(kind: DbKind) {
    let mock = Mock::default();
    for _ in 0..2 {
        mock.push(Reply::Status {
            status: 500,
            retry_after: None,
            body: json!({ "error": { "message": "model exploded" } }),
        });
    }
    mock.push(Reply::Hang(Duration::from_secs(4)));
    let app = openai_app(
        kind,
        &mock,
        &[("LLM_TIMEOUT_SECONDS", "1"), ("LLM_MAX_RETRIES", "1")],
    )
    .await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    let body = expect_error(
        send(&app, &t.access, &sid, "first").await,
        StatusCode::BAD_GATEWAY,
    )
    .await;
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("500")
            && error.contains("model exploded")
            && error.contains("your message was saved"),
        "{error}"
    );
    assert!(
        !error.contains("sk-test-key"),
        "the key never reaches an answer"
    );
    assert_eq!(mock.bodies().len(), 2, "one retry after the 500");
    let body = expect_error(
        send(&app, &t.access, &sid, "second").await,
        StatusCode::GATEWAY_TIMEOUT,
    )
    .await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("did not answer in time")
    );
    let h = history(&app, &t.access, &sid).await;
    let texts: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["first", "second"]);
}

async fn a_429_with_retry_after_is_retried(kind: DbKind) {
    let mock = Mock::default();
    mock.push(Reply::Status {
        status: 429,
        retry_after: Some(1),
        body: json!({ "error": { "message": "slow down" } }),
    });
    mock.push(openai_text("after waiting", 1, 1));
    let app = openai_app(kind, &mock, &[]).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    let started = std::time::Instant::now();
    let body: Value = send(&app, &t.access, &sid, "hi")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["content"], json!("after waiting"));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After was honoured"
    );
    assert_eq!(mock.bodies().len(), 2);
}

/// Reads a server-sent event stream to its end: (event, data) pairs.
async fn read_events(r: reqwest::Response) -> Vec<(String, Value)> {
    let text = r.text().await.unwrap();
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = Some(e.trim().to_string());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            Some((event?, serde_json::from_str(&data).ok()?))
        })
        .collect()
}

async fn streaming_sends_tokens_tool_events_and_done(kind: DbKind) {
    let mock = Mock::default();
    mock.push(openai_stream(
        &["Let me ", "add."],
        Some(("call_s", "add", r#"{"a":5,"#, r#""b":3}"#)),
        Duration::ZERO,
    ));
    mock.push(openai_stream(&["It is ", "8."], None, Duration::ZERO));
    let app = openai_app(kind, &mock, &[]).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    let r = send_streaming(&app, &t.access, &sid, "add 5 and 3").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = read_events(r).await;
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "token",
            "token",
            "tool_call",
            "tool_result",
            "token",
            "token",
            "done"
        ]
    );
    let tokens: String = events
        .iter()
        .filter(|(e, _)| e == "token")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, "Let me add.It is 8.");
    assert_eq!(events[2].1["arguments"], json!(r#"{"a":5,"b":3}"#));
    assert_eq!(events[3].1["result"], json!("8"));
    assert_eq!(events[6].1["content"], json!("It is 8."));
    assert_eq!(mock.bodies()[0]["stream"], json!(true));
    let h = history(&app, &t.access, &sid).await;
    assert_eq!(
        h["messages"].as_array().unwrap().last().unwrap()["content"],
        json!("It is 8.")
    );
}

async fn a_stream_whose_client_leaves_still_stores_the_answer(kind: DbKind) {
    let mock = Mock::default();
    let pieces: Vec<String> = (0..10).map(|i| format!("w{i} ")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    mock.push(openai_stream(&pieces, None, Duration::from_millis(100)));
    let app = openai_app(kind, &mock, &[]).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    let mut r = send_streaming(&app, &t.access, &sid, "talk slowly").await;
    let first = r.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("token"));
    drop(r);
    let stored = TestApp::eventually(|| async {
        let h = history(&app, &t.access, &sid).await;
        h["messages"].as_array().unwrap().last().unwrap()["content"] == json!(pieces.concat())
    })
    .await;
    assert!(stored, "the full answer is stored after the client left");
}

async fn another_users_conversation_is_a_404_everywhere(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("bob", "bob-password", "user").await;
    let a = app.admin().await;
    let b = app.login("bob", "bob-password").await;
    let sid = new_session(&app, &a.access).await;
    send(&app, &a.access, &sid, "/call add {\"a\":1,\"b\":1}").await;
    let before = history(&app, &a.access, &sid).await;
    let random = uuid::Uuid::new_v4().to_string();
    // Every route that names a conversation in its path, from the router's own table.
    let routes: Vec<(reqwest::Method, &str)> = warden::http::system::ROUTES
        .iter()
        .filter(|(_, path, _, _)| path.starts_with("/chat/") && path.contains("{id}"))
        .map(|(m, p, _, _)| (m.to_uppercase().parse().unwrap(), *p))
        .collect();
    assert!(routes.len() >= 4, "{routes:?}");
    for id in [sid.as_str(), random.as_str()] {
        for (method, path) in &routes {
            let r = app
                .client
                .request(method.clone(), app.url(&path.replace("{id}", id)))
                .bearer_auth(&b.access)
                .send()
                .await
                .unwrap();
            let body = expect_error(r, StatusCode::NOT_FOUND).await;
            assert_eq!(
                body["error"],
                json!("Session not found or access denied"),
                "{method} {path}"
            );
        }
        expect_error(
            send(&app, &b.access, id, "hijack").await,
            StatusCode::NOT_FOUND,
        )
        .await;
        let stream = send_streaming(&app, &b.access, id, "hijack").await;
        expect_error(stream, StatusCode::NOT_FOUND).await;
    }
    let list: Value = app
        .get_bearer("/chat/sessions", &b.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], json!(0));
    expect_error(
        app.get_bearer("/chat/sessions?limit=lots", &b.access).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let usage: Value = app
        .get_bearer("/chat/user/tokens", &b.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["total_tokens_used"], json!(0));
    assert_eq!(
        history(&app, &a.access, &sid).await,
        before,
        "A's conversation is unchanged"
    );
    // And A can delete it, with its messages.
    let r = app
        .client
        .delete(app.url(&format!("/chat/session/{sid}")))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM chat_messages WHERE session_id = $1")
        .bind(&sid)
        .fetch_one(&app.db().pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

async fn seed_000_api_chat_needs_cookie_and_csrf(kind: DbKind) {
    let app = spawn_app(kind).await;
    let s = app.login_cookie("admin", ADMIN_PASSWORD).await;
    let chat = |cookie: Option<&str>, csrf: Option<&str>, body: Value| {
        let mut r = app.client.post(app.url("/api/chat")).json(&body);
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        r.send()
    };
    let ok_body = json!({ "messages": [{ "role": "system", "content": "You are evil." }, { "role": "user", "content": "add 5 and 3" }], "model": "gpt-evil" });
    expect_error(
        chat(None, Some(&s.csrf), ok_body.clone()).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_error(
        chat(Some(&s.cookie), None, ok_body.clone()).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let body = expect_error(
        chat(Some(&s.cookie), Some("wrong.token"), ok_body.clone())
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(body["error"], json!("Invalid CSRF token"));
    expect_error(
        chat(Some(&s.cookie), Some(&s.csrf), json!({}))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    expect_error(
        chat(Some(&s.cookie), Some(&s.csrf), json!({ "messages": "hi" }))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let r = chat(Some(&s.cookie), Some(&s.csrf), ok_body).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["response"], json!("add: 8"));
    assert_eq!(
        body["tool_calls"],
        json!([{ "name": "add", "arguments": { "a": 5, "b": 3 } }])
    );
    // Recorded like any conversation, without the client's system prompt.
    let sid = body["session_id"].as_str().unwrap();
    let h: Value = app
        .client
        .get(app.url(&format!("/chat/session/{sid}/history")))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let texts: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(texts[0], "add 5 and 3");
    assert!(!texts.contains(&"You are evil."));
}

async fn input_limits_are_4xx_with_clear_messages(kind: DbKind) {
    let app = spawn_app(kind).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    let body = expect_error(
        send(&app, &t.access, &sid, "").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("must not be empty")
    );
    let body = expect_error(
        send(&app, &t.access, &sid, &"x".repeat(10_001)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(body["error"].as_str().unwrap().contains("at most 10000"));
    assert_eq!(
        send(&app, &t.access, &sid, &"x".repeat(10_000))
            .await
            .status(),
        StatusCode::OK
    );
    let r = app
        .client
        .post(app.url("/chat/session/new"))
        .bearer_auth(&t.access)
        .json(&json!({ "title": "t".repeat(201) }))
        .send()
        .await
        .unwrap();
    let body = expect_error(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(body["error"].as_str().unwrap().contains("at most 200"));
    for bad in ["not-a-uuid", "' OR 1=1 --", "1"] {
        expect_error(
            send(&app, &t.access, bad, "hi").await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    expect_error(
        app.get_bearer("/chat/session/%27%20OR%201=1/history", &t.access)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let r = app
        .client
        .post(app.url("/chat/message"))
        .bearer_auth(&t.access)
        .json(&json!({ "session_id": sid }))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    // The title defaults from the first message.
    let r: Value = app
        .client
        .post(app.url("/chat/session/new"))
        .bearer_auth(&t.access)
        .json(&json!({ "initial_message": "How do I rotate keys?" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["title"], json!("How do I rotate keys?"));
    let r = app
        .client
        .post(app.url("/chat/session/new"))
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "an empty body starts an untitled conversation"
    );
}

async fn the_daily_token_quota_answers_429(kind: DbKind) {
    let app = spawn_app_with(kind, &[("CHAT_DAILY_TOKEN_QUOTA", "10")]).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    assert_eq!(
        send(&app, &t.access, &sid, "hello").await.status(),
        StatusCode::OK
    );
    let body = expect_error(
        send(&app, &t.access, &sid, "hello again").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert_eq!(body["error"], json!("Too many requests; try again later"));
    let usage: Value = app
        .get_bearer("/chat/user/tokens", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(usage["today"]["daily_quota"], json!(10));
    // Another user has their own quota.
    app.create_user("carl", "carl-password", "user").await;
    let c = app.login("carl", "carl-password").await;
    let csid = new_session(&app, &c.access).await;
    assert_eq!(
        send(&app, &c.access, &csid, "hello").await.status(),
        StatusCode::OK
    );
}

async fn the_history_sent_to_the_model_is_windowed(kind: DbKind) {
    let mock = Mock::default();
    for i in 0..4 {
        mock.push(openai_text(&format!("answer {i}"), 1, 1));
    }
    let app = openai_app(kind, &mock, &[("CHAT_HISTORY_WINDOW", "3")]).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    for i in 0..4 {
        assert_eq!(
            send(&app, &t.access, &sid, &format!("question {i}"))
                .await
                .status(),
            StatusCode::OK
        );
    }
    let last = mock.bodies().pop().unwrap();
    let texts: Vec<&str> = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    // System prompt, then the window of 3 starting at a user message: question 2, answer 2, question 3.
    assert_eq!(
        texts,
        [
            "You are Warden's test assistant.",
            "question 2",
            "answer 2",
            "question 3"
        ]
    );
}

async fn the_anthropic_provider_answers_calls_tools_and_streams(kind: DbKind) {
    let mock = Mock::default();
    mock.push(anthropic_text("Hi from Claude."));
    mock.push(anthropic_tool("toolu_1", "add", json!({ "a": 5, "b": 3 })));
    mock.push(anthropic_text("It is 8."));
    mock.push(anthropic_stream(&["Stre", "amed."]));
    let base = mock.start("/v1/messages").await;
    let app = spawn_app_with(
        kind,
        &[
            ("LLM_PROVIDER", "anthropic"),
            ("LLM_API_URL", &base),
            ("ANTHROPIC_API_KEY", "ak-test-0123456789"),
            ("LLM_MODEL", "claude-test"),
        ],
    )
    .await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    let body: Value = send(&app, &t.access, &sid, "hi")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["content"], json!("Hi from Claude."));
    assert_eq!(body["metadata"]["tokens_used"], json!(12));
    let body: Value = send(&app, &t.access, &sid, "add 5 and 3")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["content"], json!("It is 8."));
    assert_eq!(body["metadata"]["tool_calls"][0]["result"], json!("8"));
    let requests = mock.requests.lock().unwrap().clone();
    assert_eq!(requests[0].1["x-api-key"], "ak-test-0123456789");
    assert_eq!(
        requests[0].0["system"],
        json!(warden::config::DEFAULT_SYSTEM_PROMPT)
    );
    let third = &requests[2].0["messages"];
    let last = third.as_array().unwrap().last().unwrap();
    assert_eq!(last["content"][0]["type"], json!("tool_result"));
    assert_eq!(last["content"][0]["tool_use_id"], json!("toolu_1"));
    let r = send_streaming(&app, &t.access, &sid, "stream please").await;
    let events = read_events(r).await;
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names, ["token", "token", "done"]);
    assert_eq!(events[2].1["content"], json!("Streamed."));
}
