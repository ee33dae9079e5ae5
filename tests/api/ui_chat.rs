//! The chat page's controls in a real browser (see ui.rs for the driver and what a clean report means): the Stop
//! button ends a streamed answer mid-way, and an approval under a step-up rule takes a fresh TOTP code in the
//! approval card (a wrong one is refused and runs nothing).

use std::time::Duration;

use warden::{clock::Clock, mfa::totp};

use crate::helpers::prelude::*;
use crate::llm_mock::{Mock, openai_app, openai_stream};
use crate::ui::{assert_clean, browser_modules, run_scenario, screenshot_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stop_button_ends_a_streamed_answer_midway() {
    let Some(modules) = browser_modules() else {
        return;
    };
    // Nine pieces 300 ms apart: the whole answer would take 2.7 s.
    let mock = Mock::default();
    mock.push(openai_stream(
        &[
            "First words ",
            "two ",
            "three ",
            "four ",
            "five ",
            "six ",
            "seven ",
            "eight ",
            "THE END",
        ],
        None,
        Duration::from_millis(300),
    ));
    let app = openai_app(DbKind::Sqlite, &mock, &[]).await;

    let report = run_scenario(
        &modules,
        json!({
            "base": app.base,
            "scenario": "stop_stream",
            "username": "admin",
            "password": ADMIN_PASSWORD,
            "message": "tell me a long story",
            "firstWords": "First words",
            "restMs": 3000,
            "screenshots": screenshot_dir(),
        }),
    )
    .await;

    assert_clean(&report, &[]);
    assert_eq!(
        report["steps"],
        json!(["signed in", "answer streaming", "stopped"])
    );
    assert_eq!(report["stopVisible"], true);
    let answer = report["answer"].as_str().unwrap();
    assert!(
        answer.contains("First words") && answer.contains("Stopped."),
        "{answer}"
    );
    assert!(!answer.contains("THE END"), "{answer}");
    // Nothing more arrived after the stop, and the composer is back.
    assert_eq!(report["answerLater"], report["answer"]);
    assert_eq!(report["stopHidden"], true);
    assert_eq!(report["sendVisible"], true);
    assert_eq!(report["inputEditable"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_up_approval_takes_a_fresh_code_in_the_approval_card() {
    let Some(modules) = browser_modules() else {
        return;
    };
    let app = spawn_app(DbKind::Sqlite).await;
    let admin = app.admin().await;
    let r = app
        .put_as(
            "/api/tool-policies",
            &admin,
            json!({ "role": "user", "tool": "add", "decision": "ask", "step_up": true }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.create_user("tia", "tia-password-Kq4", "user").await;
    let tokens = app.login("tia", "tia-password-Kq4").await;
    let (secret, _) = crate::mfa::enrol_totp(&app, &tokens.access, "tia").await;
    // Enrolment spent this step; sign in with the next one and approve with the one after it (one step of drift
    // is accepted, and each step is accepted once).
    app.clock.advance(Duration::from_secs(30));
    let step = totp::step_at(app.clock.now_secs());
    let login_code = totp::code_at(&secret, step);
    let code = totp::code_at(&secret, step + 1);
    let wrong = crate::mfa::wrong(&code);

    let mut report = run_scenario(
        &modules,
        json!({
            "base": app.base,
            "scenario": "step_up_approval",
            "username": "tia",
            "password": "tia-password-Kq4",
            "loginCode": login_code,
            "code": code,
            "wrongCode": wrong,
            "message": "add 5 and 3",
            "screenshots": screenshot_dir(),
        }),
    )
    .await;

    // The one failed answer is the wrong code's, on this approval's path.
    let failed = report["failedResponses"].as_array().unwrap().clone();
    assert_eq!(failed.len(), 1, "{report:#}");
    let failed = failed[0].as_str().unwrap();
    assert!(
        failed.starts_with("POST /chat/approvals/") && failed.ends_with(" 403"),
        "{failed}"
    );
    report["failedResponses"] = json!([]);
    assert_clean(&report, &[]);
    assert_eq!(
        report["steps"],
        json!([
            "signed in with TOTP",
            "approval asks for a code",
            "wrong code refused",
            "fresh code approved and the tool ran",
        ])
    );
    assert_eq!(report["codeLabel"], "Code (totp)");
    assert!(
        !report["wrongCodeMessage"].as_str().unwrap().is_empty(),
        "{report:#}"
    );
    // After the wrong code the card still offers both buttons and nothing ran.
    assert_eq!(report["buttonsAfterWrong"], 2);
    assert_eq!(report["cardsAfterWrong"], 0);
    assert_eq!(report["approvalStatus"], "Approved.");
    assert!(
        report["answer"].as_str().unwrap().contains('8'),
        "{report:#}"
    );
    let cards = report["toolCards"].as_array().unwrap();
    assert!(
        cards
            .iter()
            .any(|c| c["name"].as_str().unwrap().contains("add")
                && c["result"].as_str().unwrap().contains('8')),
        "{cards:#?}"
    );
    // The server agrees: the call ran once, approved.
    app.state.tool_log.flush().await;
    let calls: Value = app.get_json("/api/tool-calls", &admin).await;
    let calls = calls["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0]["status"], "success", "{calls:#?}");
}
