//! Ending sessions: logout (by access token or by refresh token in the body), logout-all, and a password
//! change ending the other sessions.

use crate::helpers::prelude::*;

db_tests! {
    logout_ends_the_access_token_the_refresh_token_and_verify, seed_003_logout_with_a_token_in_the_body_works,
    logout_all_ends_every_session, changing_ones_password_ends_the_other_sessions_only,
}

async fn logout_ends_the_access_token_the_refresh_token_and_verify(kind: DbKind) {
    let app = spawn_app(kind).await;
    let tokens = app.admin().await;
    let r = app.post_empty_as("/auth/logout", &tokens.access).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        json_of(r).await,
        json!({ "success": true, "message": "Logged out successfully" })
    );
    expect_refused(&app, &tokens.access).await;
    expect_error(
        app.post("/auth/refresh", json!({ "refresh_token": tokens.refresh }))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let v = json_of(
        app.post("/auth/verify", json!({ "token": tokens.access }))
            .await,
    )
    .await;
    assert_eq!(v["valid"], json!(false));
    // Logging out again, or with nothing, is a 401.
    expect_error(
        app.post_empty_as("/auth/logout", &tokens.access).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_error(
        app.post_empty("/api/logout").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn seed_003_logout_with_a_token_in_the_body_works(kind: DbKind) {
    let app = spawn_app(kind).await;
    let tokens = app.admin().await;
    let r = app
        .post("/auth/logout", json!({ "token": tokens.access }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.get_bearer("/api/me", &tokens.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // And by refresh token.
    let other = app.admin().await;
    assert_eq!(
        app.post("/api/logout", json!({ "refresh_token": other.refresh }))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_bearer("/api/me", &other.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn logout_all_ends_every_session(kind: DbKind) {
    let app = spawn_app(kind).await;
    let a = app.admin().await;
    let b = app.admin().await;
    let browser = app.login_cookie("admin", ADMIN_PASSWORD).await;
    let r = app.post_empty_as("/auth/logout-all", &a.access).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["sessions_ended"], json!(3));
    for t in [&a.access, &b.access] {
        assert_eq!(
            app.get_bearer("/api/me", t).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = app.get_as("/api/me", &browser).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    expect_error(
        app.post("/auth/refresh", json!({ "refresh_token": b.refresh }))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_error(
        app.post_empty("/auth/logout-all").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn changing_ones_password_ends_the_other_sessions_only(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("carol", "carol-password-1", "user").await;
    let here = app.login("carol", "carol-password-1").await;
    let elsewhere = app.login("carol", "carol-password-1").await;
    let change = |current: &str, new: &str| {
        app.client
            .post(app.url("/api/me/password"))
            .bearer_auth(&here.access)
            .json(&json!({ "current_password": current, "new_password": new }))
            .send()
    };
    expect_error(
        change("not-my-password", "carol-password-2").await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_error(
        change("carol-password-1", "short").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        app.get_bearer("/api/me", &elsewhere.access).await.status(),
        StatusCode::OK,
        "failed changes end nothing"
    );

    assert_eq!(
        change("carol-password-1", "carol-password-2")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_bearer("/api/me", &here.access).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_bearer("/api/me", &elsewhere.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    expect_error(
        app.post(
            "/auth/refresh",
            json!({ "refresh_token": elsewhere.refresh }),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        app.login_raw("carol", "carol-password-1").await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.login("carol", "carol-password-2").await;
}
