//! Restarts and several instances on one database: sessions, refresh tokens and lockouts survive a restart;
//! revocations and role changes reach another instance within seconds.

use crate::helpers::prelude::*;

db_tests! {
    a_restart_keeps_sessions_refresh_tokens_and_lockouts,
    another_instance_sees_revocations_and_role_changes_within_seconds,
}

async fn a_restart_keeps_sessions_refresh_tokens_and_lockouts(kind: DbKind) {
    let app = spawn_app_with(kind, &[("LOGIN_MAX_FAILURES", "2")]).await;
    app.create_user("nina", "nina-password", "user").await;
    let t = app.admin().await;
    let revoked = app.admin().await;
    let browser = app.login_cookie("admin", ADMIN_PASSWORD).await;
    app.post_empty_as("/auth/logout", &revoked.access).await;
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
    let r = app.get_as("/api/me", &browser).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.post_empty_as("/auth/logout", &browser).await;
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
        .post_as(
            "/api/permissions",
            &admin.access,
            json!({ "role": "user", "permissions": ["chat:use", "users:manage"] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        TestApp::eventually(|| async {
            b.get_bearer("/api/users", &uma.access).await.status() == StatusCode::OK
        })
        .await
    );

    a.post_empty_as("/auth/logout", &uma.access).await;
    assert!(
        TestApp::eventually(|| async {
            b.get_bearer("/api/me", &uma.access).await.status() == StatusCode::UNAUTHORIZED
        })
        .await
    );
}
