//! Analytics: the request log written by the edge through its background writer (one row per request, no
//! query strings or credentials, the caller's user id), a full queue that drops and counts instead of blocking,
//! `POST /api/analytics/log-page-view` (validation, CSRF, rate limit) and retention.

use std::time::Duration;

use sqlx::Row;
use warden::clock::Clock;

use crate::helpers::prelude::*;

db_tests!(
    each_request_is_logged_once_with_its_route_status_and_caller_and_no_secrets,
    a_full_request_log_queue_drops_and_counts_without_slowing_requests,
    page_views_are_validated_rate_limited_and_tied_to_the_signed_in_user,
    rows_past_their_retention_window_are_purged_and_newer_ones_kept,
);

/// (method, route, path, status, user_id, error_message) of every request row, oldest first.
type LogRow = (String, String, String, i64, Option<String>, Option<String>);

async fn request_rows(app: &TestApp) -> Vec<LogRow> {
    app.state.analytics.flush().await;
    sqlx::query(
        "SELECT method, route, path, CAST(status_code AS BIGINT) AS status, user_id, error_message \
         FROM request_logs ORDER BY created_at, id",
    )
    .fetch_all(&app.db().pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| {
        (
            r.get("method"),
            r.get("route"),
            r.get("path"),
            r.get("status"),
            r.get("user_id"),
            r.get("error_message"),
        )
    })
    .collect()
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query(sql)
        .fetch_one(&app.db().pool)
        .await
        .unwrap()
        .get(0)
}

async fn each_request_is_logged_once_with_its_route_status_and_caller_and_no_secrets(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    app.state.analytics.flush().await;
    let before = request_rows(&app).await.len();

    let missing = app.get("/no-such-page?token=query-secret-1").await;
    let me = app
        .get_as("/api/me?access_token=query-secret-2", &admin)
        .await;
    let failed = app.login_raw("admin", "wrong-password-secret").await;

    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    let rows = request_rows(&app).await.split_off(before);
    assert_eq!(
        rows,
        [
            (
                "GET".into(),
                "unmatched".into(),
                "/no-such-page".into(),
                404,
                None,
                None
            ),
            (
                "GET".into(),
                "/api/me".into(),
                "/api/me".into(),
                200,
                Some(admin.user_id.clone()),
                None
            ),
            (
                "POST".into(),
                "/auth/login".into(),
                "/auth/login".into(),
                401,
                None,
                None
            ),
        ]
    );
    let text = app.all_table_text().await;
    for secret in [
        "query-secret-1",
        "query-secret-2",
        "wrong-password-secret",
        admin.access.as_str(),
        "Bearer",
    ] {
        assert!(!text.contains(secret), "{secret:?} reached the database");
    }
}

async fn a_full_request_log_queue_drops_and_counts_without_slowing_requests(kind: DbKind) {
    let app = spawn_app_with(kind, &[("ANALYTICS_QUEUE", "1")]).await;
    let admin = app.admin().await;
    app.state.analytics.flush().await;
    let dropped_before = app.state.analytics.dropped();
    const REQUESTS: usize = 60;

    let burst = futures::future::join_all((0..REQUESTS).map(|_| app.get("/health")));
    let answers = tokio::time::timeout(Duration::from_secs(10), burst)
        .await
        .expect("no request waits on the request log");

    assert!(answers.iter().all(|r| r.status() == StatusCode::OK));
    app.state.analytics.flush().await;
    let rows = count(
        &app,
        "SELECT COUNT(*) FROM request_logs WHERE route = '/health'",
    )
    .await;
    let dropped = app.state.analytics.dropped() - dropped_before;
    assert_eq!(rows as u64 + dropped, REQUESTS as u64);
    assert!(dropped > 0, "a one-place queue dropped nothing in a burst");
    let metrics = app.get_as("/metrics", &admin).await.text().await.unwrap();
    let exported = metrics
        .lines()
        .find_map(|l| l.strip_prefix("warden_background_dropped_total{queue=\"request_log\"} "))
        .expect("the request_log queue is exported");
    assert_eq!(
        exported.trim().parse::<u64>().unwrap(),
        dropped + dropped_before
    );
}

