//! Browser sessions (security.md cases 10–12): cookie flags, a new session at every login, CSRF tokens bound
//! to the session, and cross-site state changes refused.

use crate::helpers::{BrowserSession, prelude::*};
use warden::clock::Clock;

db_tests!(
    development_cookies_are_httponly_and_lax,
    secure_cookies_use_the_host_prefix_and_configured_samesite,
    every_login_gets_a_new_session_and_ends_the_old_cookie,
    status_with_a_cookie_returns_a_working_csrf_token_and_never_the_token,
    cookie_state_changes_need_this_sessions_csrf_token,
    cross_site_state_changes_are_refused,
    get_never_changes_state,
    a_json_body_sent_as_another_type_is_refused_on_every_route,
    a_request_with_two_different_credentials_is_refused,
    an_unused_browser_session_ends_after_the_idle_timeout,
);

async fn development_cookies_are_httponly_and_lax(kind: DbKind) {
    let app = spawn_app(kind).await;
    let s = app.login_cookie("admin", ADMIN_PASSWORD).await;
    assert!(s.set_cookie.starts_with("auth_token="), "{}", s.set_cookie);
    assert!(s.set_cookie.contains("HttpOnly"));
    assert!(s.set_cookie.contains("SameSite=Lax"));
    assert!(s.set_cookie.contains("Path=/"));
    assert!(!s.set_cookie.contains("Secure"));
}

async fn secure_cookies_use_the_host_prefix_and_configured_samesite(kind: DbKind) {
    let app = spawn_app_with(
        kind,
        &[("COOKIE_SECURE", "true"), ("COOKIE_SAMESITE", "strict")],
    )
    .await;
    let s = app.login_cookie("admin", ADMIN_PASSWORD).await;
    assert!(
        s.set_cookie.starts_with("__Host-auth_token="),
        "{}",
        s.set_cookie
    );
    assert!(s.set_cookie.contains("; Secure"));
    assert!(s.set_cookie.contains("SameSite=Strict"));
    assert!(s.set_cookie.contains("HttpOnly"));
    // The login answer carries the CSRF token and no bearer token.
    let r = app
        .post(
            "/auth/login",
            json!({ "username": "admin", "password": ADMIN_PASSWORD, "mode": "cookie" }),
        )
        .await;
    let body: Value = r.json().await.unwrap();
    assert!(body["csrf_token"].is_string());
    assert!(
        body.get("token").is_none()
            && body.get("access_token").is_none()
            && body.get("refresh_token").is_none()
    );
    let me = app.get_as("/api/me", &header("cookie", &s.cookie)).await;
    assert_eq!(me.status(), StatusCode::OK);
    let r = app
        .get_as(
            "/api/me",
            &header("cookie", s.cookie.replace("__Host-", "")),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the unprefixed name is not read when Secure"
    );
}

async fn session_id(app: &TestApp, cookie: &str) -> String {
    let me = app.get_json("/api/me", &header("cookie", cookie)).await;
    me["session_id"].as_str().unwrap().to_string()
}

