//! Chat turns as server-sent events: tokens, tool events and `done`, and a client that leaves mid-stream
//! (the answer is still stored).

use std::time::Duration;

use crate::helpers::prelude::*;
use crate::llm_mock::{Mock, openai_app, openai_stream};

db_tests! {
    streaming_sends_tokens_tool_events_and_done, a_stream_whose_client_leaves_still_stores_the_answer,
}

/// Reads a server-sent event stream to its end: (event, data) pairs.
pub(crate) async fn read_events(r: reqwest::Response) -> Vec<(String, Value)> {
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
