//! Secrets never at rest in clear, never in logs (security.md cases 23 and 24).

use crate::helpers::{captured_logs, prelude::*};

db_tests!(
    no_password_token_csrf_value_or_secret_reaches_a_table_or_the_log,
    no_second_factor_code_totp_secret_recovery_code_or_phone_number_reaches_a_table_or_the_log,
    no_sms_code_api_key_or_full_number_reaches_a_reply_the_log_table_or_the_log,
);

/// Every text value of the second-factor tables and the audit trail.
async fn mfa_table_text(app: &TestApp) -> String {
    app.state.audit.flush().await;
    let mut out = app.all_table_text().await;
    for t in [
        "mfa_phones",
        "mfa_totp",
        "mfa_recovery_codes",
        "mfa_challenges",
    ] {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {t}")))
            .fetch_all(&app.db().pool)
            .await
            .unwrap();
        assert!(
            !rows.is_empty() || t == "mfa_phones",
            "{t} has rows to check"
        );
        for row in rows {
            use sqlx::{Column, Row};
            for (i, col) in row.columns().iter().enumerate() {
                if let Ok(Some(v)) = row.try_get::<Option<String>, _>(i) {
                    out.push_str(&format!("{t}.{}={v}\n", col.name()));
                }
            }
        }
    }
    out
}

