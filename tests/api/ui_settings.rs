//! The settings page in a real browser (tests/browser/run.cjs, scenario `settings`): a new user enrols an
//! authenticator from the key and QR code the page shows, sees the recovery codes, has a phone code sent,
//! revokes their other session, changes the password and signs out everywhere; axe-core finds nothing serious.

use crate::{
    helpers::prelude::*,
    ui::{assert_clean, browser_modules, run_scenario, screenshot_dir},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_enrols_totp_changes_the_password_and_revokes_a_session_on_the_settings_page() {
    use warden::clock::Clock;
    let Some(modules) = browser_modules() else {
        return;
    };
    let app = spawn_app(DbKind::Sqlite).await;
    app.create_user("sam", "sam-password-Kq4", "user").await;
    // Another device: the page must list it and revoke it.
    let other = app.login("sam", "sam-password-Kq4").await;

    let report = run_scenario(
        &modules,
        json!({
            "base": app.base,
            "scenario": "settings",
            "username": "sam",
            "password": "sam-password-Kq4",
            "newPassword": "sam-new-password-Zr8",
            "phone": crate::mfa::PHONE,
            "nowSecs": app.clock.now_secs(),
            "screenshots": screenshot_dir(),
        }),
    )
    .await;

    assert_clean(&report, &["POST /api/me/password 401"]);
    assert_eq!(
        report["steps"],
        json!([
            "signed in",
            "settings open with the sessions listed",
            "authenticator started: key and QR code shown",
            "authenticator confirmed: recovery codes shown",
            "phone code sent",
            "other session revoked",
            "password changed after a mismatch and a wrong password were refused",
            "signed out everywhere: /settings sends the browser back to /login",
        ])
    );
    assert_eq!(report["sessionsBefore"], json!(2), "{report:#}");
    assert_eq!(report["currentMarked"], json!(1), "{report:#}");
    assert_eq!(report["sessionsAfter"], json!(1), "{report:#}");
    assert!(report["qrWidth"].as_u64().unwrap() >= 100, "{report:#}");
    assert_eq!(report["secretLength"], json!(32));
    assert_eq!(report["recoveryCodes"].as_array().unwrap().len(), 10);
    assert!(
        report["totpState"].as_str().unwrap().contains("is set up"),
        "{report:#}"
    );
    assert!(
        report["phoneState"]
            .as_str()
            .unwrap()
            .contains(&crate::mfa::number().masked()),
        "{report:#}"
    );
    assert!(!report["mismatchMessage"].as_str().unwrap().is_empty());
    assert!(!report["wrongPasswordMessage"].as_str().unwrap().is_empty());
    assert_eq!(report["passwordError"], json!(""));

    // What the browser did is what the server holds: the other device is signed out, TOTP is enrolled, the new
    // password signs in (with a second factor now) and the old one does not.
    assert_eq!(
        app.get_as("/api/me", &other).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_raw("sam", "sam-password-Kq4").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let login = json_of(app.login_raw("sam", "sam-new-password-Zr8").await).await;
    assert!(
        login["methods"]
            .as_array()
            .is_some_and(|m| m.contains(&json!("totp"))),
        "{login:#}"
    );
    for shot in report["screenshots"].as_array().unwrap() {
        let path = shot.as_str().unwrap();
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        assert!(bytes > 1000, "{path} was written ({bytes} bytes)");
    }
    assert_eq!(
        report["screenshots"].as_array().unwrap().len(),
        8,
        "two pages, light and dark, two sizes"
    );
}
