//! The web UI in a real browser: Debian's Chromium, headless, driven by tests/browser/run.cjs (playwright-core)
//! against the server on a free port. Each scenario's report must show every step done and nothing that must
//! not happen: no console or page error, no CSP violation, no request to another host, no serious or critical
//! axe-core finding (in the light and the dark colour scheme). Screenshots of each page at 1280x800 and 390x844,
//! light and dark, go to `<target>/ui-screenshots/`.
//!
//! The browser is a peer like the Python SDKs: `.ci/run` installs Chromium and the npm packages; without them the
//! test says it was not run, unless WARDEN_REQUIRE_PEERS=1 (as in CI), where it fails.

use std::{io::Write, path::PathBuf, time::Duration};

use crate::helpers::prelude::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The node_modules folder with playwright-core and axe-core, when it and Chromium are there.
pub(crate) fn browser_modules() -> Option<PathBuf> {
    let modules = PathBuf::from(
        std::env::var("WARDEN_TEST_BROWSER_MODULES")
            .unwrap_or_else(|_| "/root/.cache/warden-ci/browser/node_modules".into()),
    );
    let ok = modules.join("playwright-core").is_dir()
        && modules.join("axe-core").is_dir()
        && std::path::Path::new(CHROMIUM).exists();
    if ok {
        return Some(modules);
    }
    if std::env::var("WARDEN_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!(
            "the browser is required (WARDEN_REQUIRE_PEERS=1) but {CHROMIUM} or {} is missing; run .ci/run",
            modules.display()
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n*** browser test NOT RUN: {CHROMIUM} or {} is missing (run .ci/run to install them) ***\n",
        modules.display()
    );
    None
}

pub(crate) fn screenshot_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("ui-screenshots")
}

/// Runs one scenario of tests/browser/run.cjs and returns its report.
pub(crate) async fn run_scenario(modules: &PathBuf, config: Value) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/run.cjs");
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .arg(config.to_string())
        .env("NODE_PATH", modules)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser scenario finishes within 180 s")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "the driver printed no report ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Everything that must stay empty in a report, and the failed answers it expects (`"POST /auth/login 401"`).
