//! Upstream MCP servers: a real MCP server not written here (the official Python SDK's `MCPServer`,
//! tests/peers/upstream.py) over stdio and over Streamable HTTP, discovered into the catalog and called from the
//! agent, the REST route and `/mcp`; killed mid-run it is reported down, restarted, and works again; no child
//! is left after shutdown.

use std::time::Duration;

use crate::helpers::prelude::*;

db_tests!(
    a_stdio_upstream_is_discovered_called_restarted_and_cleaned_up,
    an_http_upstream_is_discovered_and_a_dead_one_reported_down,
    admins_add_and_remove_upstream_servers_at_run_time,
    get_tools_names_the_server_each_tool_comes_from,
    servers_added_back_to_back_are_all_kept,
);

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/upstream.py");

/// Starts the upstream peer over HTTP (`args` after its port: "sessions" or nothing) on a port it picks and
/// binds itself, and reads that port from its first line: a port picked here and let go could be taken by another
/// process before the peer, slow to start, binds it (seen once in CI: the peer exited with "address already in
/// use").
async fn http_peer(python: &str, args: &[&str]) -> (tokio::process::Child, u16) {
    use tokio::io::AsyncBufReadExt;

    let mut peer = tokio::process::Command::new(python)
        .arg(PEER)
        .arg("0")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = tokio::io::BufReader::new(peer.stdout.take().unwrap());
    tokio::time::timeout(Duration::from_secs(60), stdout.read_line(&mut line))
        .await
        .expect("the upstream peer printed its port within a minute")
        .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the upstream peer printed no port: {line:?}"));
    (peer, port)
}

pub(crate) fn servers_file(dir: &tempfile::TempDir, servers: Value) -> String {
    let path = dir.path().join("mcp_servers.json");
    std::fs::write(&path, json!({ "mcpServers": servers }).to_string()).unwrap();
    path.display().to_string()
}

pub(crate) async fn server(app: &TestApp, token: &str, name: &str) -> Value {
    let all: Value = app.get_json("/api/servers", token).await;
    all["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server_name"] == json!(name))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits (bounded) until the server reports `status`; returns its health.
pub(crate) async fn wait_status(app: &TestApp, token: &str, name: &str, status: &str) -> Value {
    for _ in 0..150 {
        let s = server(app, token, name).await;
        if s["status"] == json!(status) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{name} never became {status}: {}",
        server(app, token, name).await
    );
}

pub(crate) async fn chat_call(app: &TestApp, token: &str, text: &str) -> Value {
    let sid = new_session(app, token).await;
    send(app, token, &sid, text).await.json().await.unwrap()
}

pub(crate) async fn execute(
    app: &TestApp,
    token: &str,
    server: &str,
    tool: &str,
    parameters: Value,
) -> Value {
    app.post_as(
        &format!("/api/servers/{server}/tools/{tool}/execute"),
        &token,
        json!({ "parameters": parameters }),
    )
    .await
    .json()
    .await
    .unwrap()
}

