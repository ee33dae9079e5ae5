//! A changing tool list: an upstream MCP server (the official Python SDK, tests/peers/changing_upstream.py) that
//! registers a tool at run time and sends `notifications/tools/list_changed` is listed again on the same
//! connection, and the new tool reaches `/mcp` clients and the agent at once; policy changes show at the next
//! `/mcp` list, which is never cacheable.

use reqwest::Response;

use crate::helpers::prelude::*;
use crate::policy::set_policy;
use crate::upstreams::{chat_call, execute, server, servers_file, wait_status};

pub(crate) const CHANGING_PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/peers/changing_upstream.py"
);

/// `tools/list` through `/mcp` as plain JSON-RPC: the answer's headers and the listed names, sorted.
pub(crate) async fn mcp_tools(
    app: &TestApp,
    token: &str,
) -> (reqwest::header::HeaderMap, Vec<String>) {
    let r = mcp_request(
        app,
        token,
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let headers = r.headers().clone();
    let body: Value = r.json().await.unwrap();
    let mut names: Vec<String> = body["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {body}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    (headers, names)
}

/// One JSON-RPC request to `/mcp` with a bearer token.
pub(crate) async fn mcp_request(app: &TestApp, token: &str, body: Value) -> Response {
    app.client
        .post(app.url("/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_added_upstream_reaches_mcp_clients_and_the_agent_without_a_reconnect() {
    let Some(python) = crate::helpers::mcp_python() else {
        return;
    };
    // Arrange: the peer over stdio, where a reconnect would be a new process.
    let dir = tempfile::tempdir().unwrap();
    let file = servers_file(
        &dir,
        json!({ "ch": { "command": python, "args": [CHANGING_PEER] } }),
    );
    let app = spawn_app_with(DbKind::Sqlite, &[("MCP_SERVERS_FILE", &file)]).await;
    let admin = app.admin().await;
    wait_status(&app, &admin.access, "ch", "up").await;
    let pid = execute(&app, &admin.access, "ch", "whoami", json!({})).await["result"].clone();
    assert!(pid.is_i64(), "{pid}");
    let (headers, before) = mcp_tools(&app, &admin.access).await;
    assert!(before.contains(&"ch__add_tool".to_string()), "{before:?}");
    assert!(!before.contains(&"ch__late".to_string()), "{before:?}");
    assert_eq!(
        headers["cache-control"], "no-store",
        "a tool list is never cached"
    );

    // Act: the peer registers `late` and sends notifications/tools/list_changed.
    let added = execute(
        &app,
        &admin.access,
        "ch",
        "add_tool",
        json!({ "name": "late" }),
    )
    .await;
    assert_eq!(added["result"], json!("added late"), "{added}");

    // Assert: listed through /mcp, callable by the agent, the same process, no restart counted.
    assert!(
        TestApp::eventually(|| async {
            mcp_tools(&app, &admin.access)
                .await
                .1
                .contains(&"ch__late".to_string())
        })
        .await,
        "ch__late never reached /mcp"
    );
    let (_, after) = mcp_tools(&app, &admin.access).await;
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    let r = chat_call(&app, &admin.access, "/call ch__late {}").await;
    assert_eq!(r["content"], json!("ch__late: late"), "{r}");
    let health = server(&app, &admin.access, "ch").await;
    assert!(
        health["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("ch__late")),
        "{health}"
    );
    assert_eq!(health["restarts"], json!(0), "{health}");
    assert_eq!(health["error_count"], json!(0), "{health}");
    let same = execute(&app, &admin.access, "ch", "whoami", json!({})).await["result"].clone();
    assert_eq!(
        same, pid,
        "the connection (the stdio child) was not re-established"
    );

    // A policy change shows at the caller's next list.
    app.create_user("una", "una-password", "user").await;
    let una = app.login("una", "una-password").await;
    assert!(
        mcp_tools(&app, &una.access)
            .await
            .1
            .contains(&"ch__late".to_string())
    );
    set_policy(&app, &admin.access, "user", "ch__late", json!("deny")).await;
    assert!(
        !mcp_tools(&app, &una.access)
            .await
            .1
            .contains(&"ch__late".to_string())
    );
}
