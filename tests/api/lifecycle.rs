//! Start-up, restart, the CLI, health and readiness, the API document, and the HTTP edge (limits, headers).

use std::{collections::HashMap, io::Write, process::Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};
use warden::{clock::ManualClock, config::Config};

use crate::db_tests;
use crate::helpers::{ADMIN_PASSWORD, DbKind, TestApp, expect_error, spawn_app, spawn_app_with};

db_tests!(
    a_restart_keeps_sessions_refresh_tokens_and_lockouts,
    another_instance_sees_revocations_and_role_changes_within_seconds,
    health_ready_and_docs_answer,
    ready_is_503_when_the_database_is_gone,
    every_response_has_a_request_id_and_security_headers,
    oversized_broken_and_hostile_bodies_get_4xx,
);

async fn a_restart_keeps_sessions_refresh_tokens_and_lockouts(kind: DbKind) {
    let app = spawn_app_with(kind, &[("LOGIN_MAX_FAILURES", "2")]).await;
    app.create_user("nina", "nina-password", "user").await;
    let t = app.admin().await;
    let revoked = app.admin().await;
    let browser = app.login_cookie("admin", ADMIN_PASSWORD).await;
    app.client
        .post(app.url("/auth/logout"))
        .bearer_auth(&revoked.access)
        .send()
        .await
        .unwrap();
    for _ in 0..2 {
        app.login_raw("nina", "wrong").await;
    }
    let app = app.restart().await;
    assert_eq!(
        app.get_bearer("/api/me", &t.access).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_bearer("/api/me", &revoked.access).await.status(),
        StatusCode::UNAUTHORIZED,
        "revocations survive"
    );
    let r = app
        .client
        .get(app.url("/api/me"))
        .header("cookie", &browser.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .header("cookie", &browser.cookie)
        .header("x-csrf-token", &browser.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "CSRF tokens survive (stateless, same key)"
    );
    assert_eq!(
        app.post("/auth/refresh", json!({ "refresh_token": t.refresh }))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login_raw("nina", "nina-password").await.status(),
        StatusCode::UNAUTHORIZED,
        "the lock survives"
    );
}

async fn another_instance_sees_revocations_and_role_changes_within_seconds(kind: DbKind) {
    let a = spawn_app(kind).await;
    let b = a.another_instance().await;
    a.create_user("uma", "uma-password", "user").await;
    let uma = a.login("uma", "uma-password").await;
    let admin = a.admin().await;
    assert_eq!(
        b.get_bearer("/api/me", &uma.access).await.status(),
        StatusCode::OK,
        "tokens work on every instance"
    );
    assert_eq!(
        b.get_bearer("/api/users", &uma.access).await.status(),
        StatusCode::FORBIDDEN
    );

    let r = a
        .client
        .post(a.url("/api/permissions"))
        .bearer_auth(&admin.access)
        .json(&json!({ "role": "user", "permissions": ["chat:use", "users:manage"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        TestApp::eventually(|| async {
            b.get_bearer("/api/users", &uma.access).await.status() == StatusCode::OK
        })
        .await
    );

    a.client
        .post(a.url("/auth/logout"))
        .bearer_auth(&uma.access)
        .send()
        .await
        .unwrap();
    assert!(
        TestApp::eventually(|| async {
            b.get_bearer("/api/me", &uma.access).await.status() == StatusCode::UNAUTHORIZED
        })
        .await
    );
}

async fn health_ready_and_docs_answer(kind: DbKind) {
    let app = spawn_app(kind).await;
    let h: Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h, json!({ "status": "ok" }));
    let r = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = app
        .client
        .get(app.url("/api/docs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], json!("3.1.0"));
    for (method, path, _, _) in warden::http::system::ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the document"
        );
    }
    let r = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::NOT_FOUND).await;
}

async fn ready_is_503_when_the_database_is_gone(kind: DbKind) {
    let app = spawn_app(kind).await;
    let t = app.admin().await;
    app.db().close().await;
    let r = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // Requests that need the database fail closed with 503, with no internals in the answer.
    let r = app.login_raw("admin", ADMIN_PASSWORD).await;
    let body = expect_error(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["error"], json!("Service unavailable"));
    assert_eq!(
        app.get_bearer("/api/me", &t.access).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

async fn every_response_has_a_request_id_and_security_headers(kind: DbKind) {
    let app = spawn_app(kind).await;
    for r in [
        app.client.get(app.url("/health")).send().await.unwrap(),
        app.login_raw("x", "y").await,
    ] {
        let h = r.headers();
        assert_eq!(h["x-request-id"].len(), 32);
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["cache-control"], "no-store");
        assert!(h.contains_key("content-security-policy"));
    }
}

async fn oversized_broken_and_hostile_bodies_get_4xx(kind: DbKind) {
    let app = spawn_app_with(kind, &[("MAX_BODY_BYTES", "65536")]).await;
    let big = json!({ "username": "admin", "password": "x".repeat(70_000) });
    expect_error(
        app.post("/auth/login", big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    let nested = "[".repeat(10_000) + &"]".repeat(10_000);
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "application/json")
        .body(nested)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let invalid_utf8 = b"{\"username\":\"\xff\xfe\",\"password\":\"x\"}".to_vec();
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "application/json")
        .body(invalid_utf8)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let r = app
        .post(
            "/auth/login",
            json!({ "username": "ad\u{0}min", "password": "pass\u{0}word" }),
        )
        .await;
    expect_error(r, StatusCode::BAD_REQUEST).await;
    let r = app
        .post(
            "/auth/login",
            json!({ "username": "admin", "password": "pass\u{0}word" }),
        )
        .await;
    expect_error(r, StatusCode::UNAUTHORIZED).await;
    let r = app
        .client
        .post(app.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=a%00b&client_secret=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let big_header = "v".repeat(20_000);
    let r = app
        .client
        .get(app.url("/health"))
        .header("x-padding", big_header)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

fn production(extra: &[(&str, &str)]) -> Config {
    let mut map: HashMap<&str, &str> = HashMap::from([
        ("ENVIRONMENT", "production"),
        (
            "JWT_SECRET_KEY",
            "a-production-secret-that-is-long-enough-0123456789",
        ),
        ("WARDEN_PUBLIC_URL", "https://warden.example.test"),
        ("WARDEN_BIND", "127.0.0.1:0"),
    ]);
    map.extend(extra.iter().copied());
    let map: HashMap<String, String> = map
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned()).unwrap()
}

#[tokio::test]
async fn production_refuses_unsafe_settings_naming_the_variable() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (&[("JWT_SECRET_KEY", "")], "JWT_SECRET_KEY", "is not set"),
        (
            &[("COOKIE_SECURE", "false")],
            "COOKIE_SECURE",
            "must be Secure",
        ),
        (
            &[("ADMIN_PASSWORD", "admin")],
            "ADMIN_PASSWORD",
            "default password",
        ),
        (
            &[("ADMIN_PASSWORD", "short1")],
            "ADMIN_PASSWORD",
            "shorter than 12",
        ),
        (
            &[("WARDEN_PUBLIC_URL", "http://plain.example.test")],
            "WARDEN_PUBLIC_URL",
            "https://",
        ),
    ];
    for (extra, variable, words) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut extra = extra.to_vec();
        let data = dir.path().display().to_string();
        extra.push(("WARDEN_DATA_DIR", &data));
        let err = match warden::app::build(production(&extra), ManualClock::new()).await {
            Ok(_) => panic!("production started with {extra:?}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("refusing to start in production"), "{err}");
        assert!(
            err.contains(variable) && err.contains(words),
            "{variable}/{words}: {err}"
        );
        assert!(
            !dir.path().join("warden.db").exists(),
            "nothing is created before the refusal"
        );
    }
    // A sound production configuration starts.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let app = warden::app::build(
        production(&[
            ("WARDEN_DATA_DIR", &data),
            ("ADMIN_PASSWORD", "a-long-admin-password"),
        ]),
        ManualClock::new(),
    )
    .await;
    assert!(app.is_ok(), "{:?}", app.err());
}

fn warden_command(data_dir: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WARDEN_DATA_DIR", data_dir)
        .env("LOG_LEVEL", "warn")
        .current_dir(data_dir);
    c
}

#[test]
fn doctor_prints_what_production_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let out = warden_command(dir.path())
        .env("ENVIRONMENT", "production")
        .arg("doctor")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("production would refuse to start"), "{text}");
    assert!(
        text.contains("JWT_SECRET_KEY") && text.contains("WARDEN_PUBLIC_URL"),
        "{text}"
    );
    let ok = warden_command(dir.path())
        .env("ENVIRONMENT", "production")
        .env(
            "JWT_SECRET_KEY",
            "a-production-secret-that-is-long-enough-0123456789",
        )
        .env("WARDEN_PUBLIC_URL", "https://w.example.test")
        .arg("doctor")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
}

