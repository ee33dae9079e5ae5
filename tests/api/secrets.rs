//! Secrets never at rest in clear, never in logs (security.md cases 23 and 24).

use crate::helpers::{captured_logs, prelude::*};

db_tests!(no_password_token_csrf_value_or_secret_reaches_a_table_or_the_log);

async fn no_password_token_csrf_value_or_secret_reaches_a_table_or_the_log(kind: DbKind) {
    let app = spawn_app(kind).await;
    let user_password = "quinn-secret-password-Zx81";
    let new_password = "quinn-new-password-Qy72";
    app.create_user("quinn", user_password, "user").await;
    let bearer = app.login("quinn", user_password).await;
    let refreshed: Value = app
        .post("/auth/refresh", json!({ "refresh_token": bearer.refresh }))
        .await
        .json()
        .await
        .unwrap();
    let browser = app.login_cookie("quinn", user_password).await;
    let status: Value = app
        .get_as("/api/status", &header("cookie", &browser.cookie))
        .await
        .json()
        .await
        .unwrap();
    let client = app
        .state
        .auth
        .create_client("secret-bot", "user")
        .await
        .unwrap();
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        client.client_id, client.client_secret
    );
    let token: Value = app
        .client
        .post(app.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = app
        .client
        .post(app.url("/api/me/password"))
        .header("cookie", &browser.cookie)
        .header("x-csrf-token", &browser.csrf)
        .json(&json!({ "current_password": user_password, "new_password": new_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Failed attempts with secrets in them, and an internal error, are logged too.
    app.login_raw("quinn", "typo-secret-password-Wv55").await;
    app.client
        .get(app.url("/api/me"))
        .header("authorization", format!("Bearer {}", bearer.access))
        .header("cookie", &browser.cookie)
        .send()
        .await
        .unwrap();

    let secrets = [
        user_password.to_string(),
        new_password.to_string(),
        ADMIN_PASSWORD.to_string(),
        "typo-secret-password-Wv55".to_string(),
        bearer.access.clone(),
        bearer.refresh.clone(),
        refreshed["refresh_token"].as_str().unwrap().to_string(),
        refreshed["access_token"].as_str().unwrap().to_string(),
        browser.cookie.split_once('=').unwrap().1.to_string(),
        browser.csrf.clone(),
        status["csrf_token"].as_str().unwrap().to_string(),
        client.client_secret.clone(),
        token["access_token"].as_str().unwrap().to_string(),
    ];
    let tables = app.all_table_text().await;
    let logs = captured_logs();
    assert!(
        logs.contains("request"),
        "the log capture works: {logs:.200}"
    );
    for s in &secrets {
        assert!(
            !tables.contains(s.as_str()),
            "a secret is stored in clear: {s:.12}…"
        );
        assert!(
            !logs.contains(s.as_str()),
            "a secret reached the log: {s:.12}…"
        );
    }
    assert!(
        !logs.to_lowercase().contains("authorization:") && !logs.to_lowercase().contains("cookie:")
    );
}
