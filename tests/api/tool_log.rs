//! The tool-call log: seed 000's JSON Lines and text files, the database table behind `GET /api/tool-calls`,
//! redaction by key name, ENABLE_TOOL_LOGGING and rotation.

use crate::helpers::prelude::*;
use crate::llm_mock::{Mock, openai_text, openai_tools};

db_tests!(
    tool_calls_are_logged_in_the_seed_format_without_secrets,
    disabling_tool_logging_writes_no_files_but_keeps_the_table,
    users_see_their_own_tool_calls_and_admins_see_all,
    log_files_rotate_by_size,
    a_tool_name_with_a_newline_cannot_forge_a_line_in_the_text_log,
    calls_from_rest_mcp_and_chat_carry_the_callers_login_session,
    calls_made_at_once_are_each_stored_with_their_own_values,
);

async fn call_add(app: &TestApp, token: &str, arguments: &str) -> (String, Value) {
    let sid = new_session(app, token).await;
    let body: Value = send(app, token, &sid, &format!("/call add {arguments}"))
        .await
        .json()
        .await
        .unwrap();
    app.state.tool_log.flush().await;
    (sid, body)
}

async fn tool_calls_are_logged_in_the_seed_format_without_secrets(kind: DbKind) {
    let logs = tempfile::tempdir().unwrap();
    let dir = logs.path().display().to_string();
    let app = spawn_app_with(kind, &[("WARDEN_LOG_DIR", &dir)]).await;
    let t = app.admin().await;
    let (sid, body) = call_add(
        &app,
        &t.access,
        r#"{"a":5,"b":3,"password":"hunter2-secret"}"#,
    )
    .await;
    assert_eq!(body["content"], json!("add: 8"));
    let json_text = std::fs::read_to_string(logs.path().join("tool_calls.json")).unwrap();
    let lines: Vec<Value> = json_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    let mut keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "arguments",
            "duration_ms",
            "error",
            "metadata",
            "result",
            "session_id",
            "status",
            "timestamp",
            "tool_name"
        ]
    );
    assert_eq!(line["tool_name"], json!("add"));
    assert_eq!(line["status"], json!("success"));
    assert_eq!(line["result"], json!("8"));
    assert_eq!(line["error"], Value::Null);
    assert_eq!(
        line["arguments"],
        json!({ "a": 5, "b": 3, "password": "[REDACTED]" })
    );
    assert_eq!(line["session_id"], json!(sid.replace('-', "")[..8]));
    assert_eq!(line["metadata"]["model"], json!("builtin"));
    assert_eq!(line["metadata"]["api"], json!("builtin"));
    assert!(
        line["metadata"]["tool_call_id"]
            .as_str()
            .unwrap()
            .starts_with("builtin_")
    );
    assert!(line["duration_ms"].is_number());
    let text = std::fs::read_to_string(logs.path().join("tool_calls.log")).unwrap();
    let first = text.lines().next().unwrap();
    let (stamp, rest) = first.split_at(19);
    // "YYYY-MM-DD HH:MM:SS"
    let shape: String = stamp
        .chars()
        .map(|c| if c.is_ascii_digit() { 'd' } else { c })
        .collect();
    assert_eq!(shape, "dddd-dd-dd dd:dd:dd", "{first}");
    assert!(
        rest.starts_with(&format!(
            " - INFO - Tool 'add' SUCCESS | Session: {} | Duration: ",
            &sid.replace('-', "")[..8]
        )),
        "{first}"
    );
    assert!(rest.ends_with("ms"), "{first}");
    assert!(text.contains("Result: 8"));
    // The secret is nowhere: not in the files, not in the table.
    assert!(!json_text.contains("hunter2-secret") && !text.contains("hunter2-secret"));
    let (args,): (String,) = sqlx::query_as("SELECT arguments FROM tool_calls")
        .fetch_one(&app.db().pool)
        .await
        .unwrap();
    assert!(!args.contains("hunter2-secret") && args.contains("[REDACTED]"));
    // A failing call is logged as an error.
    call_add(&app, &t.access, r#"{"a":"x"}"#).await;
    let json_text = std::fs::read_to_string(logs.path().join("tool_calls.json")).unwrap();
    let last: Value = serde_json::from_str(json_text.lines().last().unwrap()).unwrap();
    assert_eq!(last["status"], json!("error"));
    assert!(last["error"].as_str().unwrap().contains("two numbers"));
    assert!(
        std::fs::read_to_string(logs.path().join("tool_calls.log"))
            .unwrap()
            .contains("- ERROR - Tool 'add' ERROR")
    );
}

