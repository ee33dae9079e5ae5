//! The SMS routes (issue 9): seed 001's routes under `/api/sms/` and `/api/whatsapp/`, with the Telesign mock
//! and with the console provider; the limits against SMS pumping, counted from the transaction log; signed
//! delivery receipts; the admin view of the log; the agent's SMS tools. No reply, row or log line holds a code
//! or a full number.

use std::time::Duration;

use warden::sms::telesign::{
    mock::{self, Failure, MockHandle, MockSettings},
    sign,
};

use crate::helpers::{Tokens, prelude::*};

db_tests!(
    a_telesign_send_reaches_the_mock_signed_and_is_logged_masked,
    status_polls_and_signed_receipts_update_the_final_status,
    verify_phone_and_assess_risk_answer_the_seed_shapes,
    provider_refusals_and_outages_are_clear_errors,
    a_telesign_verification_code_is_checked_server_side_only,
    the_console_provider_serves_the_same_flows,
    sms_pumping_is_refused_by_the_limits_and_the_country_list,
    the_admin_view_filters_and_summarises_and_is_admin_only,
    the_agent_tools_need_the_sms_permission_too,
    whatsapp_only_routes_answer_501_and_seed_paths_work,
    of_twelve_concurrent_sends_only_the_limit_get_through,
    the_limits_hold_across_instances_and_restarts,
    lookups_are_limited_per_user,
    the_mocks_own_signed_receipt_reaches_warden,
);

pub const CUSTOMER: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";
pub const KEY: &str =
    "EXAMPLE----TE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw==";
const PHONE: &str = "+1 (555) 867-5309";
const DIGITS: &str = "15558675309";

pub async fn start_mock() -> MockHandle {
    mock::start(MockSettings::new(CUSTOMER, KEY)).await.unwrap()
}

/// The app on the Telesign mock.
pub async fn telesign_app(kind: DbKind, mock: &MockHandle, extra: &[(&str, &str)]) -> TestApp {
    let url = mock.url();
    let mut settings = vec![
        ("SMS_PROVIDER", "telesign"),
        ("TELESIGN_CUSTOMER_ID", CUSTOMER),
        ("TELESIGN_API_KEY", KEY),
        ("TELESIGN_API_URL", url.as_str()),
        ("TELESIGN_INTELLIGENCE_URL", url.as_str()),
        ("TELESIGN_VERIFY_URL", url.as_str()),
    ];
    settings.extend_from_slice(extra);
    spawn_app_with(kind, &settings).await
}

