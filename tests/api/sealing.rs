//! Secrets sealed at rest under WARDEN_ENCRYPTION_KEY (issue 10, item 6): the env and header values of MCP
//! servers added at run time are never stored in clear, still reach the server, are sealed at start when an
//! older version stored them in clear, survive `warden keys rotate`, and a wrong key refuses to start with
//! nothing rewritten.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::warden_command;
use crate::helpers::prelude::*;

db_tests!(
    mcp_server_secrets_are_sealed_at_rest_and_still_reach_the_server,
    secrets_stored_in_clear_by_an_older_version_are_sealed_at_start,
    keys_rotate_reseals_every_secret_and_the_new_key_opens_them,
    keys_rotate_in_development_replaces_the_data_dirs_generated_key,
    a_wrong_key_refuses_to_start_and_changes_no_row,
);

const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_B: &str = "HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";
const HEADER_SECRET: &str = "hdr-s3cr3t-7Qx";
const ENV_SECRET: &str = "env-s3cr3t-4Kp";

/// A loopback HTTP listener recording the head of every request it gets (answering 503): a stand-in upstream
/// to see which headers reach it.
async fn recording_upstream() -> (String, Arc<Mutex<String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(String::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = stream.read(&mut buf).await.unwrap_or(0);
            record.lock().push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    (url, seen)
}

/// Every stored `mcp_servers` config, read with SQL from the test's own database (on a connection of its own:
/// the app's pool closes when its server stops).
async fn stored_configs(app: &TestApp) -> Vec<(String, String)> {
    let db = warden::store::Db::connect(&app.config_with(&[]).effective_database_url())
        .await
        .unwrap();
    let rows = sqlx::query_as("SELECT name, config FROM mcp_servers ORDER BY name")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    db.close().await;
    rows
}

/// The stored servers as the start-up path reads them (opened with the app's key).
async fn opened(app: &TestApp) -> Value {
    let key = warden::app::encryption_key(&app.state.config).unwrap();
    let servers = warden::mcp::servers::startup_servers(app.db(), &key, None, None)
        .await
        .unwrap();
    let mut out = serde_json::Map::new();
    for s in servers {
        out.insert(s.name, serde_json::to_value(&s.transport).unwrap());
    }
    Value::Object(out)
}

async fn add(app: &TestApp, token: &str, body: Value) {
    let r = app.post_as("/api/mcp/servers", token, body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

fn expected(url: &str) -> Value {
    json!({
        "web": { "url": url, "headers": { "X-Api-Key": HEADER_SECRET } },
        "kid": { "command": "/bin/true", "args": ["x"], "env": { "TOKEN": ENV_SECRET } },
    })
}

async fn add_both(app: &TestApp, token: &str, url: &str) {
    add(
        app,
        token,
        json!({ "name": "web", "url": url, "headers": { "X-Api-Key": HEADER_SECRET } }),
    )
    .await;
    add(
        app,
        token,
        json!({ "name": "kid", "command": "/bin/true", "args": ["x"], "env": { "TOKEN": ENV_SECRET } }),
    )
    .await;
}

async fn mcp_server_secrets_are_sealed_at_rest_and_still_reach_the_server(kind: DbKind) {
    // Arrange
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let (url, seen) = recording_upstream().await;

    // Act
    add_both(&app, &admin.access, &url).await;

    // Assert: no secret in the rows; command and url stay readable.
    let rows = stored_configs(&app).await;
    assert_eq!(rows.len(), 2);
    for (name, config) in &rows {
        assert!(
            !config.contains(HEADER_SECRET) && !config.contains(ENV_SECRET),
            "{name}: {config}"
        );
        assert!(config.contains("\"v1:"), "{name}: {config}");
    }
    assert!(rows.iter().any(|(_, c)| c.contains(&url)));
    // The upstream receives the header in clear.
    assert!(
        crate::helpers::TestApp::eventually(|| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .to_ascii_lowercase()
                    .contains(&format!("x-api-key: {HEADER_SECRET}").to_ascii_lowercase())
            }
        })
        .await,
        "the upstream never saw the header"
    );
    // The stored config opens to what was added.
    assert_eq!(opened(&app).await, expected(&url));
}

async fn secrets_stored_in_clear_by_an_older_version_are_sealed_at_start(kind: DbKind) {
    // Arrange: rows as a version before sealing wrote them.
    let app = spawn_app(kind).await;
    let url = "http://127.0.0.1:9/mcp";
    for (name, config) in [
        (
            "web",
            json!({ "url": url, "headers": { "X-Api-Key": HEADER_SECRET } }),
        ),
        (
            "kid",
            json!({ "command": "/bin/true", "args": ["x"], "env": { "TOKEN": ENV_SECRET } }),
        ),
    ] {
        sqlx::query(
            "INSERT INTO mcp_servers (name, config, created_by, created_at) VALUES ($1, $2, NULL, 1)",
        )
        .bind(name)
        .bind(config.to_string())
        .execute(app.db().writer())
        .await
        .unwrap();
    }

    // Act
    let app = app.restart().await;

    // Assert
    let rows = stored_configs(&app).await;
    for (name, config) in &rows {
        assert!(
            !config.contains(HEADER_SECRET) && !config.contains(ENV_SECRET),
            "{name}: {config}"
        );
    }
    assert_eq!(opened(&app).await, expected(url));
    // Idempotent: a second start rewrites nothing.
    let app = app.restart().await;
    assert_eq!(stored_configs(&app).await, rows);
}

/// `warden keys rotate` on the app's database and data dir, with `env`; its success and output.
fn rotate(app: &TestApp, env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let mut command = warden_command(app.data_dir());
    if let Some(url) = app.setting("DATABASE_URL") {
        command.env("DATABASE_URL", url);
    }
    let out = command
        .envs(env.iter().copied())
        .args(["keys", "rotate"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

async fn keys_rotate_reseals_every_secret_and_the_new_key_opens_them(kind: DbKind) {
    // Arrange
    let mut app = spawn_app_with(kind, &[("WARDEN_ENCRYPTION_KEY", KEY_A)]).await;
    let admin = app.admin().await;
    let (url, _seen) = recording_upstream().await;
    add_both(&app, &admin.access, &url).await;
    let before = stored_configs(&app).await;
    app.stop().await;
    let new_key = app.data_dir().join("new-key");
    std::fs::write(&new_key, KEY_B).unwrap();

    // Act
    let (ok, out) = rotate(
        &app,
        &[("WARDEN_ENCRYPTION_KEY", KEY_A)],
        &["--new-key-file", &new_key.display().to_string()],
    );

    // Assert
    assert!(ok, "{out}");
    assert!(out.contains("re-sealed 2 values"), "{out}");
    assert!(out.contains("WARDEN_ENCRYPTION_KEY"), "{out}");
    assert!(!out.contains(KEY_B) && !out.contains(KEY_A), "{out}");
    let after = stored_configs(&app).await;
    assert_ne!(after, before);
    for (_, config) in &after {
        assert!(!config.contains(HEADER_SECRET) && !config.contains(ENV_SECRET));
    }
    let app = app.restart_with(&[("WARDEN_ENCRYPTION_KEY", KEY_B)]).await;
    assert_eq!(opened(&app).await, expected(&url));
    let admin = app.admin().await;
    let servers = app.get_json("/api/mcp/servers", &admin.access).await;
    assert!(servers.to_string().contains("\"kid\""), "{servers}");
}

async fn keys_rotate_in_development_replaces_the_data_dirs_generated_key(kind: DbKind) {
    // Arrange: no WARDEN_ENCRYPTION_KEY, so the key is generated and kept in the data dir.
    let mut app = spawn_app(kind).await;
    let admin = app.admin().await;
    let (url, _seen) = recording_upstream().await;
    add_both(&app, &admin.access, &url).await;
    let old_key = std::fs::read_to_string(app.data_dir().join("encryption_key")).unwrap();
    app.stop().await;

    // Act
    let (ok, out) = rotate(&app, &[], &[]);

    // Assert
    assert!(ok, "{out}");
    assert!(out.contains("re-sealed 2 values"), "{out}");
    let new_key = std::fs::read_to_string(app.data_dir().join("encryption_key")).unwrap();
    assert_ne!(new_key, old_key);
    assert!(!out.contains(new_key.trim()), "{out}");
    let app = app.restart().await;
    assert_eq!(opened(&app).await, expected(&url));
}

async fn a_wrong_key_refuses_to_start_and_changes_no_row(kind: DbKind) {
    // Arrange
    let mut app = spawn_app_with(kind, &[("WARDEN_ENCRYPTION_KEY", KEY_A)]).await;
    let admin = app.admin().await;
    let (url, _seen) = recording_upstream().await;
    add_both(&app, &admin.access, &url).await;
    let before = stored_configs(&app).await;
    app.stop().await;

    // Act
    let result = warden::app::build(
        app.config_with(&[("WARDEN_ENCRYPTION_KEY", KEY_B)]),
        warden::clock::ManualClock::new(),
    )
    .await;

    // Assert
    let err = match result {
        Ok(_) => panic!("started with the wrong key"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("WARDEN_ENCRYPTION_KEY"), "{err}");
    assert!(!err.contains(KEY_A) && !err.contains(KEY_B), "{err}");
    assert_eq!(stored_configs(&app).await, before);
    // The right key still starts.
    let app = app.restart().await;
    assert_eq!(opened(&app).await, expected(&url));
}
