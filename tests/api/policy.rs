//! The tool policy (allow / ask / deny per role and tool) and approvals in the chat stream.

use crate::helpers::prelude::*;

db_tests!(
    deny_hides_and_refuses_a_tool_everywhere,
    ask_pauses_the_agent_until_the_owner_approves_or_refuses
);

pub(crate) async fn set_policy(
    app: &TestApp,
    admin: &str,
    role: &str,
    tool: &str,
    decision: Value,
) {
    let r = app
        .put_as(
            "/api/tool-policies",
            &admin,
            json!({ "role": role, "tool": tool, "decision": decision }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn deny_hides_and_refuses_a_tool_everywhere(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    app.create_user("una", "una-password", "user").await;
    let una = app.login("una", "una-password").await;
    set_policy(&app, &admin.access, "user", "add", json!("deny")).await;
    let tools: Value = app.get_json("/tools", &una.access).await;
    let names = column(&tools["tools"], "name");
    assert_eq!(
        names,
        [
            "calculator",
            "db_describe",
            "db_list_tables",
            "db_query",
            "time"
        ]
    );
    let r = app
        .post_as(
            "/api/servers/builtin/tools/add/execute",
            &una.access,
            json!({ "parameters": { "a": 1, "b": 2 } }),
        )
        .await;
    expect_error(r, StatusCode::NOT_FOUND).await;
    let sid = new_session(&app, &una.access).await;
    let r: Value = send(&app, &una.access, &sid, "add 5 and 3")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        r["content"].as_str().unwrap().contains("not allowed"),
        "{r}"
    );
    // Other roles are untouched; removing the rule restores the tool; bad rules are refused.
    let r = app
        .post_as(
            "/api/servers/builtin/tools/add/execute",
            &admin.access,
            json!({ "parameters": { "a": 1, "b": 2 } }),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["result"], json!(3));
    set_policy(&app, &admin.access, "user", "add", Value::Null).await;
    let tools: Value = app.get_json("/tools", &una.access).await;
    assert_eq!(tools["tools"].as_array().unwrap().len(), 6);
    for bad in [
        json!({ "role": "user", "tool": "add", "decision": "maybe" }),
        json!({ "role": "nobody", "tool": "add", "decision": "deny" }),
    ] {
        let r = app.put_as("/api/tool-policies", &admin.access, &bad).await;
        expect_error(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let r = app
        .put_as(
            "/api/tool-policies",
            &una.access,
            json!({ "role": "user", "tool": "*", "decision": "allow" }),
        )
        .await;
    expect_error(r, StatusCode::FORBIDDEN).await;
}

/// Reads a streamed turn until an event named `until` arrives; returns every (event, data) so far.
pub(crate) async fn read_until(
    r: &mut reqwest::Response,
    buffer: &mut String,
    until: &str,
) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    for _ in 0..200 {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let name = block
                .lines()
                .find_map(|l| l.strip_prefix("event:"))
                .map(|s| s.trim().to_string());
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if let (Some(name), Ok(data)) = (name, serde_json::from_str::<Value>(&data)) {
                let done = name == until;
                events.push((name, data));
                if done {
                    return events;
                }
            }
        }
        match tokio::time::timeout(std::time::Duration::from_secs(10), r.chunk()).await {
            Ok(Ok(Some(bytes))) => buffer.push_str(&String::from_utf8_lossy(&bytes)),
            _ => break,
        }
    }
    panic!("no {until} event; got {events:?}");
}

async fn ask_pauses_the_agent_until_the_owner_approves_or_refuses(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    app.create_user("vic", "vic-password", "user").await;
    app.create_user("eve", "eve-password", "user").await;
    let vic = app.login("vic", "vic-password").await;
    let eve = app.login("eve", "eve-password").await;
    set_policy(&app, &admin.access, "user", "add", json!("ask")).await;
    let sid = new_session(&app, &vic.access).await;

    for approve in [true, false] {
        let mut r = app
            .client
            .post(app.url("/chat/message"))
            .bearer_auth(&vic.access)
            .header("accept", "text/event-stream")
            .json(&json!({ "session_id": sid, "message": r#"/call add {"a":5,"b":3}"# }))
            .send()
            .await
            .unwrap();
        let mut buffer = String::new();
        let events = read_until(&mut r, &mut buffer, "approval_required").await;
        let pending = &events.last().unwrap().1;
        assert_eq!(pending["name"], json!("add"));
        let approval = pending["approval_id"].as_str().unwrap().to_string();
        // Nobody else can decide, and the REST route cannot bypass the question.
        let other = app
            .post_as(
                &format!("/chat/approvals/{approval}"),
                &eve.access,
                json!({ "approve": true }),
            )
            .await;
        expect_error(other, StatusCode::NOT_FOUND).await;
        let rest = app
            .post_as(
                "/api/servers/builtin/tools/add/execute",
                &vic.access,
                json!({ "parameters": { "a": 1, "b": 1 } }),
            )
            .await;
        expect_error(rest, StatusCode::FORBIDDEN).await;

        let decided = app
            .post_as(
                &format!("/chat/approvals/{approval}"),
                &vic.access,
                json!({ "approve": approve }),
            )
            .await;
        assert_eq!(decided.status(), StatusCode::OK);
        let rest = read_until(&mut r, &mut buffer, "done").await;
        let result = rest.iter().find(|(e, _)| e == "tool_result").unwrap();
        let done = &rest.last().unwrap().1;
        if approve {
            assert_eq!(result.1["result"], json!("8"));
            assert_eq!(done["content"], json!("add: 8"));
        } else {
            assert_eq!(result.1["status"], json!("error"));
            assert!(
                done["content"].as_str().unwrap().contains("refused"),
                "{done}"
            );
        }
    }
    // Both decisions and who made them are in the tool-call log.
    app.state.tool_log.flush().await;
    let calls: Value = app.get_json("/api/tool-calls", &vic.access).await;
    let decisions: Vec<(Value, Value)> = calls["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["approval"].clone(), c["approver_id"].clone()))
        .collect();
    assert_eq!(
        decisions,
        [
            (json!("refused"), json!(vic.user_id)),
            (json!("approved"), json!(vic.user_id))
        ]
    );
}