pub(crate) fn assert_clean(report: &Value, expected_failures: &[&str]) {
    assert_eq!(
        report["failedResponses"],
        json!(expected_failures),
        "answers of 400 and above: {report:#}"
    );
    assert_eq!(
        report["error"],
        Value::Null,
        "the scenario failed: {report:#}"
    );
    for field in [
        "consoleErrors",
        "pageErrors",
        "cspViolations",
        "foreignRequests",
    ] {
        assert_eq!(report[field], json!([]), "{field}: {report:#}");
    }
    for (page, findings) in report["axe"].as_object().unwrap() {
        assert_eq!(findings, &json!([]), "axe-core on {page}: {findings:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_chats_with_a_tool_and_signs_out_in_a_real_browser() {
    let Some(modules) = browser_modules() else {
        return;
    };
    let app = spawn_app(DbKind::Sqlite).await;

    let report = run_scenario(
        &modules,
        json!({
            "base": app.base,
            "scenario": "sign_in_and_chat",
            "username": "admin",
            "password": ADMIN_PASSWORD,
            "message": "add 5 and 3",
            "screenshots": screenshot_dir(),
        }),
    )
    .await;

    assert_clean(&report, &["POST /auth/login 401"]);
    assert_eq!(
        report["steps"],
        json!([
            "signed-out browser sent to /login",
            "wrong password refused with a message",
            "signed in and on /chat",
            "new conversation",
            "answer streamed with its tool card",
            "conversation deleted",
            "signed out: /chat sends the browser back to /login",
        ])
    );
    // The login error says only what the API says: nothing about which part was wrong.
    let refused = report["wrongPasswordMessage"].as_str().unwrap();
    assert!(!refused.is_empty());
    assert!(
        !refused.to_lowercase().contains("password is wrong"),
        "{refused}"
    );
    assert_eq!(report["userName"], "admin");
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
        "a tool card for add with its result: {cards:#?}"
    );
    for shot in report["screenshots"].as_array().unwrap() {
        let path = shot.as_str().unwrap();
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        assert!(bytes > 1000, "{path} was written ({bytes} bytes)");
    }
    // Login and chat, light and dark, at two sizes.
    assert_eq!(report["screenshots"].as_array().unwrap().len(), 8);
    // The icon every page names is served as SVG (so no icon request fails).
    assert_eq!(
        report["favicon"],
        json!({ "href": "/static/favicon.svg", "status": 200, "type": "image/svg+xml" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_answer_with_script_bearing_markdown_runs_nothing() {
    use crate::llm_mock::{Mock, openai_app, openai_stream};
    let Some(modules) = browser_modules() else {
        return;
    };
    let mock = Mock::default();
    mock.push(openai_stream(
        &[
            "Look: <script>window.__pwned = 'script'</script> ",
            "[click me](javascript:window.__pwned='link') ",
            "<img src=x onerror=\"window.__pwned='img'\"> ",
            "<a href=\"javascript:window.__pwned='a'\" onclick=\"window.__pwned='click'\">a</a> ",
            "[fine](https://example.invalid/page) end of answer",
        ],
        None,
        Duration::from_millis(5),
    ));
    let app = openai_app(DbKind::Sqlite, &mock, &[]).await;

    let report = run_scenario(
        &modules,
        json!({
            "base": app.base,
            "scenario": "hostile_markdown",
            "username": "admin",
            "password": ADMIN_PASSWORD,
            "message": "hi",
            "screenshots": screenshot_dir(),
        }),
    )
    .await;

    assert_clean(&report, &[]);
    assert_eq!(
        report["steps"],
        json!(["signed in", "hostile answer shown", "checked"])
    );
    let rendered = &report["rendered"];
    assert_eq!(rendered["pwned"], Value::Null, "{rendered:#}");
    assert_eq!(rendered["elements"], json!([]), "{rendered:#}");
    assert_eq!(rendered["handlers"], json!([]), "{rendered:#}");
    for href in rendered["hrefs"].as_array().unwrap() {
        let href = href.as_str().unwrap();
        assert!(
            href.starts_with("https://") || href.starts_with("http://"),
            "{href}"
        );
    }
    // The markup is shown as the text it is.
    assert!(
        rendered["text"].as_str().unwrap().contains("<script>"),
        "{rendered:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_totp_second_factor_signs_in_after_a_wrong_code_is_refused() {
    use warden::{clock::Clock, mfa::totp};
    let Some(modules) = browser_modules() else {
        return;
    };
    let app = spawn_app(DbKind::Sqlite).await;
    app.create_user("tess", "tess-password-Kq4", "user").await;
    let tokens = app.login("tess", "tess-password-Kq4").await;
    let (secret, _) = crate::mfa::enrol_totp(&app, &tokens.access, "tess").await;
    // The enrolment used this 30 s step's code, and a step is accepted once: sign in with the next one.
    app.clock.advance(Duration::from_secs(30));
    let code = totp::code_at(&secret, totp::step_at(app.clock.now_secs()));
    let wrong = crate::mfa::wrong(&code);

    let report = run_scenario(
        &modules,
        json!({
            "base": app.base,
            "scenario": "totp_sign_in",
            "username": "tess",
            "password": "tess-password-Kq4",
            "code": code,
            "wrongCode": wrong,
            "screenshots": screenshot_dir(),
        }),
    )
    .await;

    assert_clean(&report, &["POST /auth/mfa/verify 401"]);
    assert_eq!(
        report["steps"],
        json!([
            "second factor asked",
            "wrong code refused with a message",
            "signed in with the code"
        ])
    );
    assert_eq!(report["methods"], json!(["totp", "recovery"]));
    assert!(!report["wrongCodeMessage"].as_str().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_tool_runs_when_approved_and_not_when_refused() {
    let Some(modules) = browser_modules() else {
        return;
    };
    let app = spawn_app(DbKind::Sqlite).await;
    let admin = app.admin().await;
    app.create_user("vic", "vic-password-Kq4", "user").await;
    let r = app
        .put_as(
            "/api/tool-policies",
            &admin,
            json!({ "role": "user", "tool": "add", "decision": "ask" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let report = run_scenario(
        &modules,
        json!({
            "base": app.base,
            "scenario": "approvals",
            "username": "vic",
            "password": "vic-password-Kq4",
            "firstMessage": "add 5 and 3",
            "secondMessage": "add 20 and 22",
            "screenshots": screenshot_dir(),
        }),
    )
    .await;

    assert_clean(&report, &[]);
    assert_eq!(
        report["steps"],
        json!([
            "signed in",
            "approval asked",
            "approved call ran",
            "refused call did not run"
        ])
    );
    assert!(
        report["approvedAnswer"].as_str().unwrap().contains('8'),
        "{report:#}"
    );
    assert!(
        !report["refusedAnswer"].as_str().unwrap().contains("42"),
        "{report:#}"
    );
    let cards = report["toolCards"].as_array().unwrap();
    assert!(
        cards
            .iter()
            .any(|c| c["result"].as_str().unwrap().contains('8')),
        "{cards:#?}"
    );
    assert!(
        !cards
            .iter()
            .any(|c| c["result"].as_str().unwrap().contains("42")),
        "the refused call has no result: {cards:#?}"
    );
}

/// A user with a verified phone (the test number), enrolled through the API with the console provider's code.
pub(crate) async fn user_with_phone(app: &TestApp, username: &str, password: &str) {
    use crate::mfa::{PHONE, last_code};
    app.create_user(username, password, "user").await;
    let tokens = app.login(username, password).await;
    let r = app
        .post_as("/api/me/phone", &tokens, json!({ "phone_number": PHONE }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .post_as(
            "/api/me/phone/verify",
            &tokens,
            json!({ "code": last_code(app) }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// How many texts the console provider has sent to the test number.
pub(crate) fn texts_sent(app: &TestApp) -> usize {
    let to = crate::mfa::number();
    app.state
        .sms
        .console()
        .unwrap()
        .outbox()
        .iter()
        .filter(|m| m.to == to)
        .count()
}

/// Waits (bounded: 30 s) until `n` texts have gone to the test number; false if they never do.
pub(crate) async fn texts_reach(app: &TestApp, n: usize) -> bool {
    for _ in 0..300 {
        if texts_sent(app) >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Hands `text` to the page: the scenario polls for `path`, so it appears whole (written aside, then renamed).
pub(crate) fn hand_over(path: &std::path::Path, text: &str) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).unwrap();
    std::fs::rename(&partial, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_second_factor_signs_in_with_a_new_code_sent_from_the_page() {
    use crate::mfa::last_code;
    let Some(modules) = browser_modules() else {
        return;
    };
    let app = spawn_app(DbKind::Sqlite).await;
    user_with_phone(&app, "sid", "sid-password-Kq4").await;
    let enrolment = texts_sent(&app);
    let dir = tempfile::tempdir().unwrap();
    let clock_moved = dir.path().join("clock-moved");
    let code_file = dir.path().join("code");

    // The test's side: when the login's code is out, move the server's clock past the 30 s between sends and say
    // so; when the new code is out, hand it to the page.
    let driver = async {
        if !texts_reach(&app, enrolment + 1).await {
            return false;
        }
        app.clock.advance(Duration::from_secs(31));
        hand_over(&clock_moved, "");
        if !texts_reach(&app, enrolment + 2).await {
            return false;
        }
        hand_over(&code_file, &last_code(&app));
        true
    };
    let scenario = run_scenario(
        &modules,
        json!({
            "base": app.base,
            "scenario": "sms_resend",
            "username": "sid",
            "password": "sid-password-Kq4",
            "clockMoved": clock_moved,
            "codeFile": code_file,
            "screenshots": screenshot_dir(),
        }),
    );
    let (report, handed) = tokio::join!(scenario, driver);

    assert_clean(&report, &[]);
    assert_eq!(
        report["steps"],
        json!([
            "SMS code asked",
            "new code sent",
            "signed in with the new code"
        ])
    );
    assert!(handed, "both codes were sent: {report:#}");
    assert_eq!(
        texts_sent(&app),
        enrolment + 2,
        "one code at login, one on request"
    );
    assert_eq!(report["methods"], json!(["sms"]));
    assert_eq!(report["resendVisible"], true);
    assert_eq!(report["resendMessage"], "A new code was sent.");
}
