//! Brute force (security.md case 18): per-account lock with growing windows, per-address 429, and
//! X-Forwarded-For trusted only from configured proxies.

use std::time::Duration;

use crate::helpers::prelude::*;

db_tests!(
    past_the_threshold_the_right_password_fails_until_the_lock_lifts,
    repeated_locks_grow_longer,
    a_flood_from_one_address_gets_429_with_retry_after,
    forwarded_addresses_count_only_behind_trusted_proxies,
);

async fn past_the_threshold_the_right_password_fails_until_the_lock_lifts(kind: DbKind) {
    let app = spawn_app_with(
        kind,
        &[("LOGIN_MAX_FAILURES", "3"), ("LOGIN_LOCK_SECONDS", "60")],
    )
    .await;
    app.create_user("lena", "lena-password", "user").await;
    for _ in 0..3 {
        assert_eq!(
            app.login_raw("lena", "wrong").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Other spellings of the name share the counter.
    let body = expect_error(
        app.login_raw("LENA", "lena-password").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(body["error"], json!("Invalid username or password"));
    app.clock.advance(Duration::from_secs(59));
    assert_eq!(
        app.login_raw("lena", "lena-password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.clock.advance(Duration::from_secs(121));
    app.login("lena", "lena-password").await;
    // Success resets the counter: one failure does not lock again.
    app.login_raw("lena", "wrong").await;
    app.login("lena", "lena-password").await;
}

async fn repeated_locks_grow_longer(kind: DbKind) {
    let app = spawn_app_with(
        kind,
        &[("LOGIN_MAX_FAILURES", "2"), ("LOGIN_LOCK_SECONDS", "60")],
    )
    .await;
    app.create_user("moe", "moe-password", "user").await;
    for _ in 0..2 {
        app.login_raw("moe", "wrong").await;
    }
    app.clock.advance(Duration::from_secs(61));
    // One more failure after the first lock locks again, for twice as long.
    app.login_raw("moe", "wrong").await;
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(
        app.login_raw("moe", "moe-password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.clock.advance(Duration::from_secs(60));
    app.login("moe", "moe-password").await;
}

async fn a_flood_from_one_address_gets_429_with_retry_after(kind: DbKind) {
    let app = spawn_app_with(kind, &[("LOGIN_IP_PER_MINUTE", "4")]).await;
    for i in 0..4 {
        assert_eq!(
            app.login_raw(&format!("user{i}"), "wrong").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = app.login_raw("admin", crate::helpers::ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    expect_error(r, StatusCode::TOO_MANY_REQUESTS).await;
    app.clock.advance(Duration::from_secs(61));
    app.admin().await;
}

async fn forwarded_addresses_count_only_behind_trusted_proxies(kind: DbKind) {
    let login_from = |app: &crate::helpers::TestApp, forwarded: String| {
        app.client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "username": "nobody", "password": "wrong" }))
            .send()
    };
    // Untrusted peer: a forged X-Forwarded-For changes nothing; the peer address is limited.
    let app = spawn_app_with(kind, &[("LOGIN_IP_PER_MINUTE", "2")]).await;
    let statuses: Vec<StatusCode> =
        futures::future::join_all((0..4).map(|i| login_from(&app, format!("203.0.113.{i}"))))
            .await
            .into_iter()
            .map(|r| r.unwrap().status())
            .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        2,
        "{statuses:?}"
    );
    drop(app);

    // Trusted proxy (loopback): each forwarded client has its own budget.
    let app = spawn_app_with(
        kind,
        &[
            ("LOGIN_IP_PER_MINUTE", "2"),
            ("TRUSTED_PROXIES", "127.0.0.1/32,::1"),
        ],
    )
    .await;
    for i in 0..4 {
        let r = login_from(&app, format!("198.51.100.7, 203.0.113.{i}"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    for _ in 0..2 {
        login_from(&app, "203.0.113.50".into()).await.unwrap();
    }
    assert_eq!(
        login_from(&app, "203.0.113.50".into())
            .await
            .unwrap()
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}
