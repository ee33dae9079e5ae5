//! The analytics dashboards against a generated workload with known answers: counts, error rates, active users
//! and page views exactly; latency percentiles within one histogram bucket; the same figures from minute and
//! from hour rollups. Then the events other services count (tool calls, LLM tokens, SMS), the process's own
//! samples, and rollup retention under a controlled clock.

use std::time::Duration;

use warden::{
    analytics::{RequestRow, rollup::latency_bucket},
    clock::Clock,
};

use crate::helpers::prelude::*;

db_tests!(
    dashboards_answer_a_generated_workload_exactly,
    tool_calls_llm_tokens_and_sms_are_counted_per_tool_user_and_type,
    the_system_overview_holds_this_process_and_its_samples,
    rollups_outlive_the_raw_rows_and_are_purged_on_their_own_windows,
    over_the_row_budget_requests_are_counted_in_rollups_but_not_written_as_rows,
    a_flush_waits_for_a_rollup_write_already_under_way,
);

/// One generated request: (route, status, response ms, user, minutes before now).
struct Generated {
    route: &'static str,
    status: u16,
    ms: f64,
    user: Option<String>,
    minutes_ago: i64,
}

/// 200 requests on `/gen/a` (5% 500s, 10% 404s, 7 users, fast and varied) and 50 on `/gen/b` (slow, no user),
/// spread over the last 50 minutes.
fn workload() -> Vec<Generated> {
    let mut rows = Vec::new();
    for i in 0..200_i64 {
        rows.push(Generated {
            route: "/gen/a",
            status: if i % 20 == 0 {
                500
            } else if i % 10 == 3 {
                404
            } else {
                200
            },
            ms: ((i * 37) % 100) as f64 * 0.7 + 0.2,
            user: (i % 5 != 0).then(|| format!("user-{}", i % 7)),
            minutes_ago: i % 50,
        });
    }
    for i in 0..50_i64 {
        rows.push(Generated {
            route: "/gen/b",
            status: 200,
            ms: 300.0 + i as f64 * 40.0,
            user: None,
            minutes_ago: i % 50,
        });
    }
    rows
}

fn record(app: &TestApp, rows: &[Generated]) {
    let now = app.clock.now_ms();
    for g in rows {
        app.state.analytics.record_request(
            RequestRow {
                method: "GET",
                route: g.route,
                path: g.route.to_string(),
                status: g.status,
                response_time_ms: g.ms,
                request_size: Some(10),
                response_size: Some(100),
                ip: "192.0.2.1".parse().unwrap(),
                user_agent: None,
                referer: None,
                user_id: g.user.clone(),
                error_message: (g.status >= 500).then_some("internal"),
                created_at: now - g.minutes_ago * 60_000 - 1_000,
            },
            true,
        );
    }
}

/// The nearest-rank `q` quantile.
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The reported percentile is in the same histogram bucket as the true one.
fn assert_same_bucket(reported: &Value, truth: f64, what: &str) {
    let reported = reported
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {reported}"));
    assert_eq!(
        latency_bucket(reported),
        latency_bucket(truth),
        "{what}: reported {reported}, true {truth}"
    );
    assert!(
        reported >= truth,
        "{what}: {reported} below the true {truth}"
    );
}

