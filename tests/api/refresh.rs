//! Refresh tokens and verify: rotation, reuse revoking the family, concurrent refreshes with one winner,
//! the idle timeout, and the seed shape of `/auth/verify`.

use crate::helpers::prelude::*;

db_tests! {
    refresh_rotates_and_reuse_revokes_the_whole_family,
    sixteen_concurrent_refreshes_of_one_token_have_exactly_one_winner,
    verify_reports_valid_and_invalid_tokens_in_the_seed_shape,
    an_unused_refresh_family_ends_after_the_idle_timeout,
}

async fn refresh_rotates_and_reuse_revokes_the_whole_family(kind: DbKind) {
    let app = spawn_app(kind).await;
    let first = app.admin().await;
    let r = app
        .post("/auth/refresh", json!({ "refresh_token": first.refresh }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let second = json_of(r).await;
    let second_refresh = second["refresh_token"].as_str().unwrap().to_string();
    let second_access = second["access_token"].as_str().unwrap().to_string();
    assert_ne!(second_refresh, first.refresh);
    assert_eq!(
        app.get_bearer("/api/me", &second_access).await.status(),
        StatusCode::OK
    );

    // A retry within the grace window only fails; later, replaying the first refresh token is theft and
    // the family (session) ends.
    expect_error(
        app.post("/auth/refresh", json!({ "refresh_token": first.refresh }))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        app.get_bearer("/api/me", &second_access).await.status(),
        StatusCode::OK
    );
    app.clock.advance(std::time::Duration::from_secs(3));
    let replay = app
        .post("/auth/refresh", json!({ "refresh_token": first.refresh }))
        .await;
    expect_error(replay, StatusCode::UNAUTHORIZED).await;
    let after = app
        .post("/auth/refresh", json!({ "refresh_token": second_refresh }))
        .await;
    expect_error(after, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        app.get_bearer("/api/me", &second_access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_bearer("/api/me", &first.access).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let garbage = app
        .post("/auth/refresh", json!({ "refresh_token": "not-a-token" }))
        .await;
    expect_error(garbage, StatusCode::UNAUTHORIZED).await;
    let missing = app.post("/auth/refresh", json!({})).await;
    expect_error(missing, StatusCode::UNPROCESSABLE_ENTITY).await;
}

async fn sixteen_concurrent_refreshes_of_one_token_have_exactly_one_winner(kind: DbKind) {
    let app = spawn_app(kind).await;
    let tokens = app.admin().await;
    let attempts = (0..16).map(|_| {
        let client = app.client.clone();
        let url = app.url("/auth/refresh");
        let refresh = tokens.refresh.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({ "refresh_token": refresh }))
                .send()
                .await
                .unwrap()
                .status()
        })
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let winners = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(winners, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
}

async fn verify_reports_valid_and_invalid_tokens_in_the_seed_shape(kind: DbKind) {
    let app = spawn_app(kind).await;
    let tokens = app.admin().await;
    let r = app
        .post("/auth/verify", json!({ "token": tokens.access }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    assert_eq!(body["valid"], json!(true));
    assert_eq!(body["user_id"], json!(tokens.user_id));
    assert_eq!(body["username"], json!("admin"));
    assert_eq!(body["message"], json!("Token is valid"));

    let r = app
        .post("/auth/verify", json!({ "token": "abc.def.ghi" }))
        .await;
    let body = json_of(r).await;
    assert_eq!(
        body,
        json!({ "valid": false, "message": "Invalid or expired token" })
    );
    let r = app
        .post("/auth/verify", json!({ "token": tokens.refresh }))
        .await;
    assert_eq!(
        json_of(r).await["valid"],
        json!(false),
        "a refresh token is not an access token"
    );
    expect_error(
        app.post("/auth/verify", json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

async fn an_unused_refresh_family_ends_after_the_idle_timeout(kind: DbKind) {
    let app = spawn_app_with(kind, &[("SESSION_IDLE_MINUTES", "30")]).await;
    let minutes = |m: u64| std::time::Duration::from_secs(m * 60);
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.post("/auth/refresh", json!({ "refresh_token": token }))
                .await
        }
    };
    let t = app.admin().await;

    // Refreshing keeps the family alive; so does using its access token (15 minutes by default).
    app.clock.advance(minutes(29));
    let r = refresh(t.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    let access = body["access_token"].as_str().unwrap().to_string();
    app.clock.advance(minutes(14));
    assert_eq!(
        app.get_bearer("/api/me", &access).await.status(),
        StatusCode::OK
    );
    app.clock.advance(minutes(29));
    let r = refresh(body["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "72 minutes after the login, 29 after the last use"
    );
    let body = json_of(r).await;

    // Unused for 30 minutes and a second: the refresh token fails and the family is ended.
    app.clock
        .advance(minutes(30) + std::time::Duration::from_secs(1));
    let stale = body["refresh_token"].as_str().unwrap().to_string();
    expect_error(refresh(stale).await, StatusCode::UNAUTHORIZED).await;
    let revoked: Vec<(Option<String>,)> =
        sqlx::query_as("SELECT revoke_reason FROM sessions WHERE revoke_reason IS NOT NULL")
            .fetch_all(&app.db().pool)
            .await
            .unwrap();
    assert_eq!(revoked, vec![(Some("idle_timeout".to_string()),)]);
}
