//! Production settings: unsafe settings refused by name, `doctor` printing what would be refused, weak JWT
//! secrets refused everywhere, and the private data dir and signing key.

use std::collections::HashMap;

use warden::clock::ManualClock;
use warden::config::Config;

use crate::cli::warden_command;
use crate::helpers::{build_in, prelude::*};

fn production(extra: &[(&str, &str)]) -> Config {
    let mut map: HashMap<&str, &str> = HashMap::from([
        ("ENVIRONMENT", "production"),
        (
            "JWT_SECRET_KEY",
            "a-production-secret-that-is-long-enough-0123456789",
        ),
        ("WARDEN_PUBLIC_URL", "https://warden.example.test"),
        ("WARDEN_BIND", "127.0.0.1:0"),
        (
            "WARDEN_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
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
            &[("WARDEN_ENCRYPTION_KEY", "")],
            "WARDEN_ENCRYPTION_KEY",
            "is not set",
        ),
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
        .env(
            "WARDEN_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .arg("doctor")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
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
fn development_keeps_a_private_signing_key_in_the_data_dir() {
    use std::os::unix::fs::PermissionsExt;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let app = build_in(dir.path(), &[]).await;
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
    let app = build_in(data_dir, &[("ADMIN_PASSWORD", ADMIN_PASSWORD)]).await;
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
