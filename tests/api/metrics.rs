//! `GET /metrics`: the exposition is read with the official Python client's parser (`prometheus_client`, in
//! the venv `.ci/run` makes; WARDEN_TEST_PYTHON). Without it the parsing tests are not run and say so, unless
//! WARDEN_REQUIRE_PEERS=1 (as in CI), where they fail.
//!
//! The recorder is process-wide; nextest runs each test in its own process, and every assertion is a
//! difference between two scrapes of one app, or a label only this test makes.

use std::{collections::BTreeMap, io::Write, process::Stdio};

use crate::{
    helpers::{build_in, prelude::*},
    llm_mock::{Mock, openai_app, openai_text},
};

db_tests!(
    sms_calls_show_by_kind_and_outcome,
    logins_failures_and_requests_show_in_the_parsed_metrics,
    metrics_need_a_credential_with_metrics_read,
    llm_latency_and_tokens_show_by_provider_and_model,
);

/// (name, labels, value) as the Python parser reads them.
type Sample = (String, BTreeMap<String, String>, f64);

fn parser_python() -> Option<String> {
    crate::helpers::peer_python(
        "Prometheus parser (prometheus_client)",
        "prometheus_client.parser",
    )
}

fn parse(python: &str, text: &str) -> Vec<Sample> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/prometheus_parse.py"
    );
    let mut child = std::process::Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the parser starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the parser prints JSON")
}

/// The value of the sample `name` whose labels include `labels`; 0 when there is none.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

async fn scrape(app: &TestApp, token: &str) -> String {
    let r = app.get_bearer("/metrics", token).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    r.text().await.unwrap()
}