/// A user whose role holds `permissions`; returns its tokens.
pub async fn user_with(app: &TestApp, name: &str, permissions: &[&str]) -> Tokens {
    let admin = app.admin().await;
    let role = format!("role-{name}");
    let r = app
        .post_as(
            "/api/permissions",
            &admin,
            json!({ "role": role, "description": "test", "permissions": permissions }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let password = format!("{name}-password-Zx8");
    app.create_user(name, &password, &role).await;
    app.login(name, &password).await
}

async fn texter(app: &TestApp) -> Tokens {
    user_with(app, "texter", &["sms:send", "sms:lookup", "tools:call:*"]).await
}

/// (kind, number_masked, number_hash, state, reference_id, final_status_code) of every log row, oldest first.
#[allow(clippy::type_complexity)]
async fn rows(app: &TestApp) -> Vec<(String, String, String, String, Option<String>, Option<i64>)> {
    sqlx::query_as(
        "SELECT kind, number_masked, number_hash, state, reference_id, final_status_code \
         FROM sms_transactions ORDER BY created_at, kind",
    )
    .fetch_all(&app.db().pool)
    .await
    .unwrap()
}

async fn send_sms(app: &TestApp, who: &Tokens, phone: &str, message: &str) -> reqwest::Response {
    app.post_as(
        "/api/sms/send-sms",
        who,
        json!({ "phone_number": phone, "message": message }),
    )
    .await
}

/// POSTs a receipt signed with `key` to the callback route.
async fn post_receipt(app: &TestApp, body: &Value, key: &str) -> reqwest::Response {
    let bytes = serde_json::to_vec(body).unwrap();
    let key = sign::decode_api_key(key).unwrap();
    app.client
        .post(app.url("/api/sms/callback"))
        .header("content-type", "application/json")
        .header(
            "authorization",
            sign::callback_authorization(CUSTOMER, &key, &bytes),
        )
        .body(bytes)
        .send()
        .await
        .unwrap()
}

async fn a_telesign_send_reaches_the_mock_signed_and_is_logged_masked(kind: DbKind) {
    let mock = start_mock().await;
    let app = telesign_app(kind, &mock, &[]).await;
    let who = texter(&app).await;

    let r = send_sms(&app, &who, PHONE, "Your code is 48213").await;

    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(!text.contains("48213"), "{text}");
    assert!(!text.contains(DIGITS), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status_code"], json!(290), "{body}");
    assert_eq!(body["errors"], json!([]));
    let reference = body["reference_id"].as_str().unwrap();
    assert_eq!(reference.len(), 32);
    let received = mock.received();
    let sent = received.last().unwrap();
    assert!(sent.verified, "the mock accepted the signature");
    assert_eq!(sent.path, "/v1/messaging");
    assert_eq!(sent.fields["phone_number"], DIGITS);
    assert_eq!(sent.fields["message_type"], "OTP");
    let rows = rows(&app).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (kind, masked, hash, state, reference_id, _) = &rows[0];
    assert_eq!(kind, "sms");
    assert_eq!(masked, "15*******09");
    assert_eq!(hash.len(), 64);
    assert!(!hash.contains(DIGITS));
    assert_eq!(state, "ok");
    assert_eq!(reference_id.as_deref(), Some(reference));
    assert_eq!(sent.fields["external_id"].as_str().map(str::len), Some(36));
}

async fn status_polls_and_signed_receipts_update_the_final_status(kind: DbKind) {
    let mock = start_mock().await;
    let app = telesign_app(kind, &mock, &[]).await;
    let who = texter(&app).await;
    let first = json_of(send_sms(&app, &who, PHONE, "hello").await).await;
    let first = first["reference_id"].as_str().unwrap().to_string();

    // The mock delivers after 50 ms; the poll records what it answers.
    let mut delivered = Value::Null;
    for _ in 0..100 {
        let r = app.get_as(&format!("/api/sms/status/{first}"), &who).await;
        assert_eq!(r.status(), StatusCode::OK);
        delivered = json_of(r).await;
        if delivered["transaction"]["final_status_code"] == json!(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        delivered["transaction"]["final_status_code"],
        json!(200),
        "{delivered}"
    );
    assert_eq!(delivered["transaction"]["phone_number"], "15*******09");
    assert!(rows(&app).await.iter().any(|r| r.0 == "status"));
    // Another user does not see it.
    let other = user_with(&app, "other", &["sms:send"]).await;
    let r = app
        .get_as(&format!("/api/whatsapp/status/{first}"), &other)
        .await;
    expect_error(r, StatusCode::NOT_FOUND).await;

    let second = json_of(send_sms(&app, &who, PHONE, "again").await).await;
    let second = second["reference_id"].as_str().unwrap().to_string();
    let receipt = json!({
        "reference_id": second, "sub_resource": "sms", "errors": [],
        "status": { "code": 210, "description": "Temporary phone error", "updated_on": "2026-01-01T00:00:00Z" },
    });

    let r = post_receipt(&app, &receipt, KEY).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["status"], "updated");
    let r = post_receipt(&app, &receipt, KEY).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["status"], "unchanged");
    let finals: Vec<Option<i64>> = rows(&app)
        .await
        .into_iter()
        .filter(|r| r.4.as_deref() == Some(second.as_str()) && r.0 == "sms")
        .map(|r| r.5)
        .collect();
    assert_eq!(finals, [Some(210)]);
    let forged =
        json!({ "reference_id": second, "status": { "code": 200, "description": "Delivered" } });
    let r = post_receipt(&app, &forged, "VGVzdCBLZXk=").await;
    let body = expect_error(r, StatusCode::UNAUTHORIZED).await;
    assert!(body["error"].as_str().unwrap().contains("10008"), "{body}");
    let r = app
        .client
        .post(app.url("/api/sms/callback"))
        .json(&forged)
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::UNAUTHORIZED).await;
    let unknown = json!({ "reference_id": "0123456789ABCDEF0123456789ABCDEF", "status": { "code": 200, "description": "Delivered" } });
    let r = post_receipt(&app, &unknown, KEY).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["status"], "unknown_reference");
    let finals: Vec<Option<i64>> = rows(&app)
        .await
        .into_iter()
        .filter(|r| r.4.as_deref() == Some(second.as_str()) && r.0 == "sms")
        .map(|r| r.5)
        .collect();
    assert_eq!(finals, [Some(210)], "the forged receipt changed nothing");
}