async fn disabling_tool_logging_writes_no_files_but_keeps_the_table(kind: DbKind) {
    let logs = tempfile::tempdir().unwrap();
    let dir = logs.path().display().to_string();
    let app = spawn_app_with(
        kind,
        &[("WARDEN_LOG_DIR", &dir), ("ENABLE_TOOL_LOGGING", "false")],
    )
    .await;
    let t = app.admin().await;
    call_add(&app, &t.access, r#"{"a":1,"b":2}"#).await;
    assert_eq!(
        std::fs::read_dir(logs.path()).unwrap().count(),
        0,
        "no files at all"
    );
    let calls: Value = app.get_json("/api/tool-calls", &t.access).await;
    assert_eq!(calls["tool_calls"].as_array().unwrap().len(), 1);
}

async fn users_see_their_own_tool_calls_and_admins_see_all(kind: DbKind) {
    let logs = tempfile::tempdir().unwrap();
    let dir = logs.path().display().to_string();
    let app = spawn_app_with(kind, &[("WARDEN_LOG_DIR", &dir)]).await;
    let admin = app.admin().await;
    let uid = app.create_user("tina", "tina-password", "user").await;
    let tina = app.login("tina", "tina-password").await;
    let (sid, _) = call_add(&app, &tina.access, r#"{"a":1,"b":2}"#).await;
    call_add(&app, &tina.access, r#"{"a":"bad"}"#).await;
    call_add(&app, &admin.access, r#"{"a":3,"b":4}"#).await;
    let get = |token: &str, query: &str| {
        let url = app.url(&format!("/api/tool-calls{query}"));
        let token = token.to_string();
        let client = app.client.clone();
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let own = get(&tina.access, "").await;
    let calls = own["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c["user_id"] == json!(uid)));
    // A user cannot widen the view to someone else.
    let sneaky = get(&tina.access, &format!("?user_id={}", admin.user_id)).await;
    assert!(
        sneaky["tool_calls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["user_id"] == json!(uid))
    );
    let all = get(&admin.access, "").await;
    assert_eq!(all["tool_calls"].as_array().unwrap().len(), 3);
    assert_eq!(
        get(&admin.access, &format!("?user_id={uid}")).await["tool_calls"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        get(&admin.access, "?status=error").await["tool_calls"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get(&tina.access, &format!("?conversation_id={sid}")).await["tool_calls"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get(&admin.access, "?tool_name=calculator").await["tool_calls"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let r = app
        .client
        .get(app.url("/api/tool-calls"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The catalog route shows the permitted tools.
    let tools: Value = app.get_json("/tools", &tina.access).await;
    let names = column(&tools["tools"], "name");
    assert_eq!(
        names,
        [
            "add",
            "calculator",
            "db_describe",
            "db_list_tables",
            "db_query",
            "time"
        ]
    );
}

async fn log_files_rotate_by_size(kind: DbKind) {
    let logs = tempfile::tempdir().unwrap();
    let dir = logs.path().display().to_string();
    let app = spawn_app_with(
        kind,
        &[("WARDEN_LOG_DIR", &dir), ("TOOL_LOG_MAX_BYTES", "1024")],
    )
    .await;
    let t = app.admin().await;
    for i in 0..20 {
        call_add(&app, &t.access, &format!(r#"{{"a":{i},"b":1}}"#)).await;
    }
    assert!(logs.path().join("tool_calls.json.1").exists());
    assert!(logs.path().join("tool_calls.log.1").exists());
    assert!(
        std::fs::metadata(logs.path().join("tool_calls.json"))
            .unwrap()
            .len()
            < 2048
    );
}

async fn a_tool_name_with_a_newline_cannot_forge_a_line_in_the_text_log(kind: DbKind) {
    // Arrange: a model that asks for a tool whose name carries a forged log line, with C1 and U+2028 in the
    // arguments.
    let logs = tempfile::tempdir().unwrap();
    let dir = logs.path().display().to_string();
    let mock = Mock::default();
    let forged = "2030-01-01 00:00:00 - INFO - Tool 'transfer_funds' SUCCESS | Session: deadbeef | Duration: 1.00ms";
    let name = format!("add\n{forged}\r");
    mock.push(openai_tools(&[(
        "call_1",
        &name,
        r#"{"note":"a\u0085b\u2028c\u007f"}"#,
    )]));
    mock.push(openai_text("done", 1, 1));
    let url = format!("{}/v1", mock.start("/v1/chat/completions").await);
    let app = spawn_app_with(
        kind,
        &[
            ("WARDEN_LOG_DIR", &dir),
            ("LLM_PROVIDER", "openai"),
            ("LLM_API_URL", &url),
            ("LLM_MODEL", "mock-model"),
            ("OPENAI_API_KEY", "sk-test-key-0123456789"),
            ("LLM_MAX_RETRIES", "1"),
        ],
    )
    .await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;

    // Act
    let r = send(&app, &t.access, &sid, "do it").await;
    assert_eq!(r.status(), StatusCode::OK);
    app.state.tool_log.flush().await;

    // Assert: one entry, its header the only line that starts with a time stamp, every other line indented.
    let text = std::fs::read_to_string(logs.path().join("tool_calls.log")).unwrap();
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0]
            .contains(" - ERROR - Tool 'add\\n2030-01-01 00:00:00 - INFO - Tool 'transfer_funds'"),
        "{text}"
    );
    assert!(
        lines[0].contains("Duration: 1.00ms\\r' ERROR | Session: "),
        "{text}"
    );
    assert!(lines[1..].iter().all(|l| l.starts_with("    ")), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("2030-")), "{text}");
    assert!(
        !text.contains(['\r', '\u{85}', '\u{2028}', '\u{7f}']),
        "{text:?}"
    );
    assert!(text.contains(r"a\u{85}b\u{2028}c\u{7f}"), "{text}");
    // The JSON Lines file keeps the name as it was, JSON-escaped on one line.
    let json_text = std::fs::read_to_string(logs.path().join("tool_calls.json")).unwrap();
    assert_eq!(json_text.lines().count(), 1, "{json_text}");
    let line: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(line["tool_name"], json!(name));
}

/// The login session an access token belongs to (its `sid` claim).
fn session_of(access_token: &str) -> String {
    use base64::Engine;
    let payload = access_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().to_string()
}

async fn calls_from_rest_mcp_and_chat_carry_the_callers_login_session(kind: DbKind) {
    // Arrange: two sessions of the same user.
    let app = spawn_app(kind).await;
    let first = app.admin().await;
    let second = app.admin().await;
    let (first_sid, second_sid) = (session_of(&first.access), session_of(&second.access));
    assert_ne!(first_sid, second_sid);

    // Act: the REST execute route, a plain JSON-RPC call to /mcp and a chat turn with the first session; one
    // REST call with the second.
    let execute = |token: &str| {
        app.client
            .post(app.url("/api/servers/builtin/tools/add/execute"))
            .bearer_auth(token)
            .json(&json!({ "parameters": { "a": 1, "b": 2 } }))
            .send()
    };
    let r = execute(&first.access).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .client
        .post(app.url("/mcp"))
        .bearer_auth(&first.access)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": { "name": "add", "arguments": { "a": 2, "b": 3 } } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["result"]["isError"], json!(false), "{body}");
    let chat = new_session(&app, &first.access).await;
    send(&app, &first.access, &chat, r#"/call add {"a":3,"b":4}"#).await;
    let r = execute(&second.access).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.state.tool_log.flush().await;

    // Assert: each row names the session whose token made the call, and the log can be read by session.
    let calls: Value = app.get_json("/api/tool-calls", &first.access).await;
    let mut seen: Vec<(String, String)> = calls["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["source"].as_str().unwrap().to_string(),
                c["session_id"].as_str().unwrap_or("none").to_string(),
            )
        })
        .collect();
    seen.sort();
    let expected = |source: &str, sid: &str| (source.to_string(), sid.to_string());
    let mut wanted = vec![
        expected("agent", &first_sid),
        expected("mcp", &first_sid),
        expected("rest", &first_sid),
        expected("rest", &second_sid),
    ];
    wanted.sort();
    assert_eq!(seen, wanted);
    let by_session: Value = app
        .get_json(
            &format!("/api/tool-calls?session_id={first_sid}"),
            &first.access,
        )
        .await;
    assert_eq!(by_session["tool_calls"].as_array().unwrap().len(), 3);
}

/// Many calls at once reach the writer as one batch, stored as multi-row statements: each row keeps its own
/// arguments and result (a value bound to the wrong row or column would show here).
async fn calls_made_at_once_are_each_stored_with_their_own_values(kind: DbKind) {
    let app = spawn_app(kind).await;
    let t = app.admin().await;
    let calls = (0..40).map(|i| {
        app.post_as(
            "/api/servers/builtin/tools/add/execute",
            &t.access,
            json!({ "parameters": { "a": i, "b": 1000 } }),
        )
    });
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.status(), StatusCode::OK);
    }
    app.state.tool_log.flush().await;
    let listed: Value = app.get_json("/api/tool-calls?limit=100", &t.access).await;
    let mut stored: Vec<(i64, String, String)> = listed["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["arguments"]["a"].as_i64().unwrap(),
                c["result"].as_str().unwrap().to_string(),
                c["tool_name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    stored.sort();
    let expected: Vec<(i64, String, String)> = (0..40)
        .map(|i| (i, (i + 1000).to_string(), "add".to_string()))
        .collect();
    assert_eq!(stored, expected);
}