async fn logins_failures_and_requests_show_in_the_parsed_metrics(kind: DbKind) {
    let Some(python) = parser_python() else {
        return;
    };
    // Arrange
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let before = parse(&python, &scrape(&app, &admin.access).await);

    // Act: 3 logins, 2 refused, 2 reads of one user under its template.
    for _ in 0..3 {
        app.admin().await;
    }
    for _ in 0..2 {
        let r = app.login_raw("admin", "not-the-password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let user_path = format!("/api/users/{}", admin.user_id);
    for _ in 0..2 {
        let r = app.get_bearer(&user_path, &admin.access).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = app.get("/no/such/route/42").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Two tool calls through the REST execute route: one succeeds, one fails on its arguments.
    for a in [json!(1), json!("x")] {
        let r = app
            .client
            .post(app.url("/api/servers/builtin/tools/add/execute"))
            .bearer_auth(&admin.access)
            .json(&json!({ "parameters": { "a": a, "b": 2 } }))
            .send()
            .await
            .unwrap();
        assert!(!r.status().is_server_error(), "{}", r.status());
    }
    app.state.tool_log.flush().await;
    let text = scrape(&app, &admin.access).await;
    let after = parse(&python, &text);

    // Assert
    let delta = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(delta("warden_logins_total", &[]), 3.0);
    assert_eq!(
        delta("warden_login_failures_total", &[("reason", "failure")]),
        2.0
    );
    let user_route = [
        ("route", "/api/users/{id}"),
        ("method", "GET"),
        ("status", "200"),
        ("class", "2xx"),
    ];
    assert_eq!(delta("warden_http_requests_total", &user_route), 2.0);
    assert_eq!(
        delta(
            "warden_http_request_duration_seconds_count",
            &[("route", "/api/users/{id}"), ("method", "GET")]
        ),
        2.0
    );
    assert_eq!(
        delta(
            "warden_http_requests_total",
            &[("route", "/auth/login"), ("status", "401")]
        ),
        2.0
    );
    assert!(
        value(
            &after,
            "warden_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ) >= 1.0
    );
    // Bounded labels: no raw path is a label value.
    assert!(!text.contains(&admin.user_id), "{text}");
    assert!(!text.contains("/no/such/route"), "{text}");
    // State read at scrape time and the sampled session gauge are there.
    assert_eq!(
        value(
            &after,
            "warden_background_dropped_total",
            &[("queue", "audit")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &after,
            "warden_background_dropped_total",
            &[("queue", "tool_log")]
        ),
        0.0
    );
    assert!(after.iter().any(|(n, _, _)| n == "warden_sessions_active"));
    assert_eq!(
        delta(
            "warden_tool_calls_total",
            &[("tool", "add"), ("status", "success")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "warden_tool_calls_total",
            &[("tool", "add"), ("status", "error")]
        ),
        1.0
    );
}

async fn llm_latency_and_tokens_show_by_provider_and_model(kind: DbKind) {
    let Some(python) = parser_python() else {
        return;
    };
    // Arrange: an OpenAI-compatible model that answers twice with known usage.
    let mock = Mock::default();
    mock.push(openai_text("one", 12, 3));
    mock.push(openai_text("two", 8, 2));
    let app = openai_app(kind, &mock, &[]).await;
    let admin = app.admin().await;
    let sid = new_session(&app, &admin.access).await;

    // Act
    for text in ["hi", "again"] {
        let r = send(&app, &admin.access, &sid, text).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let samples = parse(&python, &scrape(&app, &admin.access).await);

    // Assert
    let model = [("model", "mock-model")];
    let tokens = |kind: &str| {
        value(
            &samples,
            "warden_llm_tokens_total",
            &[("model", "mock-model"), ("kind", kind)],
        )
    };
    assert_eq!(tokens("prompt"), 20.0);
    assert_eq!(tokens("completion"), 5.0);
    assert_eq!(
        value(
            &samples,
            "warden_llm_request_duration_seconds_count",
            &[("model", "mock-model"), ("outcome", "ok")]
        ),
        2.0
    );
    let provider = samples
        .iter()
        .find(|(n, l, _)| {
            n == "warden_llm_tokens_total" && l.get("model").map(String::as_str) == Some(model[0].1)
        })
        .map(|(_, l, _)| l["provider"].clone())
        .unwrap();
    assert!(!provider.is_empty());
}

async fn metrics_need_a_credential_with_metrics_read(kind: DbKind) {
    // Arrange: a plain user and a role that holds only metrics:read.
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    app.create_user("plain", "plain-password", "user").await;
    let plain = app.login("plain", "plain-password").await;
    let r = app
        .post_as(
            "/api/permissions",
            &admin,
            json!({ "role": "scraper", "permissions": ["metrics:read"] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.create_user("prom", "prom-password", "scraper").await;
    let prom = app.login("prom", "prom-password").await;

    // Act / Assert
    assert_eq!(app.get("/metrics").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get_bearer("/metrics", &plain.access).await.status(),
        StatusCode::FORBIDDEN
    );
    let text = scrape(&app, &prom.access).await;
    assert!(text.contains("warden_logins_total"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_metrics_bind_metrics_are_served_there_openly_and_not_on_the_api() {
    // Arrange: an app with METRICS_BIND on its own port.
    let dir = tempfile::tempdir().unwrap();
    let app = build_in(
        dir.path(),
        &[
            ("METRICS_BIND", "127.0.0.1:0"),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD),
        ],
    )
    .await;
    let (api, metrics) = (app.addr, app.metrics_addr.expect("a metrics listener"));
    let stop = app.shutdown_handle();
    let server = tokio::spawn(app.run());
    let client = reqwest::Client::new();

    // Act
    let login = client
        .post(format!("http://{api}/auth/login"))
        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    let token = json_of(login).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let open = client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    let on_api = client
        .get(format!("http://{api}/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(open.status(), StatusCode::OK);
    let text = open.text().await.unwrap();
    if let Some(python) = parser_python() {
        let samples = parse(&python, &text);
        assert_eq!(value(&samples, "warden_logins_total", &[]), 1.0);
    }
    assert_eq!(on_api.status(), StatusCode::NOT_FOUND);
    stop.cancel();
    server.await.unwrap().unwrap();
}

async fn sms_calls_show_by_kind_and_outcome(kind: DbKind) {
    let Some(python) = parser_python() else {
        return;
    };
    // Arrange: the console provider, one message an hour per user.
    let app = spawn_app_with(kind, &[("SMS_USER_PER_HOUR", "1")]).await;
    let admin = app.admin().await;
    let who = crate::sms::user_with(&app, "texter", &["sms:send"]).await;
    let before = parse(&python, &scrape(&app, &admin.access).await);

    // Act: one message sent, the next refused by the limit, one number that cannot be one (no provider call).
    for (number, status) in [
        ("+1 555 010 0001", StatusCode::OK),
        ("+1 555 010 0002", StatusCode::TOO_MANY_REQUESTS),
        ("555-CALL-NOW", StatusCode::BAD_REQUEST),
    ] {
        let r = app
            .post_as(
                "/api/sms/send-sms",
                &who,
                json!({ "phone_number": number, "message": "hi" }),
            )
            .await;
        assert_eq!(r.status(), status, "{number}");
    }
    let after = parse(&python, &scrape(&app, &admin.access).await);

    // Assert
    let delta = |labels: &[(&str, &str)]| {
        value(&after, "warden_sms_calls_total", labels)
            - value(&before, "warden_sms_calls_total", labels)
    };
    assert_eq!(delta(&[("kind", "sms"), ("outcome", "ok")]), 1.0);
    assert_eq!(delta(&[("kind", "sms"), ("outcome", "refused")]), 1.0);
    assert_eq!(delta(&[]), 2.0, "the invalid number reached no provider");
}