async fn verify_phone_and_assess_risk_answer_the_seed_shapes(kind: DbKind) {
    let mock = start_mock().await;
    let app = telesign_app(kind, &mock, &[]).await;
    let who = texter(&app).await;

    let r = app
        .post_as(
            "/api/sms/verify-phone",
            &who,
            json!({ "phone_number": PHONE }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let info = json_of(r).await;
    assert_eq!(info["phone_type"], "MOBILE", "{info}");
    assert_eq!(info["carrier"], "Mock Mobile");
    assert_eq!(info["phone_number"], "15*******09");
    assert_eq!(info["blocked"], json!(false));
    let phone_id = mock
        .received()
        .into_iter()
        .find(|r| r.path.starts_with("/v1/phoneid/"))
        .unwrap();
    assert!(phone_id.fields["addons"]["contact"].is_object());

    for (number, level, score, recommendation) in [
        ("+1 555 867 9999", "high", 900, "block"),
        ("+1 555 867 5555", "medium", 500, "flag"),
        (PHONE, "low", 150, "allow"),
    ] {
        let r = app
            .post_as(
                "/api/whatsapp/assess-risk",
                &who,
                json!({ "phone_number": number }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let risk = json_of(r).await;
        assert_eq!(risk["risk_level"], level, "{risk}");
        assert_eq!(risk["risk_score"], json!(score));
        assert_eq!(risk["recommendation"], recommendation);
        assert!(risk.get("phone_type").is_some() && risk.get("carrier").is_some());
    }
    let sender = user_with(&app, "sender", &["sms:send"]).await;
    for path in ["/api/sms/verify-phone", "/api/sms/assess-risk"] {
        let r = app
            .post_as(path, &sender, json!({ "phone_number": PHONE }))
            .await;
        let body = expect_error(r, StatusCode::FORBIDDEN).await;
        assert!(body["error"].as_str().unwrap().contains("sms:lookup"));
    }
}

async fn provider_refusals_and_outages_are_clear_errors(kind: DbKind) {
    let mock = start_mock().await;
    let app = telesign_app(kind, &mock, &[]).await;
    let who = texter(&app).await;

    let r = send_sms(&app, &who, "+1 555 867 0000", "hi").await;
    let body = expect_error(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["code"], "sms_rejected", "{body}");
    assert!(body["error"].as_str().unwrap().contains("11000"), "{body}");

    mock.fail_next(Failure::ServerError, 1);
    let r = send_sms(&app, &who, PHONE, "hi").await;
    let body = expect_error(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["code"], "sms_unavailable");

    let states: Vec<String> = rows(&app).await.into_iter().map(|r| r.3).collect();
    assert_eq!(states, ["failed", "failed"]);
    let errors: Vec<(Option<String>, Option<i64>)> =
        sqlx::query_as("SELECT error, status_code FROM sms_transactions ORDER BY created_at")
            .fetch_all(&app.db().pool)
            .await
            .unwrap();
    assert!(errors.iter().all(|(e, _)| e.is_some()), "{errors:?}");
    assert!(errors.iter().any(|(_, c)| *c == Some(11000)), "{errors:?}");
}

async fn a_telesign_verification_code_is_checked_server_side_only(kind: DbKind) {
    let mock = start_mock().await;
    let app = telesign_app(kind, &mock, &[]).await;
    let who = texter(&app).await;

    let r = app
        .post_as(
            "/api/sms/send-verification",
            &who,
            json!({ "phone_number": PHONE }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    let code = mock
        .received()
        .into_iter()
        .rev()
        .find_map(|r| r.verify_code)
        .expect("the mock generated a code");
    assert!(!text.contains(&code), "{text}");
    let wrong = if code == "11111" { "22222" } else { "11111" };

    // The seed trusted a client-sent original_code: it is ignored.
    let r = app
        .post_as(
            "/api/sms/verify-code",
            &who,
            json!({ "phone_number": PHONE, "code": wrong, "original_code": wrong }),
        )
        .await;
    let body = expect_error(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(!body.to_string().contains(&code));
    let r = app
        .post_as(
            "/api/whatsapp/verify-code",
            &who,
            json!({ "phone_number": PHONE, "code": code }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    assert_eq!(body["valid"], json!(true));
    assert!(!body.to_string().contains(&code));
    let r = app
        .post_as(
            "/api/sms/verify-code",
            &who,
            json!({ "phone_number": PHONE, "code": code }),
        )
        .await;
    expect_error(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let kinds: Vec<String> = rows(&app).await.into_iter().map(|r| r.0).collect();
    assert!(kinds.contains(&"verification_send".to_string()));
    assert!(kinds.contains(&"verification_check".to_string()));
}

/// The digits of the newest console message to `number`.
fn console_code(app: &TestApp, number: &str) -> String {
    let to = warden::sms::PhoneNumber::parse(number).unwrap();
    let text = app.state.sms.console().unwrap().last_to(&to).unwrap().text;
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 5)
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_string()
}

async fn the_console_provider_serves_the_same_flows(kind: DbKind) {
    let app = spawn_app(kind).await;
    let who = texter(&app).await;

    let sent = json_of(send_sms(&app, &who, PHONE, "hello").await).await;
    let reference = sent["reference_id"].as_str().unwrap();
    let status = app
        .get_json(&format!("/api/sms/status/{reference}"), &who)
        .await;
    assert_eq!(status["transaction"]["final_status_code"], json!(200));

    let r = app
        .post_as(
            "/api/sms/send-verification",
            &who,
            json!({ "phone_number": PHONE }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let reply = r.text().await.unwrap();
    let code = console_code(&app, PHONE);
    assert!(!reply.contains(&code), "{reply}");
    let wrong = if code == "11111" { "22222" } else { "11111" };
    let r = app
        .post_as(
            "/api/sms/verify-code",
            &who,
            json!({ "phone_number": PHONE, "code": wrong, "original_code": wrong }),
        )
        .await;
    expect_error(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = app
        .post_as(
            "/api/sms/verify-code",
            &who,
            json!({ "phone_number": PHONE, "code": code }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let stored: Vec<(Option<String>,)> =
        sqlx::query_as("SELECT code_hmac FROM sms_transactions WHERE kind = 'verification_send'")
            .fetch_all(&app.db().pool)
            .await
            .unwrap();
    assert_eq!(stored, [(None,)], "the used code's HMAC is dropped");

    let risk = json_of(
        app.post_as(
            "/api/sms/assess-risk",
            &who,
            json!({ "phone_number": PHONE }),
        )
        .await,
    )
    .await;
    assert_eq!(risk["recommendation"], "allow");
    let info = json_of(
        app.post_as(
            "/api/sms/verify-phone",
            &who,
            json!({ "phone_number": PHONE }),
        )
        .await,
    )
    .await;
    assert_eq!(info["phone_number"], "15*******09");
    // Receipts need a Telesign account.
    let r = post_receipt(
        &app,
        &json!({"reference_id": reference, "status": {"code": 200}}),
        KEY,
    )
    .await;
    expect_error(r, StatusCode::UNAUTHORIZED).await;
}

async fn sms_pumping_is_refused_by_the_limits_and_the_country_list(kind: DbKind) {
    let app = spawn_app_with(
        kind,
        &[
            ("SMS_USER_NUMBERS_PER_DAY", "3"),
            ("SMS_NUMBER_PER_HOUR", "2"),
            ("SMS_USER_PER_HOUR", "5"),
        ],
    )
    .await;
    let pumper = texter(&app).await;

    // Many numbers from one user.
    for i in 0..3 {
        let r = send_sms(&app, &pumper, &format!("+1 555 010 000{i}"), "hi").await;
        assert_eq!(r.status(), StatusCode::OK, "number {i}");
    }
    let r = send_sms(&app, &pumper, "+1 555 010 0009", "hi").await;
    assert!(r.headers().get("retry-after").is_some());
    let body = expect_error(r, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["code"], "rate_limited");

    // One number from many users.
    let victim = "+1 555 020 1234";
    for name in ["u1", "u2"] {
        let who = user_with(&app, name, &["sms:send"]).await;
        assert_eq!(
            send_sms(&app, &who, victim, "hi").await.status(),
            StatusCode::OK
        );
    }
    let mut third = user_with(&app, "u3", &["sms:send"]).await;
    expect_error(
        send_sms(&app, &third, victim, "hi").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    // A refusal is recorded, and does not count: after the hour, the number is free again.
    let refused: Vec<String> = rows(&app)
        .await
        .into_iter()
        .filter(|r| r.3 == "refused")
        .map(|r| r.1)
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    app.clock.advance(Duration::from_secs(3601));
    third = app.login("u3", "u3-password-Zx8").await;
    assert_eq!(
        send_sms(&app, &third, victim, "hi").await.status(),
        StatusCode::OK
    );

    // Countries outside SMS_ALLOWED_COUNTRIES (default: 1), and what cannot be a number.
    let r = send_sms(&app, &third, "+44 20 7946 0958", "hi").await;
    let body = expect_error(r, StatusCode::BAD_REQUEST).await;
    assert!(
        body["error"].as_str().unwrap().contains("country"),
        "{body}"
    );
    let r = send_sms(&app, &third, "555-CALL-NOW", "hi").await;
    let body = expect_error(r, StatusCode::BAD_REQUEST).await;
    assert!(
        body["error"].as_str().unwrap().contains("phone_number"),
        "{body}"
    );
    let r = send_sms(&app, &third, PHONE, "hi").await;
    assert_eq!(r.status(), StatusCode::OK);
    let to = warden::sms::PhoneNumber::parse(DIGITS).unwrap();
    assert!(app.state.sms.console().unwrap().last_to(&to).is_some());
}

async fn the_admin_view_filters_and_summarises_and_is_admin_only(kind: DbKind) {
    let app = spawn_app_with(kind, &[("SMS_NUMBER_PER_HOUR", "2")]).await;
    let who = texter(&app).await;
    for _ in 0..3 {
        send_sms(&app, &who, PHONE, "hi").await;
    }
    send_sms(&app, &who, "+1 555 010 4477", "hi").await;
    app.post_as(
        "/api/sms/assess-risk",
        &who,
        json!({ "phone_number": PHONE }),
    )
    .await;
    let admin = app.admin().await;

    let all = app.get_json("/api/sms/transactions", &admin).await;
    assert_eq!(all["total"], json!(5), "{all}");
    assert_eq!(all["summary"]["total"], json!(5));
    assert_eq!(all["summary"]["successful"], json!(4));
    assert_eq!(all["summary"]["failed"], json!(1));
    assert_eq!(all["summary"]["by_type"]["sms"]["total"], json!(4));
    assert_eq!(all["summary"]["by_type"]["risk"]["total"], json!(1));
    assert_eq!(all["summary"]["success_rate"], json!(80.0));
    assert!(!all.to_string().contains(DIGITS));

    let by_number = app
        .get_json("/api/sms/transactions?phone_number=%2B15558675309", &admin)
        .await;
    assert_eq!(by_number["total"], json!(4), "{by_number}");
    let by_alias = app
        .get_json("/api/sms/transactions?number=15558675309&type=sms", &admin)
        .await;
    assert_eq!(by_alias["total"], json!(3), "{by_alias}");
    let failed = app
        .get_json("/api/sms/transactions?failed=true", &admin)
        .await;
    assert_eq!(failed["total"], json!(1));
    assert_eq!(failed["transactions"][0]["state"], "refused");
    let risk = app
        .get_json("/api/sms/transactions?type=risk", &admin)
        .await;
    assert_eq!(risk["total"], json!(1));
    let page = app
        .get_json("/api/sms/transactions?limit=2&offset=2", &admin)
        .await;
    assert_eq!(page["transactions"].as_array().unwrap().len(), 2);
    assert_eq!(page["has_more"], json!(true));
    let r = app
        .get_as("/api/sms/transactions?type=nonsense", &admin)
        .await;
    expect_error(r, StatusCode::BAD_REQUEST).await;

    let r = app.get_as("/api/sms/transactions", &who).await;
    let body = expect_error(r, StatusCode::FORBIDDEN).await;
    assert!(body["error"].as_str().unwrap().contains("sms:read-all"));
}

async fn execute(app: &TestApp, who: &Tokens, tool: &str, parameters: Value) -> Value {
    let r = app
        .post_as(
            &format!("/api/servers/builtin/tools/{tool}/execute"),
            who,
            json!({ "parameters": parameters }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{tool}");
    json_of(r).await
}

async fn the_agent_tools_need_the_sms_permission_too(kind: DbKind) {
    let mock = start_mock().await;
    let app = telesign_app(kind, &mock, &[]).await;
    let who = user_with(
        &app,
        "agent",
        &["chat:use", "tools:call:*", "sms:send", "sms:lookup"],
    )
    .await;
    app.create_user("plain", "plain-password-Zx8", "user").await;
    let plain = app.login("plain", "plain-password-Zx8").await;

    let sent = execute(
        &app,
        &who,
        "sms_send",
        json!({ "phone_number": PHONE, "message": "from the agent" }),
    )
    .await;
    assert_eq!(sent["success"], json!(true), "{sent}");
    assert_eq!(sent["result"]["phone_number"], "15*******09");
    assert_eq!(
        mock.received().last().unwrap().fields["message_type"],
        "ARN"
    );
    let lookup = execute(&app, &who, "phone_lookup", json!({ "phone_number": PHONE })).await;
    assert_eq!(lookup["result"]["carrier"], "Mock Mobile", "{lookup}");
    let risk = execute(
        &app,
        &who,
        "phone_risk",
        json!({ "phone_number": "+1 555 867 9999" }),
    )
    .await;
    assert_eq!(risk["result"]["recommendation"], "block", "{risk}");

    // The user role may call every tool, but holds no SMS permission: the catalog neither offers nor runs them.
    let before = mock.received().len();
    let listed = app.get_json("/tools", &plain).await.to_string();
    for tool in ["sms_send", "phone_lookup", "phone_risk"] {
        assert!(
            !listed.contains(tool),
            "{tool} offered to a caller without its permission: {listed}"
        );
        let r = app
            .post_as(
                &format!("/api/servers/builtin/tools/{tool}/execute"),
                &plain,
                json!({ "parameters": { "phone_number": PHONE, "message": "x" } }),
            )
            .await;
        expect_error(r, StatusCode::NOT_FOUND).await;
    }
    let listed = app.get_json("/tools", &who).await.to_string();
    assert!(
        listed.contains("sms_send") && listed.contains("phone_risk"),
        "{listed}"
    );
    assert_eq!(mock.received().len(), before, "nothing reached Telesign");
    // The numbers the tools were given are not in the tool-call log (arguments are redacted by key).
    app.state.tool_log.flush().await;
    let tables = app.all_table_text().await;
    assert!(tables.contains("sms_send"), "the calls are logged");
    for number in [DIGITS, "15558679999", "867-5309", "867 9999"] {
        assert!(!tables.contains(number), "{number} stored in full");
    }
    let kinds: Vec<String> = rows(&app).await.into_iter().map(|r| r.0).collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}

async fn whatsapp_only_routes_answer_501_and_seed_paths_work(kind: DbKind) {
    let app = spawn_app(kind).await;
    let who = texter(&app).await;
    for path in [
        "/api/whatsapp/send-template",
        "/api/whatsapp/send-media",
        "/api/whatsapp/send-buttons",
    ] {
        let r = app.post_as(path, &who, json!({})).await;
        let body = expect_error(r, StatusCode::NOT_IMPLEMENTED).await;
        assert!(body["error"].as_str().unwrap().contains("WhatsApp"));
    }
    let r = app
        .post_as(
            "/api/whatsapp/send-message",
            &who,
            json!({ "phone_number": PHONE, "message": "Your parcel arrives today", "sender_id": "Warden" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let to = warden::sms::PhoneNumber::parse(PHONE).unwrap();
    let last = app.state.sms.console().unwrap().last_to(&to).unwrap();
    assert_eq!(last.kind, warden::sms::MessageKind::Arn);
    // Cookie callers need the CSRF token, like every unsafe route.
    let browser = app.login_cookie("texter", "texter-password-Zx8").await;
    let r = app
        .post_as(
            "/api/sms/send-sms",
            &header("cookie", browser.cookie.clone()),
            json!({ "phone_number": PHONE, "message": "hi" }),
        )
        .await;
    expect_error(r, StatusCode::FORBIDDEN).await;
    let r = app
        .post_as(
            "/api/sms/send-sms",
            &header("cookie", browser.cookie.clone()).and("x-csrf-token", browser.csrf.clone()),
            json!({ "phone_number": PHONE, "message": "hi" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn of_twelve_concurrent_sends_only_the_limit_get_through(kind: DbKind) {
    let app = spawn_app_with(kind, &[("SMS_USER_PER_HOUR", "3")]).await;
    let who = texter(&app).await;

    let replies =
        futures::future::join_all((0..12).map(|_| send_sms(&app, &who, PHONE, "hi"))).await;

    let ok = replies
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    let limited = replies
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .count();
    // Each send is written to the log before it counts the log, so no more than the limit get through; sends
    // that arrive together may each count all the others and all be refused (the limit errs on refusing), so
    // none getting through is a right answer too (seen in CI: twelve 429s). Sequential sends up to the limit
    // pass: sms_pumping_is_refused_by_the_limits_and_the_country_list.
    assert!(ok <= 3, "{ok} sends got through");
    assert_eq!(ok + limited, 12);
    let to = warden::sms::PhoneNumber::parse(PHONE).unwrap();
    let printed = app
        .state
        .sms
        .console()
        .unwrap()
        .outbox()
        .iter()
        .filter(|m| m.to == to)
        .count();
    assert_eq!(printed, ok, "only admitted sends reached the provider");
}

async fn the_limits_hold_across_instances_and_restarts(kind: DbKind) {
    let app = spawn_app_with(kind, &[("SMS_NUMBER_PER_HOUR", "2")]).await;
    let who = texter(&app).await;
    assert_eq!(
        send_sms(&app, &who, PHONE, "hi").await.status(),
        StatusCode::OK
    );
    let other = app.another_instance().await;
    assert_eq!(
        send_sms(&other, &who, PHONE, "hi").await.status(),
        StatusCode::OK
    );

    expect_error(
        send_sms(&app, &who, PHONE, "hi").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    drop(other);
    let app = app.restart().await;
    let who = app.login("texter", "texter-password-Zx8").await;
    expect_error(
        send_sms(&app, &who, PHONE, "hi").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
}

/// The 401/403 sweeps in routes.rs walk `ROUTES`: every SMS route is there with its permission.
#[test]
fn every_sms_route_is_in_the_route_table_with_its_permission() {
    let table = warden::http::system::ROUTES;
    let permission_of = |method: &str, path: &str| {
        table
            .iter()
            .find(|(m, p, _, _)| *m == method && *p == path)
            .map(|r| r.3)
    };
    for prefix in ["/api/sms", "/api/whatsapp"] {
        for (method, route, permission) in [
            ("post", "send-sms", "sms:send"),
            ("post", "send-message", "sms:send"),
            ("post", "verify-phone", "sms:lookup"),
            ("get", "status/{reference_id}", "sms:send"),
            ("post", "send-verification", "sms:send"),
            ("post", "verify-code", "sms:send"),
            ("post", "assess-risk", "sms:lookup"),
        ] {
            let path = format!("{prefix}/{route}");
            assert_eq!(permission_of(method, &path), Some(permission), "{path}");
        }
    }
    assert_eq!(permission_of("post", "/api/sms/callback"), Some("none"));
    assert_eq!(
        permission_of("get", "/api/sms/transactions"),
        Some("sms:read-all")
    );
    for kind in ["template", "media", "buttons"] {
        let path = format!("/api/whatsapp/send-{kind}");
        assert_eq!(permission_of("post", &path), Some("sms:send"), "{path}");
    }
}

async fn lookup(app: &TestApp, path: &str, caller: &Tokens) -> reqwest::Response {
    app.post_as(path, caller, json!({ "phone_number": PHONE }))
        .await
}

async fn lookups_are_limited_per_user(kind: DbKind) {
    // Arrange: two lookups an hour per user.
    let app = spawn_app_with(kind, &[("SMS_LOOKUPS_PER_HOUR", "2")]).await;
    let who = texter(&app).await;
    let other = user_with(&app, "other", &["sms:lookup"]).await;

    // Act + Assert: a PhoneID and a risk check pass, the third lookup of either kind is refused with a wait.
    assert_eq!(
        lookup(&app, "/api/sms/verify-phone", &who).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        lookup(&app, "/api/sms/assess-risk", &who).await.status(),
        StatusCode::OK
    );
    for path in ["/api/sms/verify-phone", "/api/sms/assess-risk"] {
        let r = lookup(&app, path, &who).await;
        assert!(r.headers().get("retry-after").is_some(), "{path}");
        expect_error(r, StatusCode::TOO_MANY_REQUESTS).await;
    }
    // Another user has a budget of their own, and sends are not lookups.
    assert_eq!(
        lookup(&app, "/api/sms/assess-risk", &other).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send_sms(&app, &who, PHONE, "hi").await.status(),
        StatusCode::OK
    );
    // After the hour the user may look numbers up again.
    app.clock.advance(Duration::from_secs(3601));
    let who = app.login("texter", "texter-password-Zx8").await;
    assert_eq!(
        lookup(&app, "/api/sms/verify-phone", &who).await.status(),
        StatusCode::OK
    );
}

/// End to end: Warden sends with `callback_url`, the mock delivers and posts its own signed receipt back, and
/// the transaction's final status becomes "delivered" with no poll.
async fn the_mocks_own_signed_receipt_reaches_warden(kind: DbKind) {
    // Arrange: Warden on a port known before it starts, so its receipt URL can be configured.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let callback = format!("http://{bind}/api/sms/callback");
    let mock = start_mock().await;
    let app = telesign_app(
        kind,
        &mock,
        &[
            ("WARDEN_BIND", bind.as_str()),
            ("TELESIGN_CALLBACK_URL", callback.as_str()),
        ],
    )
    .await;
    let who = texter(&app).await;

    // Act
    let r = send_sms(&app, &who, PHONE, "receipt please").await;
    assert_eq!(r.status(), StatusCode::OK);

    // Assert: the mock's receipt was accepted (200) and recorded as the final status.
    let landed = TestApp::eventually(|| async {
        let answered = mock
            .received()
            .iter()
            .any(|r| r.path == "/v1/messaging" && r.callback_status == Some(200));
        answered && rows(&app).await.iter().any(|r| r.5 == Some(200))
    })
    .await;
    assert!(landed, "no receipt landed: {:?}", rows(&app).await);
    let send = mock
        .received()
        .into_iter()
        .find(|r| r.path == "/v1/messaging")
        .expect("the mock got the send");
    assert_eq!(send.fields["callback_url"], callback);
}