async fn dashboards_answer_a_generated_workload_exactly(kind: DbKind) {
    // Arrange: the generated rows, written through the request writer like real ones.
    let app = spawn_app(kind).await;
    let rows = workload();
    record(&app, &rows);
    app.state.analytics.flush().await;
    let admin = app.admin().await;
    app.state.analytics.flush().await;
    let on = |route: &'static str| rows.iter().filter(move |g| g.route == route);
    let server_errors = rows.iter().filter(|g| g.status >= 500).count() as i64;
    let client_errors = rows
        .iter()
        .filter(|g| (400..500).contains(&g.status))
        .count() as i64;
    let all_ms: Vec<f64> = rows.iter().map(|g| g.ms).collect();

    // Key metrics from minute rollups (1 hour) and from hour rollups (2 days), read before any other request.
    for hours in [1, 48] {
        let m =
            serde_json::to_value(app.state.analytics.key_metrics(hours).await.unwrap()).unwrap();
        assert_eq!(
            m["total_requests"],
            250 + 1,
            "{hours}h: the workload and the admin's login"
        );
        assert_eq!(m["server_errors"], server_errors);
        assert_eq!(m["client_errors"], client_errors);
        assert_eq!(m["active_users"], 7);
        assert_eq!(
            m["window"]["resolution"],
            if hours == 1 { "minute" } else { "hour" }
        );
    }

    // Act: the dashboards over HTTP.
    let routes = app.get_json("/api/analytics/routes?hours=1", &admin).await;
    let errors = app
        .get_json("/api/analytics/error-analysis?hours=1", &admin)
        .await;
    app.state.analytics.flush().await;
    let series = app
        .get_json("/api/analytics/timeseries?hours=1", &admin)
        .await;
    let routes_by_hour = app.get_json("/api/analytics/routes?hours=48", &admin).await;

    // Assert: per route counts exact, error rates exact, percentiles within one bucket.
    for (list, res) in [(&routes, "minute"), (&routes_by_hour, "hour")] {
        assert_eq!(list["success"], true);
        assert_eq!(list["data"]["window"]["resolution"], res);
        for route in ["/gen/a", "/gen/b"] {
            let stats = list["data"]["routes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["route"] == route)
                .unwrap_or_else(|| panic!("{route} missing from {list}"));
            let mine: Vec<&Generated> = on(route).collect();
            let errors = mine.iter().filter(|g| g.status >= 500).count() as i64;
            assert_eq!(stats["requests"], mine.len() as i64);
            assert_eq!(stats["server_errors"], errors);
            assert_eq!(
                stats["error_rate"].as_f64().unwrap(),
                errors as f64 / mine.len() as f64
            );
            let ms: Vec<f64> = mine.iter().map(|g| g.ms).collect();
            for (field, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
                assert_same_bucket(
                    &stats["latency"][field],
                    quantile(&ms, q),
                    &format!("{route} {field} ({res})"),
                );
            }
            let avg = ms.iter().sum::<f64>() / ms.len() as f64;
            assert!((stats["latency"]["avg_ms"].as_f64().unwrap() - avg).abs() < 1e-6);
        }
    }
    let by_route: Vec<&Value> = errors["data"]["by_route"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["route"] == "/gen/a")
        .collect();
    assert_eq!(by_route.len(), 2, "{errors}");
    for e in by_route {
        let expected = on("/gen/a")
            .filter(|g| i64::from(g.status) == e["status_code"].as_i64().unwrap())
            .count() as i64;
        assert_eq!(e["count"], expected);
    }
    let recent = errors["data"]["recent"].as_array().unwrap();
    assert_eq!(recent.len() as i64, server_errors.min(20));
    assert!(
        recent
            .iter()
            .all(|e| e["status_code"] == 500 && e["error_message"] == "internal")
    );
    let generated_series: i64 = series["data"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(
        generated_series,
        250 + 1 + 2,
        "the workload, the login and two dashboards"
    );

    // The whole workload's percentiles, at the library, without the test's own requests: a fresh app.
    let quiet = spawn_app(kind).await;
    record(&quiet, &rows);
    quiet.state.analytics.flush().await;
    for hours in [1, 48] {
        let m =
            serde_json::to_value(quiet.state.analytics.key_metrics(hours).await.unwrap()).unwrap();
        assert_eq!(m["total_requests"], 250);
        assert_eq!(
            m["error_rate"].as_f64().unwrap(),
            server_errors as f64 / 250.0
        );
        for (field, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
            assert_same_bucket(&m["latency"][field], quantile(&all_ms, q), field);
        }
        assert_eq!(m["request_bytes"], 2500);
        assert_eq!(m["response_bytes"], 25_000);
    }
}

async fn tool_calls_llm_tokens_and_sms_are_counted_per_tool_user_and_type(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let execute = |args: Value| {
        app.post_as(
            "/api/servers/builtin/tools/add/execute",
            &admin,
            json!({ "parameters": args }),
        )
    };
    assert_eq!(
        execute(json!({"a": 1, "b": 2})).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        execute(json!({"a": 3, "b": 4})).await.status(),
        StatusCode::OK
    );
    execute(json!({"a": "not a number"})).await;
    let session = new_session(&app, &admin.access).await;
    assert_eq!(
        send(&app, &admin.access, &session, "add 5 and 3")
            .await
            .status(),
        StatusCode::OK
    );
    let sms = app
        .post_as(
            "/api/sms/send-sms",
            &admin,
            json!({ "phone_number": "+15555550100", "message": "hello" }),
        )
        .await;
    assert_eq!(sms.status(), StatusCode::OK, "{:?}", sms.text().await);
    app.state.analytics.flush().await;

    let events = app.get_json("/api/analytics/events?hours=1", &admin).await;

    let calls = |status: &str| {
        events["data"]["tool_calls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["tool"] == "add" && c["status"] == status)
            .map(|c| c["calls"].as_i64().unwrap())
            .sum::<i64>()
    };
    // The chat turn's "add 5 and 3" calls the tool once more.
    assert_eq!(calls("success"), 3, "{events}");
    assert_eq!(calls("error"), 1, "{events}");
    let llm = events["data"]["llm_tokens"].as_array().unwrap();
    assert_eq!(llm.len(), 1, "{events}");
    assert_eq!(llm[0]["user_id"], admin.user_id.as_str());
    assert_eq!(llm[0]["requests"], 1);
    let sms = events["data"]["sms"].as_array().unwrap();
    assert_eq!(sms.len(), 1, "{events}");
    assert_eq!(
        (&sms[0]["type"], &sms[0]["status"], &sms[0]["count"]),
        (&json!("sms"), &json!("ok"), &json!(1))
    );
    let key = app
        .get_json("/api/analytics/key-metrics?hours=1", &admin)
        .await;
    assert_eq!(key["data"]["tool_calls"], 4);
    assert_eq!(key["data"]["sms"], 1);
}

async fn the_system_overview_holds_this_process_and_its_samples(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    app.state.analytics.sample().await.unwrap();
    app.get("/api/status").await;
    app.state.analytics.flush().await;

    let overview = app.get_json("/api/analytics/system-overview", &admin).await;
    let db = app.get_json("/api/analytics/db-status", &admin).await;

    let data = &overview["data"];
    assert!(
        data["system"]["memory_bytes"].as_i64().unwrap() > 1_000_000,
        "{data}"
    );
    assert!(data["system"]["open_files"].as_i64().unwrap() > 0);
    // The background loop samples at start and every minute; the explicit sample is there too.
    let history = data["history"].as_array().unwrap();
    assert!(!history.is_empty(), "{data}");
    assert!(
        history
            .iter()
            .all(|s| s["memory_bytes"].as_i64().unwrap() > 0)
    );
    assert!(data["last_hour"]["total_requests"].as_i64().unwrap() >= 2);
    assert_eq!(data["queue_drops"]["request_log"], 0);
    let expected_db = if kind == DbKind::Sqlite {
        "sqlite"
    } else {
        "postgresql"
    };
    assert_eq!(data["database"], expected_db);
    assert_eq!(db["data"]["database"], expected_db);
    assert_eq!(db["data"]["reachable"], true);
    assert!(db["data"]["pool_size"].as_i64().unwrap() >= 1);
    // Bad windows are refused, not clamped silently.
    let r = app
        .get_as("/api/analytics/key-metrics?hours=0", &admin)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

async fn rollups_outlive_the_raw_rows_and_are_purged_on_their_own_windows(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.analytics_settled().await;
    let day = Duration::from_secs(24 * 3600);
    record(
        &app,
        &[Generated {
            route: "/gen/old",
            status: 200,
            ms: 3.0,
            user: Some("old-user".into()),
            minutes_ago: 0,
        }],
    );
    app.state.analytics.flush().await;
    let count = |sql: &'static str| {
        let app = &app;
        async move {
            let n: i64 = sqlx::query_scalar(sql)
                .fetch_one(&app.db().pool)
                .await
                .unwrap();
            n
        }
    };
    const RAW: &str = "SELECT COUNT(*) FROM request_logs WHERE route = '/gen/old'";
    const MINUTES: &str = "SELECT COUNT(*) FROM request_rollups_minute WHERE route = '/gen/old'";
    const HOURS: &str = "SELECT COUNT(*) FROM request_rollups_hour WHERE route = '/gen/old'";
    assert_eq!(
        (count(RAW).await, count(MINUTES).await, count(HOURS).await),
        (1, 1, 1)
    );

    // 20 days on: minute rollups (14 days) go; the raw row (30) and the hour rollup (400) stay.
    app.clock.advance(day * 20);
    let purged = app
        .state
        .analytics
        .purge_once(app.clock.now_ms())
        .await
        .unwrap();
    assert!(purged.rollups >= 2, "{purged:?}");
    assert_eq!(
        (count(RAW).await, count(MINUTES).await, count(HOURS).await),
        (1, 0, 1)
    );
    let old =
        serde_json::to_value(app.state.analytics.key_metrics(24 * 21).await.unwrap()).unwrap();
    assert_eq!(
        old["total_requests"], 1,
        "the hour rollup still answers for the old request"
    );

    // 31 days: the raw row goes too; 401 days: the hour rollup.
    app.clock.advance(day * 11);
    app.state
        .analytics
        .purge_once(app.clock.now_ms())
        .await
        .unwrap();
    assert_eq!((count(RAW).await, count(HOURS).await), (0, 1));
    app.clock.advance(day * 370);
    app.state
        .analytics
        .purge_once(app.clock.now_ms())
        .await
        .unwrap();
    assert_eq!(count(HOURS).await, 0);
}

async fn over_the_row_budget_requests_are_counted_in_rollups_but_not_written_as_rows(kind: DbKind) {
    // The test clock stands still: every request falls in one second, whose budget is 5 rows.
    let app = spawn_app_with(kind, &[("ANALYTICS_ROWS_PER_SECOND", "5")]).await;
    for _ in 0..20 {
        assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    }
    app.state.analytics.flush().await;

    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM request_logs WHERE route = '/health'")
        .fetch_one(&app.db().pool)
        .await
        .unwrap();
    let (_, routes) = app.state.analytics.routes(1).await.unwrap();
    let health = routes.iter().find(|r| r.route == "/health").unwrap();

    assert_eq!(rows, 5, "raw rows stop at the budget");
    assert_eq!(health.requests, 20, "the rollups count every request");
    assert_eq!(app.state.analytics.over_budget(), 15);
}

/// The upkeep task writes the folded requests every few seconds; a flush that runs meanwhile must wait for that
/// write (which took the fold) instead of finding the fold empty and returning before those rows are stored.
/// CI once read 0 requests right after a flush on a fresh app, whose first upkeep tick had taken them.
async fn a_flush_waits_for_a_rollup_write_already_under_way(kind: DbKind) {
    let app = spawn_app(kind).await;
    let analytics = &app.state.analytics;
    // The app's own requests so far are written first, so only the workload is counted below.
    analytics.flush().await;
    let before = analytics.key_metrics(1).await.unwrap().total_requests;
    let rows = workload();
    record(&app, &rows);
    // The write under way takes the fold and waits on the database; the flush starts while it does.
    let (written, after) = tokio::join!(analytics.write_rollups(), async {
        analytics.flush().await;
        analytics.key_metrics(1).await.unwrap().total_requests
    });
    written.unwrap();
    assert_eq!(after - before, rows.len() as i64);
}