async fn every_login_gets_a_new_session_and_ends_the_old_cookie(kind: DbKind) {
    let app = spawn_app(kind).await;
    let first = app.login_cookie("admin", ADMIN_PASSWORD).await;
    let first_sid = session_id(&app, &first.cookie).await;
    let r = app
        .post_as(
            "/auth/login",
            &header("cookie", &first.cookie),
            json!({ "username": "admin", "password": ADMIN_PASSWORD, "mode": "cookie" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let second_cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(second_cookie, first.cookie);
    assert_ne!(session_id(&app, &second_cookie).await, first_sid);
    let old = app
        .get_as("/api/me", &header("cookie", &first.cookie))
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
}

async fn status_with_a_cookie_returns_a_working_csrf_token_and_never_the_token(kind: DbKind) {
    let app = spawn_app(kind).await;
    let anonymous = app.get_json("/api/status", &()).await;
    assert_eq!(anonymous["status"], json!("ok"));
    assert_eq!(anonymous["authenticated"], json!(false));
    let s = app.login_cookie("admin", ADMIN_PASSWORD).await;
    let r = app
        .get_as("/api/status", &header("cookie", &s.cookie))
        .await;
    let text = r.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["authenticated"], json!(true));
    assert!(
        !text.contains(s.cookie.split_once('=').unwrap().1),
        "the raw token is never returned"
    );
    let csrf = body["csrf_token"].as_str().unwrap();
    let r = app
        .post_empty_as(
            "/auth/logout",
            &header("cookie", &s.cookie).and("x-csrf-token", csrf),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let bad = app
        .get_as(
            "/api/status",
            &header("authorization", "Bearer bad.token.here"),
        )
        .await;
    expect_error(bad, StatusCode::UNAUTHORIZED).await;
}

async fn cookie_state_changes_need_this_sessions_csrf_token(kind: DbKind) {
    let app = spawn_app(kind).await;
    let mine = app.login_cookie("admin", ADMIN_PASSWORD).await;
    let other = app.login_cookie("admin", ADMIN_PASSWORD).await;
    let (app_ref, cookie) = (&app, &mine.cookie);
    let logout_all = move |csrf: Option<&str>| {
        let mut who = header("cookie", cookie);
        if let Some(c) = csrf {
            who = who.and("x-csrf-token", c);
        }
        async move { app_ref.post_empty_as("/auth/logout-all", &who).await }
    };
    for csrf in [
        None,
        Some(""),
        Some("forged.token"),
        Some(other.csrf.as_str()),
    ] {
        let body = expect_error(logout_all(csrf).await, StatusCode::FORBIDDEN).await;
        assert_eq!(body["error"], json!("Invalid CSRF token"));
    }
    // No side effect: both sessions still work.
    for s in [&mine, &other] {
        let r = app.get_as("/api/me", &header("cookie", &s.cookie)).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(logout_all(Some(&mine.csrf)).await.status(), StatusCode::OK);
    let r = app
        .get_as("/api/me", &header("cookie", &other.cookie))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn cross_site_state_changes_are_refused(kind: DbKind) {
    let app = spawn_app(kind).await;
    let s = app.login_cookie("admin", ADMIN_PASSWORD).await;
    let host = app.base.trim_start_matches("http://").to_string();
    let attempts = [
        ("origin", "https://evil.test".to_string()),
        ("origin", "null".to_string()),
        ("sec-fetch-site", "cross-site".to_string()),
    ];
    for (name, value) in attempts {
        let r = app
            .post_empty_as("/auth/logout", &(&s, header(name, value)))
            .await;
        expect_error(r, StatusCode::FORBIDDEN).await;
    }
    // A login form posted from another site is refused too (login CSRF).
    let r = app
        .post_as(
            "/auth/login",
            &header("origin", "https://evil.test"),
            json!({ "username": "admin", "password": ADMIN_PASSWORD }),
        )
        .await;
    expect_error(r, StatusCode::FORBIDDEN).await;
    // Same origin passes.
    let same_origin =
        header("origin", format!("http://{host}")).and("sec-fetch-site", "same-origin");
    let r = app.post_empty_as("/auth/logout", &(&s, same_origin)).await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn get_never_changes_state(kind: DbKind) {
    let app = spawn_app(kind).await;
    let s = app.login_cookie("admin", ADMIN_PASSWORD).await;
    for path in [
        "/auth/logout",
        "/auth/logout-all",
        "/api/logout",
        "/auth/login",
        "/auth/refresh",
    ] {
        let r = app.get_as(path, &header("cookie", &s.cookie)).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    let r = app.get_as("/api/me", &header("cookie", &s.cookie)).await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn a_json_body_sent_as_another_type_is_refused_on_every_route(kind: DbKind) {
    let app = spawn_app(kind).await;
    let s = app.login_cookie("admin", ADMIN_PASSWORD).await;
    let sessions_before = conversations(&app, &s).await;
    // Every state-changing route of the route table, as a cookie-authenticated browser would call it.
    let routes: Vec<(reqwest::Method, String)> = warden::http::system::ROUTES
        .iter()
        .filter(|(m, _, _, _)| ["post", "put", "patch", "delete"].contains(m))
        .map(|(m, p, _, _)| {
            (
                m.to_uppercase().parse().unwrap(),
                p.replace("{id}", "x")
                    .replace("{tool}", "add")
                    .replace("{name}", "x"),
            )
        })
        .collect();
    assert!(routes.len() >= 15, "{routes:?}");
    for content_type in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "multipart/form-data; boundary=x",
    ] {
        for (method, path) in &routes {
            let r = app
                .request_body_as(
                    method.clone(),
                    path,
                    &(&s, header("content-type", content_type)),
                    r#"{"title":"forged","messages":[{"role":"user","content":"hi"}]}"#,
                )
                .await;
            expect_error(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        }
    }
    // No body at all is still fine where the body is optional, and nothing above changed state.
    assert_eq!(conversations(&app, &s).await, sessions_before);
    let r = app.post_empty_as("/chat/session/new", &s).await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn a_request_with_two_different_credentials_is_refused(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    app.create_user("mallory", "mallory-password", "user").await;
    let mallory = app.login("mallory", "mallory-password").await;
    let mallory_browser = app.login_cookie("mallory", "mallory-password").await;

    let two_bearers = || {
        header("authorization", format!("Bearer {}", mallory.access))
            .and("authorization", format!("Bearer {}", admin.access))
    };
    let two_authorizations = app.get_as("/api/me", &two_bearers()).await;
    let bearer_and_cookie = app
        .get_as(
            "/api/me",
            &(&admin, header("cookie", &mallory_browser.cookie)),
        )
        .await;
    let authorization_and_access_token_header = app
        .get_as(
            "/api/me",
            &(&mallory, header("x-access-token", &admin.access)),
        )
        .await;
    let two_cookies = app
        .get_as(
            "/api/me",
            &header(
                "cookie",
                format!("{}; auth_token={}", mallory_browser.cookie, "x"),
            ),
        )
        .await;
    let mcp_with_two = app
        .post_as(
            "/mcp",
            &two_bearers().and("accept", "application/json, text/event-stream"),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        .await;
    for r in [
        two_authorizations,
        bearer_and_cookie,
        authorization_and_access_token_header,
        two_cookies,
    ] {
        let body = expect_error(r, StatusCode::BAD_REQUEST).await;
        assert!(
            body["error"].as_str().unwrap().contains("Ambiguous"),
            "{body}"
        );
    }
    assert_eq!(mcp_with_two.status(), StatusCode::BAD_REQUEST);

    // The same token in both of the seed's headers is one credential.
    let same_twice = app
        .get_as(
            "/api/me",
            &(&admin, header("x-access-token", &admin.access)),
        )
        .await;
    assert_eq!(same_twice.status(), StatusCode::OK);
    // Logout naming another session in its body than the credential sent ends neither.
    let r = app
        .post_as(
            "/auth/logout",
            &admin,
            json!({ "refresh_token": mallory.refresh }),
        )
        .await;
    expect_error(r, StatusCode::BAD_REQUEST).await;
    for token in [&admin.access, &mallory.access] {
        assert_eq!(
            app.get_bearer("/api/me", token).await.status(),
            StatusCode::OK
        );
    }
}

async fn conversations(app: &TestApp, s: &BrowserSession) -> Value {
    let r = app
        .get_as("/chat/sessions", &header("cookie", &s.cookie))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    json_of(r).await
}

async fn an_unused_browser_session_ends_after_the_idle_timeout(kind: DbKind) {
    let app = spawn_app(kind).await; // SESSION_IDLE_MINUTES defaults to 30
    let s = app.login_cookie("admin", ADMIN_PASSWORD).await;
    let cookie = header("cookie", &s.cookie);
    let last_seen = |app: &TestApp| {
        let pool = app.db().pool.clone();
        async move {
            let (seen,): (Option<i64>,) = sqlx::query_as("SELECT last_seen_at FROM sessions")
                .fetch_one(&pool)
                .await
                .unwrap();
            seen
        }
    };
    let minutes = |m: u64| std::time::Duration::from_secs(m * 60);

    // Requests within a minute of the last stored activity write nothing (the sync runs every second).
    for _ in 0..3 {
        app.clock.advance(std::time::Duration::from_secs(10));
        assert_eq!(
            app.get_as("/api/me", &cookie).await.status(),
            StatusCode::OK
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(last_seen(&app).await, None, "no database write per request");

    // Activity keeps the session alive well past 30 minutes from the login ...
    app.clock.advance(minutes(29));
    assert_eq!(
        app.get_as("/api/me", &cookie).await.status(),
        StatusCode::OK
    );
    let seen_at = app.clock.now_ms();
    assert!(
        TestApp::eventually(|| async { last_seen(&app).await == Some(seen_at) }).await,
        "activity a minute newer than the stored time is written by the next sync"
    );
    // ... and survives a restart, which reads the activity back from the database.
    let app = app.restart().await;
    app.clock.advance(minutes(29));
    assert_eq!(
        app.get_as("/api/me", &cookie).await.status(),
        StatusCode::OK
    );

    // Unused for 30 minutes and a second: ended, for good.
    app.clock
        .advance(minutes(30) + std::time::Duration::from_secs(1));
    expect_error(
        app.get_as("/api/me", &cookie).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    app.clock.advance(std::time::Duration::from_secs(1));
    expect_error(
        app.get_as("/api/me", &cookie).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let (reason,): (Option<String>,) = sqlx::query_as("SELECT revoke_reason FROM sessions")
        .fetch_one(&app.db().pool)
        .await
        .unwrap();
    assert_eq!(reason.as_deref(), Some("idle_timeout"));
}