async fn page_views_are_validated_rate_limited_and_tied_to_the_signed_in_user(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let browser = app.login_cookie("admin", ADMIN_PASSWORD).await;
    let view = |path: &str| json!({"path": path, "title": "Home", "loadTime": 123.5});

    let anonymous = app
        .post("/api/analytics/log-page-view", view("/anon"))
        .await;
    let bearer = app
        .post_as("/api/analytics/log-page-view", &admin, view("/bearer"))
        .await;
    let cookie = app
        .post_as("/api/analytics/log-page-view", &browser, view("/cookie"))
        .await;
    let no_csrf = app
        .post_as(
            "/api/analytics/log-page-view",
            &header("cookie", browser.cookie.clone()),
            view("/no-csrf"),
        )
        .await;

    assert_eq!(json_of(anonymous).await, json!({"success": true}));
    assert_eq!(bearer.status(), StatusCode::OK);
    assert_eq!(cookie.status(), StatusCode::OK);
    expect_error(no_csrf, StatusCode::FORBIDDEN).await;
    for bad in [
        json!({"path": "x".repeat(513)}),
        json!({"path": ""}),
        json!({"path": "/t", "title": "t".repeat(257)}),
        json!({"path": "/t", "loadTime": -1}),
        json!({"path": "/t", "loadTime": "fast"}),
        json!({"title": "no path"}),
    ] {
        let r = app.post("/api/analytics/log-page-view", bad.clone()).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let broken = app
        .post_body(
            "/api/analytics/log-page-view",
            Some("application/json"),
            "{",
        )
        .await;
    assert_eq!(broken.status(), StatusCode::BAD_REQUEST);
    app.state.analytics.flush().await;
    let stored: Vec<(String, Option<String>, Option<String>)> =
        sqlx::query("SELECT path, title, user_id FROM page_views ORDER BY created_at, id")
            .fetch_all(&app.db().pool)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.get("path"), r.get("title"), r.get("user_id")))
            .collect();
    let home = Some("Home".to_string());
    assert_eq!(
        stored,
        [
            ("/anon".into(), home.clone(), None),
            ("/bearer".into(), home.clone(), Some(admin.user_id.clone())),
            ("/cookie".into(), home, Some(admin.user_id.clone())),
        ]
    );

    // Three accepted so far from this address; 57 more fit in the minute, the next is refused.
    for i in 0..57 {
        let r = app
            .post("/api/analytics/log-page-view", view(&format!("/p{i}")))
            .await;
        assert_eq!(r.status(), StatusCode::OK, "view {i}");
    }
    let over = app
        .post("/api/analytics/log-page-view", view("/over"))
        .await;
    expect_error(over, StatusCode::TOO_MANY_REQUESTS).await;
    app.clock.advance(Duration::from_secs(60));
    let next_minute = app
        .post("/api/analytics/log-page-view", view("/later"))
        .await;
    assert_eq!(next_minute.status(), StatusCode::OK);
}

async fn rows_past_their_retention_window_are_purged_and_newer_ones_kept(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.analytics_settled().await;
    let day = Duration::from_secs(24 * 3600);
    app.get("/old-request").await;
    app.post("/api/analytics/log-page-view", json!({"path": "/old-view"}))
        .await;
    app.clock.advance(day * 31);
    app.get("/newer-request").await;
    app.post(
        "/api/analytics/log-page-view",
        json!({"path": "/newer-view"}),
    )
    .await;
    app.state.analytics.flush().await;

    let purged = app
        .state
        .analytics
        .purge_once(app.clock.now_ms())
        .await
        .unwrap();

    assert!(purged.request_logs >= 1);
    assert_eq!(purged.page_views, 0, "page views are kept 90 days");
    let paths = |table: &'static str| {
        let app = &app;
        async move {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT path FROM {table} ORDER BY created_at"
            )))
            .fetch_all(&app.db().pool)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.get::<String, _>("path"))
            .collect::<Vec<_>>()
        }
    };
    let requests = paths("request_logs").await;
    assert!(!requests.contains(&"/old-request".to_string()));
    assert!(requests.contains(&"/newer-request".to_string()));
    assert_eq!(paths("page_views").await, ["/old-view", "/newer-view"]);

    app.clock.advance(day * 60);
    let purged = app
        .state
        .analytics
        .purge_once(app.clock.now_ms())
        .await
        .unwrap();

    assert_eq!(purged.page_views, 1);
    assert_eq!(paths("page_views").await, ["/newer-view"]);
}
