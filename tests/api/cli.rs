//! The `warden` command line: managing users with passwords from standard input, and linking external
//! identities only of configured issuers.

use std::io::Write;
use std::process::Stdio;

use crate::helpers::{build_in, prelude::*};

pub(crate) fn warden_command(data_dir: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WARDEN_DATA_DIR", data_dir)
        .env("LOG_LEVEL", "warn")
        .current_dir(data_dir);
    c
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
        let app = build_in(dir.path(), &[("ADMIN_PASSWORD", ADMIN_PASSWORD)]).await;
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
        let token = json_of(r).await["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        // This server is not a `TestApp`: one small closure stands in for `get_as`.
        let me = || async {
            let request = client.get(format!("{base}/api/me")).bearer_auth(&token);
            request.send().await.expect("the server answers")
        };
        let me_now = json_of(me().await).await;
        assert_eq!(me_now["role"], json!("admin"), "set-role took effect");

        let (ok, text) = run(&["user", "disable", "olga"], "");
        assert!(ok, "{text}");
        let revoked =
            TestApp::eventually(|| async { me().await.status() == StatusCode::UNAUTHORIZED }).await;
        assert!(
            revoked,
            "the CLI's disable ended the running server's session"
        );
        stop.cancel();
        server.await.unwrap().unwrap();
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
