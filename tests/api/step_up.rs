//! Step-up approvals (issue 9, item 8): under an `ask` rule with `step_up`, approving a tool call needs a fresh
//! second-factor code bound to that approval. SMS codes are read from the console provider's outbox; TOTP
//! codes are computed from the enrolment's secret at the controlled clock. The language model is scripted.

use std::time::Duration;

use warden::{clock::Clock, mfa::totp};

use crate::{
    helpers::prelude::*,
    llm_mock::{Mock, openai_app, openai_stream},
    mfa::{PHONE, enrol_totp, events, last_code, wrong},
    policy::read_until,
};

db_tests!(
    an_sms_step_up_approval_runs_the_tool_only_with_a_fresh_code_of_that_approval,
    a_totp_step_up_approval_refuses_a_step_already_used,
    a_plain_ask_rule_still_approves_without_a_code,
);

async fn put_policy(app: &TestApp, admin: &str, body: Value) -> reqwest::Response {
    app.put_as("/api/tool-policies", &admin, body).await
}

/// Starts a streamed turn and reads it until the approval is asked for: (response, buffer, event data).
async fn turn_until_approval(
    app: &TestApp,
    token: &str,
    session: &str,
    message: &str,
) -> (reqwest::Response, String, Value) {
    let mut r = app
        .client
        .post(app.url("/chat/message"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .json(&json!({ "session_id": session, "message": message }))
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    let events = read_until(&mut r, &mut buffer, "approval_required").await;
    let pending = events.last().unwrap().1.clone();
    (r, buffer, pending)
}

async fn approve(app: &TestApp, token: &str, approval: &str, body: Value) -> reqwest::Response {
    app.post_as(&format!("/chat/approvals/{approval}"), &token, body)
        .await
}

async fn send_code(app: &TestApp, token: &str, approval: &str) -> reqwest::Response {
    app.post_as(
        &format!("/chat/approvals/{approval}/code"),
        &token,
        json!({}),
    )
    .await
}

/// The reasons of the `tool.step_up_failure` audit events, in order.
async fn failure_reasons(app: &TestApp) -> Vec<String> {
    events(app, "tool.step_up_failure")
        .await
        .into_iter()
        .map(|(outcome, detail)| {
            assert_eq!(outcome, "denied");
            serde_json::from_str::<Value>(&detail).unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// (approval, approver_id) of each logged call, newest first.
async fn logged_approvals(app: &TestApp, token: &str) -> Vec<(Value, Value)> {
    app.state.tool_log.flush().await;
    let calls: Value = app.get_json("/api/tool-calls", &token).await;
    calls["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["approval"].clone(), c["approver_id"].clone()))
        .collect()
}

async fn an_sms_step_up_approval_runs_the_tool_only_with_a_fresh_code_of_that_approval(
    kind: DbKind,
) {
    // Arrange: two turns, each asking for `add`; then an answer for each.
    let mock = Mock::default();
    let none = Duration::ZERO;
    mock.push(openai_stream(
        &[],
        Some(("call_a", "add", r#"{"a":5,"#, r#""b":3}"#)),
        none,
    ));
    mock.push(openai_stream(
        &[],
        Some(("call_b", "add", r#"{"a":1,"#, r#""b":1}"#)),
        none,
    ));
    mock.push(openai_stream(&["5 + 3 = 8"], None, none));
    mock.push(openai_stream(&["not added"], None, none));
    let app = openai_app(kind, &mock, &[]).await;
    let admin = app.admin().await;
    let r = put_policy(
        &app,
        &admin.access,
        json!({ "role": "user", "tool": "add", "decision": "ask", "step_up": true }),
    )
    .await;
    assert_eq!(json_of(r).await["step_up"], json!(true));
    let listed = app.get_json("/api/tool-policies", &admin.access).await;
    assert_eq!(
        listed["policies"][0],
        json!({ "role": "user", "tool": "add", "decision": "ask", "step_up": true })
    );
    app.create_user("sam", "sam-password-Kq4", "user").await;
    let sam = app.login("sam", "sam-password-Kq4").await;
    let r = app
        .post_as(
            "/api/me/phone",
            &sam.access,
            json!({ "phone_number": PHONE }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post_as(
            "/api/me/phone/verify",
            &sam.access,
            json!({ "code": last_code(&app) }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (sid_a, sid_b) = (
        new_session(&app, &sam.access).await,
        new_session(&app, &sam.access).await,
    );

    let (mut turn_a, mut buf_a, pending_a) =
        turn_until_approval(&app, &sam.access, &sid_a, "add 5 and 3").await;
    assert_eq!(pending_a["step_up"], json!(true), "{pending_a}");
    assert_eq!(pending_a["methods"], json!(["sms"]), "{pending_a}");
    let a = pending_a["approval_id"].as_str().unwrap().to_string();
    let (mut turn_b, mut buf_b, pending_b) =
        turn_until_approval(&app, &sam.access, &sid_b, "add 1 and 1").await;
    let b = pending_b["approval_id"].as_str().unwrap().to_string();

    // Act and assert: no code, a code before any was sent, another approval's code, a wrong code: refused.
    let r = approve(&app, &sam.access, &a, json!({ "approve": true })).await;
    assert_eq!(
        expect_error(r, StatusCode::FORBIDDEN).await["code"],
        json!("step_up_required")
    );
    let r = approve(
        &app,
        &sam.access,
        &a,
        json!({ "approve": true, "code": "123456", "method": "sms" }),
    )
    .await;
    expect_error(r, StatusCode::FORBIDDEN).await;
    assert_eq!(
        send_code(&app, &sam.access, &b).await.status(),
        StatusCode::OK
    );
    let code_b = last_code(&app);
    assert_eq!(
        send_code(&app, &sam.access, &a).await.status(),
        StatusCode::OK
    );
    let code_a = last_code(&app);
    let r = approve(
        &app,
        &sam.access,
        &a,
        json!({ "approve": true, "code": code_b, "method": "sms" }),
    )
    .await;
    assert_eq!(
        expect_error(r, StatusCode::FORBIDDEN).await["code"],
        json!("invalid_code")
    );
    let r = approve(
        &app,
        &sam.access,
        &a,
        json!({ "approve": true, "code": wrong(&code_a), "method": "sms" }),
    )
    .await;
    expect_error(r, StatusCode::FORBIDDEN).await;
    // Nobody else can ask for a code or decide.
    app.create_user("eve", "eve-password-Kq4", "user").await;
    let eve = app.login("eve", "eve-password-Kq4").await;
    expect_error(
        send_code(&app, &eve.access, &a).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // The tool did not run: the model was not asked again and nothing is logged.
    assert_eq!(mock.bodies().len(), 2);
    assert!(logged_approvals(&app, &sam.access).await.is_empty());

    // The fresh code of this approval runs the tool; the model's next request carries its result.
    let r = approve(
        &app,
        &sam.access,
        &a,
        json!({ "approve": true, "code": code_a, "method": "sms" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let rest = read_until(&mut turn_a, &mut buf_a, "done").await;
    let result = rest.iter().find(|(e, _)| e == "tool_result").unwrap();
    assert_eq!(result.1["result"], json!("8"));
    assert_eq!(rest.last().unwrap().1["content"], json!("5 + 3 = 8"));
    let third = &mock.bodies()[2];
    let tool_message = third["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == json!("tool"))
        .cloned()
        .unwrap();
    assert_eq!(tool_message["tool_call_id"], json!("call_a"));
    assert_eq!(tool_message["content"], json!("8"));
    // Used once: the same code again finds nothing pending.
    let r = approve(
        &app,
        &sam.access,
        &a,
        json!({ "approve": true, "code": code_a, "method": "sms" }),
    )
    .await;
    expect_error(r, StatusCode::NOT_FOUND).await;

    // B's own code, once its two minutes have passed, is refused; refusing needs no code.
    app.clock.advance(Duration::from_secs(2 * 60 + 1));
    let r = approve(
        &app,
        &sam.access,
        &b,
        json!({ "approve": true, "code": code_b, "method": "sms" }),
    )
    .await;
    expect_error(r, StatusCode::FORBIDDEN).await;
    let r = approve(&app, &sam.access, &b, json!({ "approve": false })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rest = read_until(&mut turn_b, &mut buf_b, "done").await;
    let result = rest.iter().find(|(e, _)| e == "tool_result").unwrap();
    assert_eq!(result.1["status"], json!("error"));

    // The log records who approved with a step-up; every refused attempt is audited, never with the code.
    assert_eq!(
        logged_approvals(&app, &sam.access).await,
        [
            (json!("refused"), json!(sam.user_id)),
            (json!("step_up_approved"), json!(sam.user_id)),
        ]
    );
    assert_eq!(
        failure_reasons(&app).await,
        [
            "no_code",
            "no_code_sent",
            "wrong_code",
            "wrong_code",
            "expired"
        ]
    );
    for (_, detail) in events(&app, "tool.step_up_failure").await {
        for code in [&code_a, &code_b] {
            assert!(
                !detail.contains(code.as_str()),
                "a code in the audit: {detail}"
            );
        }
    }
}

async fn a_totp_step_up_approval_refuses_a_step_already_used(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let r = put_policy(
        &app,
        &admin.access,
        json!({ "role": "user", "tool": "add", "decision": "ask", "step_up": true }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.create_user("tia", "tia-password-Kq4", "user").await;
    let tia = app.login("tia", "tia-password-Kq4").await;
    // Enrolment spends the current step.
    let (secret, _) = enrol_totp(&app, &tia.access, "tia").await;
    let sid = new_session(&app, &tia.access).await;
    let code_now = || totp::code_at(&secret, totp::step_at(app.clock.now_secs()));

    let (mut turn, mut buffer, pending) =
        turn_until_approval(&app, &tia.access, &sid, r#"/call add {"a":5,"b":3}"#).await;
    assert_eq!(pending["methods"], json!(["totp"]), "{pending}");
    let approval = pending["approval_id"].as_str().unwrap().to_string();
    let used_at_enrolment = code_now();
    let r = approve(
        &app,
        &tia.access,
        &approval,
        json!({ "approve": true, "code": used_at_enrolment, "method": "totp" }),
    )
    .await;
    expect_error(r, StatusCode::FORBIDDEN).await;
    app.clock.advance(Duration::from_secs(30));
    let fresh = code_now();
    let r = approve(
        &app,
        &tia.access,
        &approval,
        json!({ "approve": true, "code": fresh, "method": "totp" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let rest = read_until(&mut turn, &mut buffer, "done").await;
    assert_eq!(rest.last().unwrap().1["content"], json!("add: 8"));

    // The next call cannot reuse that step; the next step approves it.
    let (mut turn, mut buffer, pending) =
        turn_until_approval(&app, &tia.access, &sid, r#"/call add {"a":2,"b":2}"#).await;
    let approval = pending["approval_id"].as_str().unwrap().to_string();
    let r = approve(
        &app,
        &tia.access,
        &approval,
        json!({ "approve": true, "code": fresh, "method": "totp" }),
    )
    .await;
    expect_error(r, StatusCode::FORBIDDEN).await;
    app.clock.advance(Duration::from_secs(30));
    let r = approve(
        &app,
        &tia.access,
        &approval,
        json!({ "approve": true, "code": code_now(), "method": "totp" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let rest = read_until(&mut turn, &mut buffer, "done").await;
    assert_eq!(rest.last().unwrap().1["content"], json!("add: 4"));
    assert_eq!(failure_reasons(&app).await, ["wrong_code", "wrong_code"]);
    assert_eq!(
        logged_approvals(&app, &tia.access).await,
        [
            (json!("step_up_approved"), json!(tia.user_id)),
            (json!("step_up_approved"), json!(tia.user_id)),
        ]
    );
}

async fn a_plain_ask_rule_still_approves_without_a_code(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    // A step-up means nothing without `ask`.
    let r = put_policy(
        &app,
        &admin.access,
        json!({ "role": "user", "tool": "add", "decision": "allow", "step_up": true }),
    )
    .await;
    expect_error(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = put_policy(
        &app,
        &admin.access,
        json!({ "role": "user", "tool": "add", "decision": "ask" }),
    )
    .await;
    assert_eq!(json_of(r).await["step_up"], json!(false));
    app.create_user("uli", "uli-password-Kq4", "user").await;
    let uli = app.login("uli", "uli-password-Kq4").await;
    let sid = new_session(&app, &uli.access).await;

    let (mut turn, mut buffer, pending) =
        turn_until_approval(&app, &uli.access, &sid, r#"/call add {"a":5,"b":3}"#).await;
    assert_eq!(pending["step_up"], json!(false), "{pending}");
    let approval = pending["approval_id"].as_str().unwrap().to_string();
    expect_error(
        send_code(&app, &uli.access, &approval).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let r = approve(&app, &uli.access, &approval, json!({ "approve": true })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let rest = read_until(&mut turn, &mut buffer, "done").await;
    assert_eq!(rest.last().unwrap().1["content"], json!("add: 8"));
    assert_eq!(
        logged_approvals(&app, &uli.access).await,
        [(json!("approved"), json!(uli.user_id))]
    );
}
