//! The `/mcp` gateway with the official Python MCP SDK as the client (tests/peers/mcp_client.py), plus the
//! 401 challenge and RFC 9728 metadata over plain HTTP.
//!
//! The SDK lives in a venv that `.ci/run` makes (WARDEN_TEST_PYTHON, default
//! /root/.cache/warden-ci/venv/bin/python). Without it the SDK half is not run and says so, unless
//! WARDEN_REQUIRE_PEERS=1 (as in CI), where it fails.

use crate::helpers::prelude::*;

db_tests!(
    the_python_sdk_lists_and_calls_the_callers_tools,
    without_a_valid_token_mcp_answers_401_with_resource_metadata,
    a_tools_call_gets_the_same_answer_on_the_direct_path_as_from_the_sdk,
);

async fn sdk(
    python: &str,
    app: &TestApp,
    token: &str,
    call: Option<(&str, Value)>,
) -> (bool, Value) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/mcp_client.py");
    let mut args = vec![script.to_string(), app.url("/mcp"), token.to_string()];
    if let Some((tool, arguments)) = call {
        args.push(tool.to_string());
        args.push(arguments.to_string());
    }
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(python).args(&args).output(),
    )
    .await
    .expect("the SDK client finishes")
    .expect("the SDK client starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|_| {
        json!({ "error": format!("unreadable output: {stdout} {}", String::from_utf8_lossy(&out.stderr)) })
    });
    (out.status.success(), value)
}