pub(crate) fn alive(pid: i64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

async fn a_stdio_upstream_is_discovered_called_restarted_and_cleaned_up(kind: DbKind) {
    let Some(python) = crate::helpers::mcp_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = servers_file(&dir, json!({ "up": { "command": python, "args": [PEER] } }));
    let app = spawn_app_with(kind, &[("MCP_SERVERS_FILE", &file)]).await;
    let t = app.admin().await;
    let health = wait_status(&app, &t.access, "up", "up").await;
    assert_eq!(health["transport"], json!("stdio"));
    assert_eq!(health["tools"], json!(["up__multiply", "up__whoami"]));

    // From the agent, the REST route and /mcp.
    let r = chat_call(&app, &t.access, r#"/call up__multiply {"a":6,"b":7}"#).await;
    assert_eq!(r["content"], json!("up__multiply: 42"), "{r}");
    // The log names the server the call went to.
    app.state.tool_log.flush().await;
    let calls: Value = app.get_json("/api/tool-calls", &t.access).await;
    assert_eq!(calls["tool_calls"][0]["server"], json!("up"), "{calls}");
    assert_eq!(calls["tool_calls"][0]["source"], json!("agent"));
    let r = execute(&app, &t.access, "up", "multiply", json!({ "a": 2, "b": 3 })).await;
    assert_eq!(r["result"], json!(6), "{r}");
    let tools: Value = app.get_json("/api/servers/up/tools", &t.access).await;
    assert_eq!(tools["tools"].as_array().unwrap().len(), 2);
    expect_error(
        app.get_bearer("/api/servers/nosuch/tools", &t.access).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/mcp_client.py");
    let out = tokio::process::Command::new(&python)
        .args([
            script,
            &app.url("/mcp"),
            &t.access,
            "up__multiply",
            r#"{"a":4,"b":5}"#,
        ])
        .output()
        .await
        .unwrap();
    let out: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out["call"]["structured"], json!({ "result": 20 }), "{out}");

    // Killed mid-run: reported down, restarted (a new process), and calls work again.
    let first_pid = execute(&app, &t.access, "up", "whoami", json!({})).await["result"]
        .as_i64()
        .unwrap();
    std::process::Command::new("kill")
        .args(["-9", &first_pid.to_string()])
        .status()
        .unwrap();
    let mut restarted = Value::Null;
    for _ in 0..150 {
        let s = server(&app, &t.access, "up").await;
        if s["restarts"].as_u64().unwrap_or(0) >= 1 && s["status"] == json!("up") {
            restarted = s;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        restarted["error_count"].as_u64().unwrap() >= 1,
        "{restarted}"
    );
    let second_pid = execute(&app, &t.access, "up", "whoami", json!({})).await["result"]
        .as_i64()
        .unwrap();
    assert_ne!(first_pid, second_pid);
    assert_eq!(
        execute(&app, &t.access, "up", "multiply", json!({ "a": 3, "b": 3 })).await["result"],
        json!(9)
    );

    // Shutdown leaves no child behind.
    drop(app);
    let mut gone = false;
    for _ in 0..100 {
        if !alive(second_pid) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the upstream child {second_pid} outlived the server");
}

async fn an_http_upstream_is_discovered_and_a_dead_one_reported_down(kind: DbKind) {
    let Some(python) = crate::helpers::mcp_python() else {
        return;
    };
    let (mut peer, port) = http_peer(&python, &[]).await;
    // A server with sessions that answers in server-sent events: a call must carry its Mcp-Session-Id.
    let (mut session_peer, session_port) = http_peer(&python, &["sessions"]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = servers_file(
        &dir,
        json!({
            "web": { "url": format!("http://127.0.0.1:{port}/mcp") },
            "held": { "url": format!("http://127.0.0.1:{session_port}/mcp") },
            "gone": { "url": "http://127.0.0.1:9/mcp" }
        }),
    );
    let app = spawn_app_with(kind, &[("MCP_SERVERS_FILE", &file)]).await;
    let t = app.admin().await;
    let web = wait_status(&app, &t.access, "web", "up").await;
    assert_eq!(web["transport"], json!("http"));
    let r = execute(
        &app,
        &t.access,
        "web",
        "multiply",
        json!({ "a": 5, "b": 5 }),
    )
    .await;
    assert_eq!(r["result"], json!(25), "{r}");
    wait_status(&app, &t.access, "held", "up").await;
    for (a, b) in [(6, 7), (2, 21)] {
        let r = execute(
            &app,
            &t.access,
            "held",
            "multiply",
            json!({ "a": a, "b": b }),
        )
        .await;
        assert_eq!(r["result"], json!(42), "{r}");
    }
    // The server's own error (a wrong argument) comes back as the call's error, and the connection stays up.
    let r = execute(&app, &t.access, "held", "multiply", json!({ "a": "x" })).await;
    assert_eq!(r["success"], json!(false), "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("validation error"),
        "{r}"
    );
    let r = execute(&app, &t.access, "held", "whoami", json!({})).await;
    assert_eq!(r["result"], json!(session_peer.id().unwrap()), "{r}");
    session_peer.kill().await.unwrap();
    // The unreachable one did not stop start-up; it is reported down with its error.
    let gone = wait_status(&app, &t.access, "gone", "down").await;
    assert!(gone["error_count"].as_u64().unwrap() >= 1);
    assert!(gone["error_message"].is_string());
    let r = chat_call(&app, &t.access, r#"/call gone__multiply {"a":1,"b":1}"#).await;
    assert!(
        r["content"].as_str().unwrap().contains("unknown tool"),
        "{r}"
    );
    peer.kill().await.unwrap();
}

async fn admins_add_and_remove_upstream_servers_at_run_time(kind: DbKind) {
    let Some(python) = crate::helpers::mcp_python() else {
        return;
    };
    let app = crate::helpers::spawn_app(kind).await;
    let admin = app.admin().await;
    app.create_user("ula", "ula-password", "user").await;
    let ula = app.login("ula", "ula-password").await;
    let add = |token: String, body: Value| {
        let client = app.client.clone();
        let url = app.url("/api/mcp/servers");
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let server = json!({ "name": "dyn", "command": python, "args": [PEER], "env": { "SECRET_TOKEN": "s3cr3t-value" } });
    expect_error(
        add(ula.access.clone(), server.clone()).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let r = add(admin.access.clone(), server.clone()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let text = r.text().await.unwrap();
    assert!(
        !text.contains("s3cr3t-value") && text.contains("[REDACTED]"),
        "{text}"
    );
    expect_error(
        add(admin.access.clone(), server.clone()).await,
        StatusCode::CONFLICT,
    )
    .await;
    expect_error(
        add(
            admin.access.clone(),
            json!({ "name": "bad__name", "url": "http://127.0.0.1:9/mcp" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    expect_error(
        add(
            admin.access.clone(),
            json!({ "name": "ftp", "url": "ftp://127.0.0.1/mcp" }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    expect_error(
        add(admin.access.clone(), json!({ "name": "nothing" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    wait_status(&app, &admin.access, "dyn", "up").await;
    assert_eq!(
        execute(
            &app,
            &admin.access,
            "dyn",
            "multiply",
            json!({ "a": 7, "b": 6 })
        )
        .await["result"],
        json!(42)
    );
    let listed = app
        .get_bearer("/api/mcp/servers", &admin.access)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains("\"dyn\"") && !listed.contains("s3cr3t-value"),
        "{listed}"
    );

    // Stored: a restart brings it back.
    let app = app.restart().await;
    let admin = app.admin().await;
    wait_status(&app, &admin.access, "dyn", "up").await;
    let pid = execute(&app, &admin.access, "dyn", "whoami", json!({})).await["result"]
        .as_i64()
        .unwrap();

    let r = app.delete_as("/api/mcp/servers/dyn", &admin.access).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post_as(
            "/api/servers/dyn/tools/multiply/execute",
            &admin.access,
            json!({ "parameters": { "a": 1, "b": 1 } }),
        )
        .await;
    expect_error(r, StatusCode::NOT_FOUND).await;
    let mut gone = false;
    for _ in 0..100 {
        if !alive(pid) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the removed server's child {pid} still runs");
    let r = app.delete_as("/api/mcp/servers/dyn", &admin.access).await;
    expect_error(r, StatusCode::NOT_FOUND).await;
}

async fn get_tools_names_the_server_each_tool_comes_from(kind: DbKind) {
    // Arrange: the built-ins, and (where the Python MCP SDK is installed) an upstream over HTTP.
    let python = crate::helpers::mcp_python();
    let (mut peer, port) = match &python {
        Some(python) => {
            let (peer, port) = http_peer(python, &[]).await;
            (Some(peer), port)
        }
        None => (None, 9),
    };
    let dir = tempfile::tempdir().unwrap();
    let file = servers_file(
        &dir,
        json!({ "web": { "url": format!("http://127.0.0.1:{port}/mcp") } }),
    );
    let vars: &[(&str, &str)] = if peer.is_some() {
        &[("MCP_SERVERS_FILE", &file)]
    } else {
        &[]
    };
    let app = spawn_app_with(kind, vars).await;
    let t = app.admin().await;
    if peer.is_some() {
        wait_status(&app, &t.access, "web", "up").await;
    }

    // Act
    let r = app.get_bearer("/tools", &t.access).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();

    // Assert: a built-in is `builtin`, an upstream tool names its server.
    let server_of = |name: &str| {
        body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == json!(name))
            .map(|t| t["server"].clone())
    };
    assert_eq!(server_of("add"), Some(json!("builtin")), "{body}");
    if let Some(peer) = peer.as_mut() {
        assert_eq!(server_of("web__multiply"), Some(json!("web")), "{body}");
        peer.kill().await.unwrap();
    }
}

/// Each add bumps the servers' version and pushes the change, and the instance's own sync reads the stored rows:
/// a sync that ran between another add's insert and its start used to start that row first, and the add then
/// found its name taken, removed its row and answered 409.
async fn servers_added_back_to_back_are_all_kept(kind: DbKind) {
    let app = spawn_app_with(kind, &[("SYNC_INTERVAL_MS", "50")]).await;
    let admin = app.admin().await;
    let mut names = Vec::new();
    for i in 0..30 {
        let name = format!("s{i}");
        let r = app
            .post_as(
                "/api/mcp/servers",
                &admin.access,
                json!({ "name": name, "url": "http://127.0.0.1:9/mcp" }),
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{name}: {}",
            r.text().await.unwrap()
        );
        names.push(name);
    }
    let listed: Value = app.get_json("/api/mcp/servers", &admin.access).await;
    let text = listed.to_string();
    for name in &names {
        assert!(
            text.contains(&format!("\"{name}\"")),
            "{name} is gone: {text}"
        );
    }
}
