//! The Anthropic provider end to end against a scripted Messages server: answers, tool calls and streaming.

use crate::chat_stream::read_events;
use crate::helpers::prelude::*;
use crate::llm_mock::{Mock, anthropic_stream, anthropic_text, anthropic_tool};

db_tests!(the_anthropic_provider_answers_calls_tools_and_streams,);

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
    let body = json_of(send(&app, &t.access, &sid, "hi").await).await;
    assert_eq!(body["content"], json!("Hi from Claude."));
    assert_eq!(body["metadata"]["tokens_used"], json!(12));
    let body = json_of(send(&app, &t.access, &sid, "add 5 and 3").await).await;
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