async fn the_python_sdk_lists_and_calls_the_callers_tools(kind: DbKind) {
    let Some(python) = crate::helpers::mcp_python() else {
        return;
    };
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let (ok, out) = sdk(
        &python,
        &app,
        &admin.access,
        Some(("add", json!({ "a": 5, "b": 3 }))),
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(
        out["tools"],
        json!([
            "add",
            "calculator",
            "db_describe",
            "db_list_tables",
            "db_query",
            "time"
        ])
    );
    assert_eq!(
        out["call"],
        json!({ "is_error": false, "text": ["8"], "structured": { "result": 8 } })
    );

    // A role that may use only `time`: `add` is absent from the list and a call is refused.
    let r = app
        .post_as(
            "/api/permissions",
            &admin.access,
            json!({ "role": "limited", "permissions": ["chat:use", "tools:call:time"] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.create_user("lee", "lee-password", "limited").await;
    let lee = app.login("lee", "lee-password").await;
    let (ok, out) = sdk(&python, &app, &lee.access, None).await;
    assert!(ok, "{out}");
    assert_eq!(out["tools"], json!(["time"]));
    let (ok, out) = sdk(
        &python,
        &app,
        &lee.access,
        Some(("add", json!({ "a": 1, "b": 2 }))),
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        out["error"].as_str().unwrap().contains("unknown tool"),
        "{out}"
    );

    // Calls through /mcp are in the tool-call log, as the caller's.
    app.state.tool_log.flush().await;
    let calls: Value = app.get_json("/api/tool-calls", &admin.access).await;
    let mcp_calls: Vec<&Value> = calls["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["source"] == json!("mcp"))
        .collect();
    assert_eq!(mcp_calls.len(), 1, "{calls}");
    assert_eq!(mcp_calls[0]["user_id"], json!(admin.user_id));

    // A revoked session's token is refused at once.
    app.post_empty_as("/auth/logout", &admin.access).await;
    let (ok, out) = sdk(&python, &app, &admin.access, None).await;
    assert!(!ok, "the SDK cannot use a revoked token: {out}");
    let r = app
        .post_as(
            "/mcp",
            &admin.access,
            json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn without_a_valid_token_mcp_answers_401_with_resource_metadata(kind: DbKind) {
    let app = spawn_app(kind).await;
    let initialize = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {} });
    for auth in [None, Some("Bearer not.a.token"), Some("Basic YWRtaW46eA==")] {
        let mut r = app
            .client
            .post(app.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(challenge.starts_with("Bearer resource_metadata=\"http://warden.test/.well-known/oauth-protected-resource/mcp\""), "{challenge}");
    }
    // DNS rebinding: a request for another host name is refused even with a valid token.
    let admin = app.admin().await;
    let r = app
        .client
        .post(app.url("/mcp"))
        .bearer_auth(&admin.access)
        .header("host", "evil.example")
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A browser session cookie is not an MCP credential.
    let browser = app
        .login_cookie("admin", crate::helpers::ADMIN_PASSWORD)
        .await;
    let r = app
        .client
        .post(app.url("/mcp"))
        .header("cookie", &browser.cookie)
        .header("x-csrf-token", &browser.csrf)
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let meta: Value = app
            .client
            .get(app.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(meta["resource"], json!("http://warden.test/mcp"));
        assert_eq!(meta["authorization_servers"], json!(["http://warden.test"]));
        assert_eq!(meta["bearer_methods_supported"], json!(["header"]));
    }
}

/// `warden_mcp_direct_calls_total` as `/metrics` shows it (0 before the first).
async fn direct_calls(app: &TestApp, token: &str) -> u64 {
    let text = app
        .get_bearer("/metrics", token)
        .await
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("warden_mcp_direct_calls_total "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// POST /mcp as an MCP client on protocol 2025-06-18 would, with `extra` headers in place of the defaults.
async fn mcp_post(
    app: &TestApp,
    token: &str,
    body: &Value,
    extra: &[(&str, &str)],
) -> (StatusCode, String, Value) {
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
    let mut headers = HeaderMap::new();
    for (k, v) in [
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-06-18"),
    ]
    .iter()
    .chain(extra)
    {
        // `insert`: an extra header replaces the default of that name.
        headers.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let r = app
        .client
        .post(app.url("/mcp"))
        .bearer_auth(token)
        .json(body)
        .headers(headers)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let kind = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    (
        status,
        kind,
        serde_json::from_str(&text).unwrap_or(json!(text)),
    )
}

/// The direct path (src/http/mcp_direct.rs) answers a legacy client's `tools/call` as rmcp's service does: the
/// same call with an empty `_meta`, which only rmcp takes, gets the same status, type and JSON. Only the plain
/// calls are counted as direct, and what rmcp must judge (a bad Accept, another host) still reaches it.
async fn a_tools_call_gets_the_same_answer_on_the_direct_path_as_from_the_sdk(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    crate::policy::set_policy(&app, &admin.access, "admin", "calculator", json!("ask")).await;
    let call = |id: Value, name: &str, arguments: Option<Value>| {
        let mut params = json!({ "name": name });
        if let Some(a) = arguments {
            params["arguments"] = a;
        }
        json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params })
    };
    let cases = [
        // A result, with a numeric and with a string id.
        call(json!(1), "add", Some(json!({ "a": 5, "b": 3 }))),
        call(json!("call-2"), "add", Some(json!({ "a": 1, "b": 2 }))),
        // A tool without arguments.
        call(json!(3), "time", None),
        // The tool fails: a result with isError.
        call(json!(4), "add", Some(json!({ "a": "five" }))),
        // Unknown: a JSON-RPC error with the id.
        call(json!(5), "no_such_tool", Some(json!({}))),
        // Needs a person's approval, which /mcp cannot ask.
        call(json!(6), "calculator", Some(json!({ "expression": "1+1" }))),
    ];
    let before = direct_calls(&app, &admin.access).await;
    for direct_call in &cases {
        let direct = mcp_post(&app, &admin.access, direct_call, &[]).await;
        let mut sdk_call = direct_call.clone();
        sdk_call["params"]["_meta"] = json!({});
        let sdk = mcp_post(&app, &admin.access, &sdk_call, &[]).await;
        assert_eq!(direct.0, StatusCode::OK, "{direct_call}: {direct:?}");
        assert_eq!(direct, sdk, "{direct_call}");
    }
    assert_eq!(direct_calls(&app, &admin.access).await - before, 6);
    // Spot checks that the cases are what they claim.
    let (_, _, sum) = mcp_post(&app, &admin.access, &cases[0], &[]).await;
    assert_eq!(sum["id"], json!(1));
    assert_eq!(sum["result"]["structuredContent"], json!({ "result": 8 }));
    assert!(sum["result"].get("resultType").is_none(), "{sum}");
    let (_, _, unknown) = mcp_post(&app, &admin.access, &cases[4], &[]).await;
    assert_eq!(unknown["id"], json!(5));
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown tool"),
        "{unknown}"
    );
    let (_, _, ask) = mcp_post(&app, &admin.access, &cases[5], &[]).await;
    assert_eq!(ask["result"]["isError"], json!(true), "{ask}");

    // What only rmcp may judge goes to it and is judged as before: not counted as direct.
    let before = direct_calls(&app, &admin.access).await;
    // A same-origin browser request passes the edge's cross-site check; its Origin is rmcp's to judge.
    let origin = app.url("");
    for (header, status) in [
        (("accept", "application/json"), StatusCode::NOT_ACCEPTABLE),
        (("host", "evil.example"), StatusCode::FORBIDDEN),
        (
            ("mcp-protocol-version", "1999-01-01"),
            StatusCode::BAD_REQUEST,
        ),
        (("origin", origin.as_str()), StatusCode::OK),
    ] {
        let (got, _, body) = mcp_post(&app, &admin.access, &cases[0], &[header]).await;
        assert_eq!(got, status, "{header:?}: {body}");
    }
    assert_eq!(direct_calls(&app, &admin.access).await, before);
}
