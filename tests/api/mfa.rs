//! Second factors at login (issue 9, item 7): SMS codes, TOTP and recovery codes, the `mfa` token, and the
//! per-role requirement to enrol. Codes are read from the console SMS provider's outbox; TOTP codes are
//! computed from the enrolment's secret at the controlled clock.

use std::time::Duration;

use reqwest::Method;
use warden::{clock::Clock, mfa::totp, sms::PhoneNumber};

use crate::helpers::{BrowserSession, prelude::*};

db_tests!(
    an_sms_code_completes_the_login_with_the_plain_login_answer,
    five_wrong_codes_kill_the_challenge_even_for_the_right_code,
    an_expired_code_fails,
    a_code_works_once,
    of_sixteen_concurrent_submissions_of_one_code_exactly_one_wins,
    resend_is_throttled_and_invalidates_the_older_code,
    totp_accepts_one_step_either_way_and_never_the_same_step_twice,
    a_recovery_code_works_once,
    the_mfa_token_is_refused_everywhere_but_its_own_routes,
    cookie_mode_completion_sets_the_cookie_and_csrf_and_ends_the_old_session,
    a_role_that_requires_mfa_confines_the_session_to_enrolment,
    a_phone_is_enrolled_with_a_code_from_the_console_provider,
    removing_totp_needs_a_current_unused_code,
    without_sms_enrolling_a_phone_answers_503_with_the_reason,
    with_telesign_a_blocked_number_is_refused_and_a_flagged_one_is_audited,
    with_telesign_a_second_factor_login_completes_end_to_end,
);

pub(crate) const PHONE: &str = "+1 555 010 4477";

pub(crate) fn number() -> PhoneNumber {
    PhoneNumber::parse(PHONE).unwrap()
}

/// The six-digit code in the newest SMS to the test number.
pub(crate) fn last_code(app: &TestApp) -> String {
    let text = app
        .state
        .sms
        .console()
        .expect("the console provider")
        .last_to(&number())
        .expect("an SMS was sent")
        .text;
    let digits: String = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_string();
    digits
}

fn sms_count(app: &TestApp) -> usize {
    app.state
        .sms
        .console()
        .unwrap()
        .outbox()
        .iter()
        .filter(|m| m.to == number())
        .count()
}

/// A user with a verified phone; returns its password.
async fn user_with_phone(app: &TestApp, username: &str) -> String {
    let password = format!("{username}-password-Kq4");
    app.create_user(username, &password, "user").await;
    let tokens = app.login(username, &password).await;
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
    password
}

/// Logs in with a password and expects the challenge; returns the mfa token.
async fn challenge(app: &TestApp, username: &str, password: &str) -> String {
    let r = app.login_raw(username, password).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers().get("set-cookie").is_none(),
        "no cookie before the second factor"
    );
    let body = json_of(r).await;
    assert_eq!(body["mfa_required"], json!(true), "{body}");
    assert!(
        body["access_token"].is_null() && body["refresh_token"].is_null(),
        "{body}"
    );
    body["mfa_token"].as_str().unwrap().to_string()
}

async fn verify(app: &TestApp, mfa_token: &str, code: &str, method: &str) -> reqwest::Response {
    app.post(
        "/auth/mfa/verify",
        json!({ "mfa_token": mfa_token, "code": code, "method": method }),
    )
    .await
}

/// A wrong code of the same shape as `code`.
pub(crate) fn wrong(code: &str) -> String {
    let first = (code.as_bytes()[0] - b'0' + 1) % 10;
    format!("{first}{}", &code[1..])
}

/// The audit events named `event`, as (outcome, detail text).
pub(crate) async fn events(app: &TestApp, event: &str) -> Vec<(String, String)> {
    app.state.audit.flush().await;
    sqlx::query_as("SELECT outcome, detail FROM audit_events WHERE event = $1 ORDER BY at")
        .bind(event)
        .fetch_all(&app.db().pool)
        .await
        .unwrap()
}