/// Runs the real binary with `args` and `stdin` in `data_dir`, plus `env`; whether it succeeded, and its output.
fn run_cli(
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: &str,
) -> (bool, String) {
    let mut child = warden_command(data_dir)
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A weak key set on purpose is refused wherever it is set; only an unset key gets a generated one.
#[tokio::test]
async fn an_explicit_weak_jwt_secret_is_refused_in_every_environment() {
    // Arrange
    let weak = [
        ("secret", "at least 32 bytes"),
        ("too-short-secret", "at least 32 bytes"),
        ("your-secret-key-change-in-production", "known default"),
        ("bench-secret-key-bench-secret-key", "known default"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    for (key, words) in weak {
        for environment in ["", "development", "production"] {
            let settings: HashMap<&str, &str> = HashMap::from([
                ("ENVIRONMENT", environment),
                ("JWT_SECRET_KEY", key),
                ("WARDEN_DATA_DIR", data.as_str()),
                ("WARDEN_BIND", "127.0.0.1:0"),
            ]);
            // Act
            let loaded = Config::from_lookup(|k| settings.get(k).map(|v| v.to_string()));
            // Assert
            let err = format!("{:#}", loaded.expect_err("a weak key is refused"));
            assert!(
                err.contains("JWT_SECRET_KEY") && err.contains(words),
                "{key} in {environment:?}: {err}"
            );
        }
    }
    // The real server refuses to start with it, before creating anything.
    let out = warden_command(dir.path())
        .env("JWT_SECRET_KEY", "secret")
        .env("WARDEN_BIND", "127.0.0.1:0")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("JWT_SECRET_KEY"), "{text}");
    assert!(!dir.path().join("warden.db").exists());

    // A random 32-byte key, and an unset key, still start in development.
    let strong = uuid::Uuid::new_v4().simple().to_string();
    assert_eq!(strong.len(), 32);
    let app = spawn_app_with(DbKind::Sqlite, &[("JWT_SECRET_KEY", &strong)]).await;
    app.admin().await;
    let app = spawn_app(DbKind::Sqlite).await;
    app.admin().await;
}

#[test]
fn the_cli_manages_users_with_passwords_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let django = [(
        "DJANGO_SECRET_KEY",
        "a-django-secret-for-the-cli-test-0123456789",
    )];
    let run = |args: &[&str], stdin: &str| run_cli(dir.path(), &django, args, stdin);
    let (ok, text) = run(
        &["user", "create", "olga", "--role", "user"],
        "olga-password-1\n",
    );
    assert!(ok, "{text}");
    assert!(!text.contains("olga-password-1"));
    let (ok, text) = run(&["user", "list"], "");
    assert!(ok && text.contains("olga"), "{text}");
    let (ok, text) = run(&["user", "create", "olga"], "another-password\n");
    assert!(!ok && text.contains("already exists"), "{text}");
    let (ok, _) = run(&["user", "set-password", "olga"], "olga-password-2\n");
    assert!(ok);
    let (ok, _) = run(&["user", "set-role", "olga", "admin"], "");
    assert!(ok);
    let (ok, text) = run(&["user", "link", "olga", "django:7"], "");
    assert!(ok && text.contains("issuer django, subject 7"), "{text}");
    let (ok, text) = run(&["user", "link", "olga", "django:7"], "");
    assert!(!ok && text.contains("already linked"), "{text}");
    let (ok, text) = run(&["client", "create", "bot"], "");
    assert!(
        ok && text.contains("client_id: ") && text.contains("client_secret: "),
        "{text}"
    );
    let (ok, text) = run(&["user", "create", "pete"], "");
    assert!(!ok && text.contains("no password"), "{text}");
    let (ok, text) = run(&["migrate"], "");
    assert!(ok, "{text}");

    // A running server sees what the CLI does, within seconds: here, disabling a signed-in user.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let data = dir.path().display().to_string();
        let settings: HashMap<String, String> = [
            ("WARDEN_DATA_DIR", data.as_str()),
            ("WARDEN_BIND", "127.0.0.1:0"),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let app = warden::app::build(
            Config::from_lookup(|k| settings.get(k).cloned()).unwrap(),
            ManualClock::new(),
        )
        .await
        .unwrap();
        let base = format!("http://{}", app.addr);
        let stop = app.shutdown_handle();
        let server = tokio::spawn(app.run());
        let client = reqwest::Client::new();
        let r = client
            .post(format!("{base}/auth/login"))
            .json(&json!({ "username": "olga", "password": "olga-password-2" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let token = r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let me: Value = client
            .get(format!("{base}/api/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["role"], json!("admin"), "set-role took effect");

        let (ok, text) = run(&["user", "disable", "olga"], "");
        assert!(ok, "{text}");
        let revoked = TestApp::eventually(|| async {
            client
                .get(format!("{base}/api/me"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status()
                == StatusCode::UNAUTHORIZED
        })
        .await;
        assert!(
            revoked,
            "the CLI's disable ended the running server's session"
        );
        stop.cancel();
        server.await.unwrap().unwrap();
    });
}

#[test]
fn development_keeps_a_private_signing_key_in_the_data_dir() {
    use std::os::unix::fs::PermissionsExt;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().display().to_string();
        let settings: HashMap<String, String> = [
            ("WARDEN_DATA_DIR", data.as_str()),
            ("WARDEN_BIND", "127.0.0.1:0"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let app = warden::app::build(
            Config::from_lookup(|k| settings.get(k).cloned()).unwrap(),
            ManualClock::new(),
        )
        .await
        .unwrap();
        let mode = std::fs::metadata(dir.path().join("jwt_secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let password = app
            .generated_admin_password
            .clone()
            .expect("a random admin password on first start");
        assert!(password.len() >= 20);
        let users = app.state.auth.list_users().await.unwrap();
        assert_eq!(users[0].username, "admin");
        assert!(users[0].password_hash.starts_with("$argon2id$"));
    });
}

/// The external identities stored in the SQLite database of `data_dir`, as (issuer, subject) pairs.
async fn stored_identities(data_dir: &std::path::Path) -> Vec<(String, String)> {
    let url = format!("sqlite://{}", data_dir.join("warden.db").display());
    let db = warden::store::Db::connect(&url).await.unwrap();
    let rows = sqlx::query_as("SELECT issuer, subject FROM external_identities ORDER BY subject")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    db.close().await;
    rows
}

#[test]
fn the_cli_links_identities_only_of_configured_issuers_even_when_written_as_urls() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = [
        ("EXTERNAL_JWKS_URL", "http://127.0.0.1:9/jwks.json"),
        ("EXTERNAL_JWKS_ISSUER", "https://id.example.com"),
    ];
    let run = |args: &[&str], stdin: &str| run_cli(dir.path(), &jwks, args, stdin);
    let (ok, text) = run(&["user", "create", "vera"], "vera-password-1\n");
    assert!(ok, "{text}");

    let (ok, text) = run(
        &["user", "link", "vera", "https://id.example.com:alice"],
        "",
    );
    assert!(ok, "{text}");
    // A subject may hold colons too: the issuer is the configured one the identity starts with.
    let (ok, text) = run(
        &["user", "link", "vera", "https://id.example.com:user:42"],
        "",
    );
    assert!(ok, "{text}");
    let (ok, text) = run(
        &["user", "link", "vera", "https://other.example.com:bob"],
        "",
    );
    assert!(!ok && text.contains("not a configured issuer"), "{text}");
    let (ok, text) = run(&["user", "link", "vera", "django:7"], "");
    assert!(
        !ok && text.contains("not a configured issuer"),
        "django tokens are not accepted without DJANGO_SECRET_KEY: {text}"
    );
    let (ok, text) = run(
        &["user", "create", "walt", "--external", "https:walt"],
        "walt-password-1\n",
    );
    assert!(!ok && text.contains("not a configured issuer"), "{text}");
    let (ok, text) = run(&["user", "list"], "");
    assert!(
        ok && !text.contains("walt"),
        "a refused identity leaves no account behind: {text}"
    );
    let (ok, text) = run(
        &[
            "user",
            "create",
            "xena",
            "--external",
            "https://id.example.com:xena",
        ],
        "xena-password-1\n",
    );
    assert!(ok, "{text}");

    let stored = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(stored_identities(dir.path()));
    let issuer = "https://id.example.com".to_string();
    assert_eq!(
        stored,
        vec![
            (issuer.clone(), "alice".to_string()),
            (issuer.clone(), "user:42".to_string()),
            (issuer, "xena".to_string()),
        ]
    );
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Starts the server on `data_dir` (SQLite), signs in over HTTP so the database is written, and returns the
/// modes of the data dir and the database files while the server still runs.
async fn modes_after_a_write(data_dir: &std::path::Path) -> Vec<(String, u32)> {
    let data = data_dir.display().to_string();
    let settings: HashMap<String, String> = [
        ("WARDEN_DATA_DIR", data.as_str()),
        ("WARDEN_BIND", "127.0.0.1:0"),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let app = warden::app::build(
        Config::from_lookup(|k| settings.get(k).cloned()).unwrap(),
        ManualClock::new(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", app.addr);
    let stop = app.shutdown_handle();
    let server = tokio::spawn(app.run());
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/login"))
        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let modes = [
        "",
        "warden.db",
        "warden.db-wal",
        "warden.db-shm",
        "jwt_secret",
    ]
    .iter()
    .map(|name| (name.to_string(), mode(&data_dir.join(name))))
    .collect();
    stop.cancel();
    server.await.unwrap().unwrap();
    modes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_everything_in_it_are_private_to_the_service_user() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let private = |modes: Vec<(String, u32)>| {
        for (name, mode) in modes {
            let wanted = if name.is_empty() { 0o700 } else { 0o600 };
            assert_eq!(mode, wanted, "{name:?} has mode {mode:o}");
        }
    };

    // A fresh data dir, folders included, is made private.
    let fresh = root.path().join("new").join("data");
    private(modes_after_a_write(&fresh).await);

    // One left open by an earlier version (or an operator) is tightened at start.
    let loose = root.path().join("loose");
    std::fs::create_dir(&loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).unwrap();
    modes_after_a_write(&loose).await;
    for name in ["warden.db", "jwt_secret"] {
        std::fs::set_permissions(loose.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).unwrap();
    private(modes_after_a_write(&loose).await);
}
