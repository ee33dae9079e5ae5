//! Ending sessions through the auth service: every way a session ends writes an audit event, and the
//! credential it named stops working at once.

use crate::helpers::prelude::*;

db_tests!(
    logout_by_refresh_token_ends_the_session_and_writes_an_audit_event,
    an_unknown_refresh_token_logs_nothing_out,
    a_browser_that_logs_in_again_ends_its_old_session_and_says_so_in_the_audit,
);

/// `(outcome, actor_id, detail)` of every audit event with this name, oldest first.
async fn audit_events(app: &TestApp, event: &str) -> Vec<(String, Option<String>, String)> {
    app.state.audit.flush().await;
    sqlx::query_as(
        "SELECT outcome, actor_id, detail FROM audit_events WHERE event = $1 ORDER BY at",
    )
    .bind(event)
    .fetch_all(&app.db().pool)
    .await
    .unwrap()
}

async fn logout_by_refresh_token_ends_the_session_and_writes_an_audit_event(kind: DbKind) {
    // Arrange
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    assert!(audit_events(&app, "logout").await.is_empty());

    // Act
    let r = app
        .post("/auth/logout", json!({ "refresh_token": admin.refresh }))
        .await;

    // Assert
    assert_eq!(r.status(), StatusCode::OK);
    let events = audit_events(&app, "logout").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let (outcome, actor, detail) = &events[0];
    assert_eq!(outcome, "ok");
    assert_eq!(actor.as_deref(), Some(admin.user_id.as_str()));
    assert!(detail.contains("refresh_token"), "{detail}");
    let r = app.get_bearer("/api/me", &admin.access).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn an_unknown_refresh_token_logs_nothing_out(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;

    let r = app
        .post(
            "/auth/logout",
            json!({ "refresh_token": "not-a-token-we-issued" }),
        )
        .await;

    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(audit_events(&app, "logout").await.is_empty());
    let r = app.get_bearer("/api/me", &admin.access).await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn a_browser_that_logs_in_again_ends_its_old_session_and_says_so_in_the_audit(kind: DbKind) {
    // Arrange
    let app = spawn_app(kind).await;
    let admin_id = app.admin().await.user_id;
    let old = app
        .login_cookie("admin", crate::helpers::ADMIN_PASSWORD)
        .await;

    // Act: the browser logs in again, still sending its old cookie.
    let r = app.post_as("/auth/login", &header("cookie", &old.cookie), json!({ "username": "admin", "password": crate::helpers::ADMIN_PASSWORD, "mode": "cookie" })).await;

    // Assert
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.get_as("/api/me", &header("cookie", &old.cookie)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let events = audit_events(&app, "session.replaced").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "ok");
    assert_eq!(events[0].1.as_deref(), Some(admin_id.as_str()));
}