/// A user with a confirmed TOTP authenticator: (password, secret bytes, recovery codes).
async fn user_with_totp(app: &TestApp, username: &str) -> (String, Vec<u8>, Vec<String>) {
    let password = format!("{username}-password-Kq4");
    app.create_user(username, &password, "user").await;
    let tokens = app.login(username, &password).await;
    let (secret, codes) = enrol_totp(app, &tokens.access, username).await;
    (password, secret, codes)
}

pub(crate) async fn enrol_totp(
    app: &TestApp,
    token: &str,
    username: &str,
) -> (Vec<u8>, Vec<String>) {
    let body = json_of(app.post_as("/api/me/mfa/totp", token, json!({})).await).await;
    let secret_b32 = body["secret"].as_str().unwrap_or_else(|| panic!("{body}"));
    assert_eq!(secret_b32.len(), 32, "20 bytes in base32 without padding");
    assert!(!secret_b32.contains('='));
    assert_eq!(
        body["otpauth_uri"],
        json!(format!(
            "otpauth://totp/Warden:{username}?secret={secret_b32}&issuer=Warden&algorithm=SHA1&digits=6&period=30"
        ))
    );
    let secret = totp::base32_decode(secret_b32).unwrap();
    let code = totp::code_at(&secret, totp::step_at(app.clock.now_secs()));
    let r = app
        .post_as("/api/me/mfa/totp/confirm", token, json!({ "code": code }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

async fn an_sms_code_completes_the_login_with_the_plain_login_answer(kind: DbKind) {
    let app = spawn_app(kind).await;
    let password = user_with_phone(&app, "mona").await;
    let sent_before = sms_count(&app);
    let login = json_of(app.login_raw("mona", &password).await).await;
    assert_eq!(login["methods"], json!(["sms"]));
    assert_eq!(
        sms_count(&app),
        sent_before + 1,
        "the code is sent at login"
    );
    let mfa_token = login["mfa_token"].as_str().unwrap();

    let r = verify(&app, mfa_token, &last_code(&app), "sms").await;

    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    for field in [
        "access_token",
        "refresh_token",
        "token",
        "expires_in",
        "user_id",
    ] {
        assert!(!body[field].is_null(), "missing {field}: {body}");
    }
    assert_eq!(body["username"], json!("mona"));
    let me = app
        .get_bearer("/api/me", body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.status(), StatusCode::OK);
    let refreshed = app
        .post(
            "/auth/refresh",
            json!({ "refresh_token": body["refresh_token"] }),
        )
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let seed_path = json_of(
        app.post(
            "/api/login",
            json!({ "username": "mona", "password": password }),
        )
        .await,
    )
    .await;
    assert_eq!(seed_path["mfa_required"], json!(true), "{seed_path}");
    assert!(seed_path["access_token"].is_null());
    let challenges = events(&app, "mfa.challenge").await;
    let successes = events(&app, "mfa.success").await;
    assert_eq!((challenges.len(), successes.len()), (2, 1));
}

async fn five_wrong_codes_kill_the_challenge_even_for_the_right_code(kind: DbKind) {
    let app = spawn_app(kind).await;
    let password = user_with_phone(&app, "nils").await;
    let mfa_token = challenge(&app, "nils", &password).await;
    let code = last_code(&app);
    for _ in 0..5 {
        let r = verify(&app, &mfa_token, &wrong(&code), "sms").await;
        let body = expect_error(r, StatusCode::UNAUTHORIZED).await;
        assert_eq!(body["code"], json!("invalid_code"));
    }

    let r = verify(&app, &mfa_token, &code, "sms").await;

    expect_error(r, StatusCode::UNAUTHORIZED).await;
    let failures = events(&app, "mfa.failure").await;
    assert_eq!(failures.len(), 6);
    assert!(failures[5].1.contains("too_many_attempts"), "{failures:?}");
    // A fresh login starts a fresh challenge, which the right code completes.
    let mfa_token = challenge(&app, "nils", &password).await;
    let r = verify(&app, &mfa_token, &last_code(&app), "sms").await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn an_expired_code_fails(kind: DbKind) {
    let app = spawn_app(kind).await;
    let password = user_with_phone(&app, "olga").await;
    let mfa_token = challenge(&app, "olga", &password).await;
    let code = last_code(&app);

    app.clock.advance(Duration::from_secs(5 * 60 + 1));
    let r = verify(&app, &mfa_token, &code, "sms").await;

    expect_error(r, StatusCode::UNAUTHORIZED).await;
    let failures = events(&app, "mfa.failure").await;
    assert!(failures[0].1.contains("expired"), "{failures:?}");
}

async fn a_code_works_once(kind: DbKind) {
    let app = spawn_app(kind).await;
    let password = user_with_phone(&app, "pete").await;
    let mfa_token = challenge(&app, "pete", &password).await;
    let code = last_code(&app);
    assert_eq!(
        verify(&app, &mfa_token, &code, "sms").await.status(),
        StatusCode::OK
    );

    let again = verify(&app, &mfa_token, &code, "sms").await;

    expect_error(again, StatusCode::UNAUTHORIZED).await;
}

async fn of_sixteen_concurrent_submissions_of_one_code_exactly_one_wins(kind: DbKind) {
    let app = spawn_app(kind).await;
    let password = user_with_phone(&app, "rita").await;
    let mfa_token = challenge(&app, "rita", &password).await;
    let code = last_code(&app);

    let attempts = (0..16).map(|_| verify(&app, &mfa_token, &code, "sms"));
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status())
        .collect();

    let wins = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(wins, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
}

async fn resend_is_throttled_and_invalidates_the_older_code(kind: DbKind) {
    let app = spawn_app(kind).await;
    let password = user_with_phone(&app, "sven").await;
    let mfa_token = challenge(&app, "sven", &password).await;
    let first = last_code(&app);
    let send = || app.post("/auth/mfa/send", json!({ "mfa_token": mfa_token }));

    let soon = send().await;
    assert_eq!(soon.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = soon.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    let sent = sms_count(&app);
    // Four resends 31 s apart (five sends with the first), then no more for this challenge.
    for _ in 0..4 {
        app.clock.advance(Duration::from_secs(31));
        assert_eq!(send().await.status(), StatusCode::OK);
    }
    assert_eq!(sms_count(&app), sent + 4);
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(send().await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sms_count(&app), sent + 4);
    let newest = last_code(&app);

    let old = verify(&app, &mfa_token, &first, "sms").await;
    let new = verify(&app, &mfa_token, &newest, "sms").await;

    if first != newest {
        expect_error(old, StatusCode::UNAUTHORIZED).await;
        assert_eq!(new.status(), StatusCode::OK);
    }
}

async fn totp_accepts_one_step_either_way_and_never_the_same_step_twice(kind: DbKind) {
    let app = spawn_app(kind).await;
    let (password, secret, _) = user_with_totp(&app, "tara").await;
    // Well past the step used to confirm, so every step below is unused.
    app.clock.advance(Duration::from_secs(10 * 30));
    let step = totp::step_at(app.clock.now_secs());

    for drift in [-1, 0, 1] {
        let mfa_token = challenge(&app, "tara", &password).await;
        let r = verify(
            &app,
            &mfa_token,
            &totp::code_at(&secret, step + drift),
            "totp",
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "drift {drift}");
    }

    let mfa_token = challenge(&app, "tara", &password).await;
    for refused in [step + 1, step, step + 2, step - 2] {
        let r = verify(&app, &mfa_token, &totp::code_at(&secret, refused), "totp").await;
        expect_error(r, StatusCode::UNAUTHORIZED).await;
    }
    // The next step, once the clock reaches it, works (the challenge has one attempt left).
    app.clock.advance(Duration::from_secs(30));
    let r = verify(&app, &mfa_token, &totp::code_at(&secret, step + 2), "totp").await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn a_recovery_code_works_once(kind: DbKind) {
    let app = spawn_app(kind).await;
    let (password, _, codes) = user_with_totp(&app, "ulla").await;
    let mfa_token = challenge(&app, "ulla", &password).await;

    let r = verify(&app, &mfa_token, &codes[3].to_uppercase(), "recovery").await;

    assert_eq!(r.status(), StatusCode::OK);
    let token = json_of(r).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let factors = app.get_json("/api/me/mfa", &token).await;
    assert_eq!(factors["factors"]["recovery_codes_remaining"], json!(9));
    assert_eq!(events(&app, "mfa.recovery_used").await.len(), 1);
    let mfa_token = challenge(&app, "ulla", &password).await;
    let again = verify(&app, &mfa_token, &codes[3], "recovery").await;
    expect_error(again, StatusCode::UNAUTHORIZED).await;
    let other = verify(&app, &mfa_token, &codes[4], "recovery").await;
    assert_eq!(other.status(), StatusCode::OK);
}

async fn the_mfa_token_is_refused_everywhere_but_its_own_routes(kind: DbKind) {
    let app = spawn_app(kind).await;
    let password = user_with_phone(&app, "vera").await;
    let mfa_token = challenge(&app, "vera", &password).await;

    expect_refused(&app, &mfa_token).await;
    let chat = app
        .post_as("/chat/session/new", &mfa_token, json!({ "title": "x" }))
        .await;
    expect_error(chat, StatusCode::UNAUTHORIZED).await;
    let mcp = app
        .client
        .post(app.url("/mcp"))
        .bearer_auth(&mfa_token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }))
        .send()
        .await
        .unwrap();
    assert_eq!(mcp.status(), StatusCode::UNAUTHORIZED);
    let refresh = app
        .post("/auth/refresh", json!({ "refresh_token": mfa_token }))
        .await;
    expect_error(refresh, StatusCode::UNAUTHORIZED).await;
    let cookie = app
        .get_as(
            "/api/me",
            &header("cookie", format!("auth_token={mfa_token}")),
        )
        .await;
    expect_error(cookie, StatusCode::UNAUTHORIZED).await;
    let verified: Value = json_of(
        app.post("/auth/verify", json!({ "token": mfa_token }))
            .await,
    )
    .await;
    assert_eq!(verified["valid"], json!(false));
    // A token that is not an mfa token does not complete a challenge either.
    let access = app.login("admin", ADMIN_PASSWORD).await.access;
    let r = verify(&app, &access, &last_code(&app), "sms").await;
    expect_error(r, StatusCode::UNAUTHORIZED).await;
    // And the mfa token still does its own job.
    let r = verify(&app, &mfa_token, &last_code(&app), "sms").await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// Completes a cookie-mode login of a TOTP user, sending `old_cookie` if given; returns the browser session.
async fn totp_cookie_login(
    app: &TestApp,
    username: &str,
    password: &str,
    secret: &[u8],
    old_cookie: Option<&str>,
) -> BrowserSession {
    let r = app
        .post(
            "/auth/login",
            json!({ "username": username, "password": password, "mode": "cookie" }),
        )
        .await;
    assert!(r.headers().get("set-cookie").is_none());
    let body = json_of(r).await;
    assert!(body["csrf_token"].is_null(), "{body}");
    let mfa_token = body["mfa_token"].as_str().unwrap();
    // One login per step: each step is accepted once.
    app.clock.advance(Duration::from_secs(30));
    let code = totp::code_at(secret, totp::step_at(app.clock.now_secs()));
    let mut request = app
        .client
        .post(app.url("/auth/mfa/verify"))
        .json(&json!({ "mfa_token": mfa_token, "code": code, "method": "totp" }));
    if let Some(c) = old_cookie {
        request = request.header("cookie", c);
    }
    let r = request.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let body = json_of(r).await;
    assert!(
        body["access_token"].is_null(),
        "cookie mode hands out no bearer token: {body}"
    );
    BrowserSession {
        cookie: set_cookie.split(';').next().unwrap().to_string(),
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
        set_cookie,
    }
}

async fn cookie_mode_completion_sets_the_cookie_and_csrf_and_ends_the_old_session(kind: DbKind) {
    let app = spawn_app(kind).await;
    let (password, secret, _) = user_with_totp(&app, "wade").await;
    let plain = app.login_cookie("admin", ADMIN_PASSWORD).await;

    let first = totp_cookie_login(&app, "wade", &password, &secret, None).await;

    for flag in ["HttpOnly", "Path=/", "SameSite="] {
        assert!(first.set_cookie.contains(flag), "{}", first.set_cookie);
        assert!(plain.set_cookie.contains(flag));
    }
    assert_eq!(
        first.cookie.split('=').next(),
        plain.cookie.split('=').next(),
        "the same cookie name as a plain login"
    );
    let created = app
        .post_as("/chat/session/new", &first, json!({ "title": "t" }))
        .await;
    assert_eq!(created.status(), StatusCode::OK, "the CSRF token works");
    let without_csrf = app
        .post_as(
            "/chat/session/new",
            &header("cookie", &first.cookie),
            json!({}),
        )
        .await;
    expect_error(without_csrf, StatusCode::FORBIDDEN).await;
    // The same browser logs in again: its old session ends.
    let second = totp_cookie_login(&app, "wade", &password, &secret, Some(&first.cookie)).await;
    assert_ne!(second.cookie, first.cookie);
    let old = app
        .get_as("/api/me", &header("cookie", &first.cookie))
        .await;
    expect_error(old, StatusCode::UNAUTHORIZED).await;
    let new = app
        .get_as("/api/me", &header("cookie", &second.cookie))
        .await;
    assert_eq!(new.status(), StatusCode::OK);
}

async fn a_role_that_requires_mfa_confines_the_session_to_enrolment(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.login("admin", ADMIN_PASSWORD).await;
    let r = app
        .post_as(
            "/api/permissions",
            &admin,
            json!({ "role": "secure", "description": "needs a second factor", "permissions": ["chat:use"], "require_mfa": true }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let roles = app.get_json("/api/permissions", &admin).await;
    let secure = roles["data"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == json!("secure"))
        .cloned()
        .unwrap();
    assert_eq!(secure["require_mfa"], json!(true));
    app.create_user("xena", "xena-password-Kq4", "secure").await;
    let tokens = app.login("xena", "xena-password-Kq4").await;

    let chat = app
        .post_as("/chat/session/new", &tokens, json!({ "title": "t" }))
        .await;

    let body = expect_error(chat, StatusCode::FORBIDDEN).await;
    assert_eq!(body["code"], json!("mfa_enrolment_required"));
    assert_eq!(body["error"], json!("Enrol a second factor first"));
    let tools = app.get_as("/tools", &tokens).await;
    assert_eq!(tools.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.get_as("/api/me", &tokens).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_as("/api/status", &tokens).await.status(),
        StatusCode::OK
    );
    let factors = app.get_json("/api/me/mfa", &tokens).await;
    assert_eq!(factors["factors"]["required"], json!(true));
    assert_eq!(factors["factors"]["enrolled"], json!(false));
    // Once a factor is confirmed, the same session may do what its role allows.
    enrol_totp(&app, &tokens.access, "xena").await;
    let chat = app
        .post_as("/chat/session/new", &tokens, json!({ "title": "t" }))
        .await;
    assert_eq!(chat.status(), StatusCode::OK);
    // And the next login asks for the factor.
    challenge(&app, "xena", "xena-password-Kq4").await;
    // A role left out of an update keeps its setting.
    app.post_as(
        "/api/permissions",
        &admin,
        json!({ "role": "secure", "permissions": ["chat:use"] }),
    )
    .await;
    let roles = app.get_json("/api/permissions", &admin).await;
    assert!(
        roles["data"]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == json!("secure") && r["require_mfa"] == json!(true))
    );
}

async fn a_phone_is_enrolled_with_a_code_from_the_console_provider(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("yuri", "yuri-password-Kq4", "user").await;
    let tokens = app.login("yuri", "yuri-password-Kq4").await;
    let bad = app
        .post_as(
            "/api/me/phone",
            &tokens,
            json!({ "phone_number": "555-CALL-NOW" }),
        )
        .await;
    expect_error(bad, StatusCode::BAD_REQUEST).await;
    let abroad = app
        .post_as(
            "/api/me/phone",
            &tokens,
            json!({ "phone_number": "+44 20 7946 0958" }),
        )
        .await;
    expect_error(abroad, StatusCode::BAD_REQUEST).await;

    let r = app
        .post_as("/api/me/phone", &tokens, json!({ "phone_number": PHONE }))
        .await;

    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    assert_eq!(body["phone_number"], json!(number().masked()));
    let code = last_code(&app);
    let factors = app.get_json("/api/me/mfa", &tokens).await;
    assert_eq!(factors["factors"]["phone"]["verified"], json!(false));
    assert!(!factors.to_string().contains(number().digits()));
    // Unverified, the phone is no factor: the login opens a session at once.
    assert!(
        json_of(app.login_raw("yuri", "yuri-password-Kq4").await).await["access_token"].is_string()
    );
    let again = app
        .post_as("/api/me/phone", &tokens, json!({ "phone_number": PHONE }))
        .await;
    assert_eq!(
        again.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "resends are 30 s apart"
    );
    let wrong_code = app
        .post_as(
            "/api/me/phone/verify",
            &tokens,
            json!({ "code": wrong(&code) }),
        )
        .await;
    expect_error(wrong_code, StatusCode::UNPROCESSABLE_ENTITY).await;
    let ok = app
        .post_as("/api/me/phone/verify", &tokens, json!({ "code": code }))
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let factors = app.get_json("/api/me/mfa", &tokens).await;
    assert_eq!(factors["factors"]["phone"]["verified"], json!(true));
    assert_eq!(factors["factors"]["enrolled"], json!(true));
    challenge(&app, "yuri", "yuri-password-Kq4").await;

    let removed = app
        .request_as(Method::DELETE, "/api/me/phone", &tokens)
        .await;

    assert_eq!(removed.status(), StatusCode::OK);
    assert!(
        json_of(app.login_raw("yuri", "yuri-password-Kq4").await).await["access_token"].is_string()
    );
    assert_eq!(events(&app, "mfa.enrolled").await.len(), 1);
    let removals = events(&app, "mfa.removed").await;
    assert_eq!(removals.len(), 1);
    assert!(removals[0].1.contains("sms"));
}

async fn removing_totp_needs_a_current_unused_code(kind: DbKind) {
    let app = spawn_app(kind).await;
    let (password, secret, _) = user_with_totp(&app, "zeno").await;
    let mfa_token = challenge(&app, "zeno", &password).await;
    app.clock.advance(Duration::from_secs(30));
    let step = totp::step_at(app.clock.now_secs());
    let r = verify(&app, &mfa_token, &totp::code_at(&secret, step), "totp").await;
    let token = json_of(r).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let remove = |code: String| {
        app.json_as(
            Method::DELETE,
            "/api/me/mfa/totp",
            &token,
            json!({ "code": code }),
        )
    };

    let replayed = remove(totp::code_at(&secret, step)).await;
    let far = remove(totp::code_at(&secret, step + 5)).await;
    app.clock.advance(Duration::from_secs(30));
    let current = remove(totp::code_at(&secret, step + 1)).await;

    expect_error(replayed, StatusCode::UNPROCESSABLE_ENTITY).await;
    expect_error(far, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(current.status(), StatusCode::OK);
    let factors = app.get_json("/api/me/mfa", &token).await;
    assert_eq!(factors["factors"]["totp"], json!(false));
    assert_eq!(factors["factors"]["recovery_codes_remaining"], json!(0));
    let login = json_of(app.login_raw("zeno", &password).await).await;
    assert!(
        login["access_token"].is_string(),
        "no factor left, no challenge: {login}"
    );
    let removals = events(&app, "mfa.removed").await;
    assert!(
        removals.len() == 1 && removals[0].1.contains("totp"),
        "{removals:?}"
    );
}

async fn without_sms_enrolling_a_phone_answers_503_with_the_reason(kind: DbKind) {
    let app = spawn_app_with(kind, &[("SMS_PROVIDER", "none")]).await;
    app.create_user("abel", "abel-password-Kq4", "user").await;
    let tokens = app.login("abel", "abel-password-Kq4").await;

    let r = app
        .post_as("/api/me/phone", &tokens, json!({ "phone_number": PHONE }))
        .await;

    let body = expect_error(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        body["error"].as_str().unwrap().contains("SMS_PROVIDER"),
        "{body}"
    );
    let factors = app.get_json("/api/me/mfa", &tokens).await;
    assert!(
        factors["factors"]["phone"].is_null(),
        "nothing is pending: {factors}"
    );
}

/// The six-digit code in the newest message the Telesign mock received for `digits`.
fn mock_code(mock: &warden::sms::telesign::mock::MockHandle, digits: &str) -> String {
    let text = mock
        .received()
        .into_iter()
        .rev()
        .find(|r| r.path == "/v1/messaging" && r.fields["phone_number"] == digits)
        .expect("a message reached the mock")
        .fields["message"]
        .as_str()
        .unwrap()
        .to_string();
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_string()
}

async fn with_telesign_a_blocked_number_is_refused_and_a_flagged_one_is_audited(kind: DbKind) {
    let mock = crate::sms::start_mock().await;
    let app = crate::sms::telesign_app(kind, &mock, &[]).await;
    app.create_user("rita", "rita-password-Kq4", "user").await;
    let tokens = app.login("rita", "rita-password-Kq4").await;

    let r = app
        .post_as(
            "/api/me/phone",
            &tokens,
            json!({ "phone_number": "+1 555 010 9999" }),
        )
        .await;
    let body = expect_error(r, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["code"], "number_blocked", "{body}");
    assert!(
        !mock.received().iter().any(|r| r.path == "/v1/messaging"),
        "no code went to a blocked number"
    );
    let r = app
        .post_as(
            "/api/me/phone",
            &tokens,
            json!({ "phone_number": "+1 555 010 5555" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let flagged = events(&app, "mfa.phone_flagged").await;
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert!(flagged[0].1.contains("flag"), "{flagged:?}");
    assert!(!flagged[0].1.contains("15550105555"), "{flagged:?}");
    assert_eq!(events(&app, "mfa.phone_blocked").await.len(), 1);
    let code = mock_code(&mock, "15550105555");
    let r = app
        .post_as("/api/me/phone/verify", &tokens, json!({ "code": code }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn with_telesign_a_second_factor_login_completes_end_to_end(kind: DbKind) {
    let mock = crate::sms::start_mock().await;
    let app = crate::sms::telesign_app(kind, &mock, &[]).await;
    app.create_user("tess", "tess-password-Kq4", "user").await;
    let tokens = app.login("tess", "tess-password-Kq4").await;
    let r = app
        .post_as("/api/me/phone", &tokens, json!({ "phone_number": PHONE }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let digits = number().digits().to_string();
    let r = app
        .post_as(
            "/api/me/phone/verify",
            &tokens,
            json!({ "code": mock_code(&mock, &digits) }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let mfa_token = challenge(&app, "tess", "tess-password-Kq4").await;
    let code = mock_code(&mock, &digits);
    let r = verify(&app, &mfa_token, &code, "sms").await;

    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    let me = app
        .get_bearer("/api/me", body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.status(), StatusCode::OK);
    let sends = mock
        .received()
        .into_iter()
        .filter(|r| r.path == "/v1/messaging")
        .count();
    assert_eq!(sends, 2, "one enrolment code, one login code");
    assert!(mock.received().iter().all(|r| r.verified));
    let logged: Vec<(String,)> =
        sqlx::query_as("SELECT kind FROM sms_transactions WHERE kind = 'sms'")
            .fetch_all(&app.db().pool)
            .await
            .unwrap();
    assert_eq!(logged.len(), 2);
}
