//! Issue 12 item 3: state shared by the instances of one deployment, two in-process instances on one PostgreSQL
//! database (`TestApp::another_instance`). The login limit is counted in Redis when `REDIS_URL` is set (each test
//! under its own `REDIS_PREFIX` on the shared Redis), per instance without it or while Redis does not answer; an
//! `ask` approval waits in the database, so a decision posted to either instance reaches the turn.

use std::time::{Duration, Instant};

use warden::{clock::Clock, mfa::totp};

use crate::helpers::{postgres_available, prelude::*};
use crate::{mfa::enrol_totp, policy::read_until};

fn redis_url() -> String {
    std::env::var("WARDEN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other test uses.
fn unique_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4())
}

/// A login with an unknown name (so no account lock interferes): 401 while under the limit, 429 over it.
async fn attempt(app: &TestApp, i: usize) -> StatusCode {
    app.login_raw(&format!("ghost{i}"), "wrong-password")
        .await
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_limit_is_counted_across_instances_with_redis() {
    if !postgres_available().await {
        return;
    }
    let (url, prefix) = (redis_url(), unique_prefix());
    let a = spawn_app_with(
        DbKind::Postgres,
        &[
            ("LOGIN_IP_PER_MINUTE", "4"),
            ("REDIS_URL", url.as_str()),
            ("REDIS_PREFIX", prefix.as_str()),
        ],
    )
    .await;
    let b = a.another_instance().await;
    // Four attempts spread over both instances are the limit; the fifth is refused on either.
    for (i, app) in [&a, &b, &a, &b].into_iter().enumerate() {
        assert_eq!(
            attempt(app, i).await,
            StatusCode::UNAUTHORIZED,
            "attempt {i}"
        );
    }
    let refused = a.login_raw("ghost9", "wrong-password").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(attempt(&b, 10).await, StatusCode::TOO_MANY_REQUESTS);
    // The next minute opens again.
    a.clock.advance(Duration::from_secs(60));
    assert_eq!(attempt(&b, 11).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_instance_counts_its_own_logins() {
    if !postgres_available().await {
        return;
    }
    let a = spawn_app_with(DbKind::Postgres, &[("LOGIN_IP_PER_MINUTE", "2")]).await;
    let b = a.another_instance().await;
    assert_eq!(attempt(&a, 0).await, StatusCode::UNAUTHORIZED);
    assert_eq!(attempt(&a, 1).await, StatusCode::UNAUTHORIZED);
    assert_eq!(attempt(&a, 2).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(attempt(&b, 3).await, StatusCode::UNAUTHORIZED);
    assert_eq!(attempt(&b, 4).await, StatusCode::UNAUTHORIZED);
    assert_eq!(attempt(&b, 5).await, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_leaves_logins_limited_per_instance_and_answered_promptly() {
    if !postgres_available().await {
        return;
    }
    // A port nothing listens on: bound, read, and closed again.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let a = spawn_app_with(
        DbKind::Postgres,
        &[
            ("LOGIN_IP_PER_MINUTE", "2"),
            ("REDIS_URL", url.as_str()),
            ("REDIS_PREFIX", "unreachable"),
        ],
    )
    .await;
    let b = a.another_instance().await;
    let mut slowest = Duration::ZERO;
    for (i, (app, expected)) in [
        (&a, StatusCode::UNAUTHORIZED),
        (&a, StatusCode::UNAUTHORIZED),
        (&a, StatusCode::TOO_MANY_REQUESTS),
        (&b, StatusCode::UNAUTHORIZED),
        (&b, StatusCode::UNAUTHORIZED),
        (&b, StatusCode::TOO_MANY_REQUESTS),
    ]
    .into_iter()
    .enumerate()
    {
        let started = Instant::now();
        assert_eq!(attempt(app, i).await, expected, "attempt {i}");
        slowest = slowest.max(started.elapsed());
    }
    // A password check takes its hashing time; Redis adds at most one bounded call (250 ms) to it.
    assert!(
        slowest < Duration::from_secs(2),
        "slowest login {slowest:?}"
    );
}

/// Vic's streamed turn on `a` calling `add` under an `ask` rule, up to its `approval_required` event.
async fn turn_awaiting_approval(a: &TestApp, vic: &str) -> (reqwest::Response, String, String) {
    let sid = new_session(a, vic).await;
    let mut r = a
        .client
        .post(a.url("/chat/message"))
        .bearer_auth(vic)
        .header("accept", "text/event-stream")
        .json(&json!({ "session_id": sid, "message": r#"/call add {"a":5,"b":3}"# }))
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    let events = read_until(&mut r, &mut buffer, "approval_required").await;
    let approval = events.last().unwrap().1["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    (r, buffer, approval)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_posted_to_another_instance_releases_or_refuses_the_turn() {
    if !postgres_available().await {
        return;
    }
    let a = spawn_app(DbKind::Postgres).await;
    let admin = a.admin().await;
    a.create_user("vic", "vic-password", "user").await;
    a.create_user("eve", "eve-password", "user").await;
    let vic = a.login("vic", "vic-password").await;
    let eve = a.login("eve", "eve-password").await;
    let r = a
        .put_as(
            "/api/tool-policies",
            &admin.access,
            json!({ "role": "user", "tool": "add", "decision": "ask" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let b = a.another_instance().await;

    for approve in [true, false] {
        let (mut r, mut buffer, approval) = turn_awaiting_approval(&a, &vic.access).await;
        // Another user's decision on B finds nothing, and the turn on A still waits for its owner.
        let other = b
            .post_as(
                &format!("/chat/approvals/{approval}"),
                &eve.access,
                json!({ "approve": true }),
            )
            .await;
        expect_error(other, StatusCode::NOT_FOUND).await;

        let started = Instant::now();
        let decided = b
            .post_as(
                &format!("/chat/approvals/{approval}"),
                &vic.access,
                json!({ "approve": approve }),
            )
            .await;
        assert_eq!(decided.status(), StatusCode::OK);
        let rest = read_until(&mut r, &mut buffer, "done").await;
        let released = started.elapsed();
        let result = rest.iter().find(|(e, _)| e == "tool_result").unwrap();
        let done = &rest.last().unwrap().1;
        if approve {
            assert_eq!(result.1["result"], json!("8"));
            assert_eq!(done["content"], json!("add: 8"));
        } else {
            assert_eq!(result.1["status"], json!("error"));
            assert!(
                done["content"].as_str().unwrap().contains("refused"),
                "{done}"
            );
        }
        // Released by A's poll of the row (100 ms), not by the five-minute wait ending.
        assert!(
            released < Duration::from_secs(3),
            "released after {released:?}"
        );
        // Decided once: a second decision on either instance finds nothing.
        for app in [&a, &b] {
            let again = app
                .post_as(
                    &format!("/chat/approvals/{approval}"),
                    &vic.access,
                    json!({ "approve": !approve }),
                )
                .await;
            expect_error(again, StatusCode::NOT_FOUND).await;
        }
    }
    // The decisions and who made them reach A's tool-call log as on one instance.
    a.state.tool_log.flush().await;
    let calls: Value = a.get_json("/api/tool-calls", &vic.access).await;
    let decisions: Vec<(Value, Value)> = calls["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["approval"].clone(), c["approver_id"].clone()))
        .collect();
    assert_eq!(
        decisions,
        [
            (json!("refused"), json!(vic.user_id)),
            (json!("approved"), json!(vic.user_id))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_view_limit_is_counted_across_instances_with_redis() {
    if !postgres_available().await {
        return;
    }
    let (url, prefix) = (redis_url(), unique_prefix());
    let a = spawn_app_with(
        DbKind::Postgres,
        &[
            ("REDIS_URL", url.as_str()),
            ("REDIS_PREFIX", prefix.as_str()),
        ],
    )
    .await;
    let b = a.another_instance().await;
    let view = json!({"path": "/home", "title": "Home"});
    // Sixty a minute per address, over both instances together.
    for i in 0..60 {
        let app = if i % 2 == 0 { &a } else { &b };
        let r = app.post("/api/analytics/log-page-view", view.clone()).await;
        assert_eq!(r.status(), StatusCode::OK, "view {i}");
    }
    for app in [&a, &b] {
        let r = app.post("/api/analytics/log-page-view", view.clone()).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_up_approval_verified_on_another_instance_releases_the_turn() {
    if !postgres_available().await {
        return;
    }
    let a = spawn_app(DbKind::Postgres).await;
    let admin = a.admin().await;
    let r = a
        .put_as(
            "/api/tool-policies",
            &admin.access,
            json!({ "role": "user", "tool": "add", "decision": "ask", "step_up": true }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    a.create_user("tia", "tia-password-Kq4", "user").await;
    let tia = a.login("tia", "tia-password-Kq4").await;
    let (secret, _) = enrol_totp(&a, &tia.access, "tia").await;
    let b = a.another_instance().await;
    let (mut r, mut buffer, approval) = turn_awaiting_approval(&a, &tia.access).await;
    let path = format!("/chat/approvals/{approval}");
    // B knows the call is a step-up one: a plain yes is not enough there either.
    let plain = b
        .post_as(&path, &tia.access, json!({ "approve": true }))
        .await;
    expect_error(plain, StatusCode::FORBIDDEN).await;
    // Enrolment spent the current step; the next one approves on B.
    a.clock.advance(Duration::from_secs(30));
    let code = totp::code_at(&secret, totp::step_at(a.clock.now_secs()));
    let decided = b
        .post_as(
            &path,
            &tia.access,
            json!({ "approve": true, "code": code, "method": "totp" }),
        )
        .await;
    assert_eq!(decided.status(), StatusCode::OK);
    let rest = read_until(&mut r, &mut buffer, "done").await;
    assert_eq!(rest.last().unwrap().1["content"], json!("add: 8"));
}

/// The daily token quota is counted from the `usage_daily` rows both instances write: a turn on A that spends the
/// quota leaves none for B, while another user still has theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_token_quota_is_counted_across_instances() {
    if !postgres_available().await {
        return;
    }
    let a = spawn_app_with(DbKind::Postgres, &[("CHAT_DAILY_TOKEN_QUOTA", "10")]).await;
    let b = a.another_instance().await;
    let t = a.admin().await;
    let sid = new_session(&a, &t.access).await;
    // One turn of the built-in model spends more than 10 tokens.
    assert_eq!(
        send(&a, &t.access, &sid, "hello").await.status(),
        StatusCode::OK
    );
    let refused = expect_error(
        send(&b, &t.access, &sid, "hello again").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert_eq!(
        refused["error"],
        json!("Too many requests; try again later")
    );
    let usage: Value = b.get_json("/chat/user/tokens", &t.access).await;
    assert!(
        usage["today"]["tokens_used"].as_i64().unwrap_or(0) >= 10,
        "B sees the tokens A spent: {usage}"
    );
    let carl = a.user_with_conversation("carl").await;
    assert_eq!(
        send(&b, &carl.tokens.access, &carl.conversation, "hello")
            .await
            .status(),
        StatusCode::OK
    );
}
