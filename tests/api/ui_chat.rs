//! The chat page's controls in a real browser (see ui.rs for the driver and what a clean report means): the Stop
//! button ends a streamed answer mid-way, and an approval under a step-up rule takes a fresh code in the approval
//! card, from an authenticator app or texted on request (a wrong one is refused and runs nothing).

use std::time::Duration;

use warden::{clock::Clock, mfa::totp};

use crate::helpers::prelude::*;
use crate::llm_mock::{Mock, openai_app, openai_stream};
use crate::ui::{
    assert_clean, browser_modules, hand_over, run_scenario, screenshot_dir, texts_reach,
    texts_sent, user_with_phone,
};

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
async fn a_step_up_approval_takes_a_fresh_totp_code_in_the_approval_card() {
    let Some(modules) = browser_modules() else {
        return;
    };
    let app = spawn_app(DbKind::Sqlite).await;
    let admin = add_asks_with_step_up(&app).await;
    app.create_user("tia", "tia-password-Kq4", "user").await;
    let tokens = app.login("tia", "tia-password-Kq4").await;
    let (secret, _) = crate::mfa::enrol_totp(&app, &tokens.access, "tia").await;
    // Enrolment spent this step; sign in with the next one and approve with the one after it (one step of drift
    // is accepted, and each step is accepted once).
    app.clock.advance(Duration::from_secs(30));
    let step = totp::step_at(app.clock.now_secs());
    let login_code = totp::code_at(&secret, step);
    let code = totp::code_at(&secret, step + 1);

    let report = run_scenario(
        &modules,
        json!({
            "base": app.base,
            "scenario": "step_up_approval",
            "username": "tia",
            "password": "tia-password-Kq4",
            "loginCode": login_code,
            "code": code,
            "message": "add 5 and 3",
            "screenshots": screenshot_dir(),
        }),
    )
    .await;

    // No "text me a code" for an authenticator code.
    assert_eq!(report["sendCodeVisible"], false, "{report:#}");
    assert_approved_after_a_wrong_code(&app, &admin, report, "Code (totp)", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_up_approval_takes_a_code_texted_from_the_approval_card() {
    use crate::mfa::last_code;
    let Some(modules) = browser_modules() else {
        return;
    };
    let app = spawn_app(DbKind::Sqlite).await;
    let admin = add_asks_with_step_up(&app).await;
    user_with_phone(&app, "sam", "sam-password-Kq4").await;
    let enrolment = texts_sent(&app);
    let dir = tempfile::tempdir().unwrap();
    let files = [
        dir.path().join("login-code"),
        dir.path().join("approval-code"),
    ];

    // Each code the console provider texts is handed to the page: the login's, then the one the card asks for.
    let driver = async {
        for (i, file) in files.iter().enumerate() {
            if !texts_reach(&app, enrolment + i + 1).await {
                return false;
            }
            hand_over(file, &last_code(&app));
        }
        true
    };
    let scenario = run_scenario(
        &modules,
        json!({
            "base": app.base,
            "scenario": "step_up_approval",
            "username": "sam",
            "password": "sam-password-Kq4",
            "codeFiles": files,
            "message": "add 5 and 3",
            "screenshots": screenshot_dir(),
        }),
    );
    let (report, handed) = tokio::join!(scenario, driver);

    assert!(handed, "both codes were texted: {report:#}");
    assert_eq!(report["sendCodeVisible"], true, "{report:#}");
    assert_eq!(report["sentMessage"], "A code was sent to your phone.");
    assert_eq!(texts_sent(&app), enrolment + 2);
    assert_approved_after_a_wrong_code(&app, &admin, report, "Code (sms)", 5).await;
}

/// What both step-up scenarios show: one refused approval (403 on its path), the card still open and nothing run,
/// then the fresh code approves and the tool runs once. `steps` is 4 (TOTP) or 5 (SMS: "code sent").
async fn assert_approved_after_a_wrong_code(
    app: &TestApp,
    admin: &crate::helpers::Tokens,
    mut report: Value,
    label: &str,
    steps: usize,
) {
    let failed = report["failedResponses"].as_array().unwrap().clone();
    assert_eq!(failed.len(), 1, "{report:#}");
    let failed = failed[0].as_str().unwrap();
    assert!(
        failed.starts_with("POST /chat/approvals/") && failed.ends_with(" 403"),
        "{failed}"
    );
    report["failedResponses"] = json!([]);
    assert_clean(&report, &[]);
    let mut expected = vec![
        "signed in with the second factor",
        "approval asks for a code",
        "wrong code refused",
        "fresh code approved and the tool ran",
    ];
    if steps == 5 {
        expected.insert(2, "code sent");
    }
    assert_eq!(report["steps"], json!(expected));
    assert_eq!(report["codeLabel"], label);
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
    // The server agrees: the call ran once.
    app.state.tool_log.flush().await;
    let calls: Value = app.get_json("/api/tool-calls", admin).await;
    let calls = calls["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0]["status"], "success", "{calls:#?}");
}

/// Puts `add` under `ask` with a step-up code for the `user` role; the admin who set it.
async fn add_asks_with_step_up(app: &TestApp) -> crate::helpers::Tokens {
    let admin = app.admin().await;
    let r = app
        .put_as(
            "/api/tool-policies",
            &admin,
            json!({ "role": "user", "tool": "add", "decision": "ask", "step_up": true }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    admin
}