async fn no_second_factor_code_totp_secret_recovery_code_or_phone_number_reaches_a_table_or_the_log(
    kind: DbKind,
) {
    use warden::{clock::Clock, mfa::totp, sms::PhoneNumber};
    let app = spawn_app(kind).await;
    let password = "zora-secret-password-Lp93";
    app.create_user("zora", password, "user").await;
    let tokens = app.login("zora", password).await;
    let phone = PhoneNumber::parse("+1 555 010 9931").unwrap();
    let last_code = |app: &TestApp| {
        let text = app
            .state
            .sms
            .console()
            .unwrap()
            .last_to(&phone)
            .unwrap()
            .text;
        text.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .unwrap()
            .to_string()
    };
    let r = app
        .post_as(
            "/api/me/phone",
            &tokens,
            json!({ "phone_number": "+1 555 010 9931" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let enrolment_code = last_code(&app);
    let r = app
        .post_as(
            "/api/me/phone/verify",
            &tokens,
            json!({ "code": enrolment_code }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let totp_start: Value = app
        .post_as("/api/me/mfa/totp", &tokens, json!({}))
        .await
        .json()
        .await
        .unwrap();
    let secret_b32 = totp_start["secret"].as_str().unwrap().to_string();
    let secret = totp::base32_decode(&secret_b32).unwrap();
    let confirm_code = totp::code_at(&secret, totp::step_at(app.clock.now_secs()));
    let confirmed: Value = app
        .post_as(
            "/api/me/mfa/totp/confirm",
            &tokens,
            json!({ "code": confirm_code }),
        )
        .await
        .json()
        .await
        .unwrap();
    let recovery: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    // A login by SMS code, one with a wrong code first, and one by recovery code.
    let login: Value = app.login_raw("zora", password).await.json().await.unwrap();
    let mfa_token = login["mfa_token"].as_str().unwrap().to_string();
    let login_code = last_code(&app);
    let wrong_code = if login_code == "000000" {
        "000001"
    } else {
        "000000"
    };
    app.post(
        "/auth/mfa/verify",
        json!({ "mfa_token": mfa_token, "code": wrong_code, "method": "sms" }),
    )
    .await;
    let r = app
        .post(
            "/auth/mfa/verify",
            json!({ "mfa_token": mfa_token, "code": login_code, "method": "sms" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let login: Value = app.login_raw("zora", password).await.json().await.unwrap();
    let r = app
        .post(
            "/auth/mfa/verify",
            json!({ "mfa_token": login["mfa_token"], "code": recovery[0], "method": "recovery" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let tables = mfa_table_text(&app).await;
    let logs = crate::helpers::captured_logs();
    let mut secrets = vec![
        enrolment_code,
        confirm_code,
        login_code,
        wrong_code.to_string(),
        secret_b32,
        phone.digits().to_string(),
        mfa_token,
    ];
    secrets.extend(recovery.iter().cloned());
    secrets.extend(recovery.iter().map(|c| c.replace('-', "")));
    assert!(
        tables.contains(&phone.masked()),
        "the masked number is kept for display"
    );
    for s in &secrets {
        // Six digits can occur by chance inside a UUID or a hash: codes are checked as whole words.
        let in_clear = |text: &str| {
            if s.len() == 6 {
                text.split(|c: char| !c.is_ascii_alphanumeric())
                    .any(|w| w == s)
            } else {
                text.contains(s.as_str())
            }
        };
        assert!(
            !in_clear(&tables),
            "a second-factor secret is stored in clear: {s:.4}…"
        );
        assert!(
            !in_clear(&logs),
            "a second-factor secret reached the log: {s:.4}…"
        );
    }
}

async fn no_password_token_csrf_value_or_secret_reaches_a_table_or_the_log(kind: DbKind) {
    let app = spawn_app(kind).await;
    let user_password = "quinn-secret-password-Zx81";
    let new_password = "quinn-new-password-Qy72";
    app.create_user("quinn", user_password, "user").await;
    let bearer = app.login("quinn", user_password).await;
    let refreshed: Value = app
        .post("/auth/refresh", json!({ "refresh_token": bearer.refresh }))
        .await
        .json()
        .await
        .unwrap();
    let browser = app.login_cookie("quinn", user_password).await;
    let status: Value = app
        .get_as("/api/status", &header("cookie", &browser.cookie))
        .await
        .json()
        .await
        .unwrap();
    let client = app
        .state
        .auth
        .create_client("secret-bot", "user")
        .await
        .unwrap();
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        client.client_id, client.client_secret
    );
    let token: Value = app
        .client
        .post(app.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = app
        .client
        .post(app.url("/api/me/password"))
        .header("cookie", &browser.cookie)
        .header("x-csrf-token", &browser.csrf)
        .json(&json!({ "current_password": user_password, "new_password": new_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Failed attempts with secrets in them, and an internal error, are logged too.
    app.login_raw("quinn", "typo-secret-password-Wv55").await;
    app.client
        .get(app.url("/api/me"))
        .header("authorization", format!("Bearer {}", bearer.access))
        .header("cookie", &browser.cookie)
        .send()
        .await
        .unwrap();

    let secrets = [
        user_password.to_string(),
        new_password.to_string(),
        ADMIN_PASSWORD.to_string(),
        "typo-secret-password-Wv55".to_string(),
        bearer.access.clone(),
        bearer.refresh.clone(),
        refreshed["refresh_token"].as_str().unwrap().to_string(),
        refreshed["access_token"].as_str().unwrap().to_string(),
        browser.cookie.split_once('=').unwrap().1.to_string(),
        browser.csrf.clone(),
        status["csrf_token"].as_str().unwrap().to_string(),
        client.client_secret.clone(),
        token["access_token"].as_str().unwrap().to_string(),
    ];
    let tables = app.all_table_text().await;
    let logs = captured_logs();
    assert!(
        logs.contains("request"),
        "the log capture works: {logs:.200}"
    );
    for s in &secrets {
        assert!(
            !tables.contains(s.as_str()),
            "a secret is stored in clear: {s:.12}…"
        );
        assert!(
            !logs.contains(s.as_str()),
            "a secret reached the log: {s:.12}…"
        );
    }
    assert!(
        !logs.to_lowercase().contains("authorization:") && !logs.to_lowercase().contains("cookie:")
    );
}

/// Every text value of the SMS transaction log.
async fn sms_table_text(app: &TestApp) -> String {
    let rows = sqlx::query("SELECT * FROM sms_transactions")
        .fetch_all(&app.db().pool)
        .await
        .unwrap();
    assert!(rows.len() >= 6, "the flows left rows to check");
    let mut out = String::new();
    for row in rows {
        use sqlx::{Column, Row};
        for (i, col) in row.columns().iter().enumerate() {
            if let Ok(Some(v)) = row.try_get::<Option<String>, _>(i) {
                out.push_str(&format!("sms_transactions.{}={v}\n", col.name()));
            }
        }
    }
    out
}

async fn no_sms_code_api_key_or_full_number_reaches_a_reply_the_log_table_or_the_log(kind: DbKind) {
    use crate::sms::{KEY, start_mock, telesign_app, user_with};
    let mock = start_mock().await;
    let app = telesign_app(kind, &mock, &[]).await;
    let who = user_with(&app, "sally", &["sms:send", "sms:lookup"]).await;
    let number = "+1 555 867 5309";
    let digits = "15558675309";
    let mut replies = String::new();

    for (path, body) in [
        (
            "/api/sms/send-sms",
            json!({ "phone_number": number, "message": "Your code is 73914" }),
        ),
        (
            "/api/whatsapp/send-message",
            json!({ "phone_number": number, "message": "Parcel 88123 ships" }),
        ),
        ("/api/sms/verify-phone", json!({ "phone_number": number })),
        ("/api/sms/assess-risk", json!({ "phone_number": number })),
        (
            "/api/sms/send-verification",
            json!({ "phone_number": number }),
        ),
    ] {
        let r = app.post_as(path, &who, body).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        replies.push_str(&r.text().await.unwrap());
    }
    let code = mock
        .received()
        .into_iter()
        .rev()
        .find_map(|r| r.verify_code)
        .unwrap();
    for attempt in ["00000", code.as_str()] {
        let r = app
            .post_as(
                "/api/sms/verify-code",
                &who,
                json!({ "phone_number": number, "code": attempt }),
            )
            .await;
        replies.push_str(&r.text().await.unwrap());
    }
    let reference = mock
        .received()
        .into_iter()
        .find_map(|r| r.reference_id)
        .unwrap();
    let r = app
        .get_as(&format!("/api/sms/status/{reference}"), &who)
        .await;
    replies.push_str(&r.text().await.unwrap());
    let admin = app.admin().await;
    let r = app.get_as("/api/sms/transactions", &admin).await;
    replies.push_str(&r.text().await.unwrap());

    let tables = format!(
        "{}{}",
        sms_table_text(&app).await,
        app.all_table_text().await
    );
    let logs = captured_logs();
    for (what, text) in [("replies", &replies), ("tables", &tables), ("logs", &logs)] {
        for secret in [digits, "73914", "88123", code.as_str(), KEY, "TE8sTgg45yus"] {
            assert!(!holds_alone(text, secret), "{secret:?} in the {what}");
        }
    }
    assert!(tables.contains("15*******09"), "the masked number is kept");
}

/// Whether `secret` stands in `text` with no digit right before or after it: a code inside a longer number (an
/// epoch-millisecond time in a JSON detail, say) is not that code leaking.
fn holds_alone(text: &str, secret: &str) -> bool {
    text.match_indices(secret).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + secret.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

#[test]
fn a_code_counts_only_when_no_digit_touches_it() {
    assert!(holds_alone("Your code is 73914.", "73914"));
    assert!(holds_alone("73914", "73914"));
    assert!(!holds_alone("{\"at\":1796073914123}", "73914"));
    assert!(holds_alone("x1796073914123 and 73914", "73914"));
}
