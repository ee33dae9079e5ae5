//! The agent loop over HTTP against a scripted OpenAI-compatible server: plain answers and their usage, tool
//! calls (one, several, chained, unknown or invalid), the step cap, and LLM failures and retries.

use std::time::Duration;

use crate::helpers::prelude::*;
use crate::llm_mock::{Mock, Reply, openai_app, openai_text, openai_tools};

db_tests! {
    the_builtin_provider_lists_tools_and_calls_add, a_plain_answer_is_stored_with_its_usage,
    one_tool_call_then_an_answer, several_tool_calls_in_one_step_and_a_multi_step_chain,
    unknown_tools_and_invalid_arguments_go_back_to_the_model, the_step_cap_ends_a_loop_that_never_answers,
    llm_failures_are_502_or_504_and_keep_the_users_message, a_429_with_retry_after_is_retried,
}

async fn the_builtin_provider_lists_tools_and_calls_add(kind: DbKind) {
    let app = spawn_app(kind).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    let r = json_of(send(&app, &t.access, &sid, "/tools").await).await;
    assert!(r["content"].as_str().unwrap().contains("add"), "{r}");
    let r = send(&app, &t.access, &sid, r#"/call add {"a":5,"b":3}"#).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
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
    let roles = column(&h["messages"], "role");
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
    let r = json_of(send(&app, &t.access, &sid, "add 5 and 3").await).await;
    assert_eq!(r["content"], json!("add: 8"));
    let r = json_of(send(&app, &t.access, &sid, "hello").await).await;
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
    let body = json_of(send(&app, &t.access, &sid, "hi").await).await;
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
    assert_eq!(
        tools,
        [
            "add",
            "calculator",
            "db_describe",
            "db_list_tables",
            "db_query",
            "time"
        ]
    );
    let tokens: Value = app
        .get_json(&format!("/chat/session/{sid}/tokens"), &t.access)
        .await;
    assert_eq!(
        (
            tokens["input_tokens"].clone(),
            tokens["output_tokens"].clone(),
            tokens["total_tokens_used"].clone()
        ),
        (json!(12), json!(3), json!(15))
    );
    let user: Value = app.get_json("/chat/user/tokens", &t.access).await;
    assert_eq!(user["total_tokens_used"], json!(15));
    assert_eq!(user["today"]["tokens_used"], json!(15));
    let list: Value = app.get_json("/chat/sessions", &t.access).await;
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
    let body = json_of(send(&app, &t.access, &sid, "add 5 and 3").await).await;
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
    let body = json_of(send(&app, &t.access, &sid, "compute").await).await;
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
    let body = json_of(send(&app, &t.access, &sid, "do things").await).await;
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
    let body = json_of(r).await;
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
    let texts = column(&h["messages"], "content");
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
    let body = json_of(send(&app, &t.access, &sid, "hi").await).await;
    assert_eq!(body["content"], json!("after waiting"));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After was honoured"
    );
    assert_eq!(mock.bodies().len(), 2);
}
