//! Attacks on tokens (security.md cases 1–9): every one is a 401 with one generic body, never a 500.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};

use crate::helpers::prelude::*;
use warden::clock::Clock;

const SECRET: &str = "token-test-secret-0123456789-abcdefghijklmnop";
const ISSUER: &str = "http://warden.test";

db_tests!(
    tampered_tokens_are_refused_without_echoing_claims,
    other_algorithms_and_none_are_refused,
    hostile_kid_headers_are_harmless,
    expiry_not_before_and_missing_claims_are_enforced,
    wrong_issuer_audience_or_key_is_refused,
    token_kinds_do_not_pass_for_each_other,
    malformed_tokens_get_a_fast_4xx,
    a_revoked_sessions_unexpired_token_fails_at_once,
    tokens_issued_in_the_future_are_refused_ours_and_djangos,
);

async fn app(kind: DbKind) -> TestApp {
    spawn_app_with(kind, &[("JWT_SECRET_KEY", SECRET)]).await
}

fn mint(header: Value, claims: Value, key: &[u8], alg: jsonwebtoken::Algorithm) -> String {
    let mut h = jsonwebtoken::Header::new(alg);
    h.kid = header["kid"].as_str().map(String::from);
    jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_secret(key)).unwrap()
}

fn claims_for(app: &TestApp, user_id: &str, sid: &str) -> Value {
    let now = app.clock.now_ms() / 1000;
    json!({ "iss": ISSUER, "aud": ISSUER, "sub": user_id, "sid": sid, "jti": "j", "iat": now, "nbf": now, "exp": now + 600, "typ": "access" })
}

async fn session_of(app: &TestApp, access: &str) -> String {
    let me: Value = app.get_json("/api/me", access).await;
    me["session_id"].as_str().unwrap().to_string()
}

async fn refused(app: &TestApp, token: &str) -> Value {
    let body = expect_error(
        app.get_bearer("/api/me", token).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        body["error"],
        json!("Unauthorized - Invalid or missing token")
    );
    body
}

async fn tampered_tokens_are_refused_without_echoing_claims(kind: DbKind) {
    let app = app(kind).await;
    let user_id = app.create_user("mallory", "mallory-password", "user").await;
    let t = app.login("mallory", "mallory-password").await;
    let admin = app.admin().await;
    let parts: Vec<&str> = t.access.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!(admin.user_id);
    payload["role"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(payload.to_string()),
        parts[2]
    );
    let body = refused(&app, &forged).await;
    assert!(!body.to_string().contains(&admin.user_id) && !body.to_string().contains(&user_id));
    let mut sig = parts[2].to_string();
    sig.replace_range(0..2, if sig.starts_with("AA") { "BB" } else { "AA" });
    refused(&app, &format!("{}.{}.{}", parts[0], parts[1], sig)).await;
    // The role is read from the server, never the token: a correctly signed extra claim changes nothing.
    let sid = session_of(&app, &t.access).await;
    let mut c = claims_for(&app, &user_id, &sid);
    c["role"] = json!("admin");
    let signed = mint(
        json!({}),
        c,
        SECRET.as_bytes(),
        jsonwebtoken::Algorithm::HS256,
    );
    assert_eq!(
        app.get_bearer("/api/users", &signed).await.status(),
        StatusCode::FORBIDDEN
    );
}

async fn other_algorithms_and_none_are_refused(kind: DbKind) {
    let app = app(kind).await;
    let t = app.admin().await;
    let sid = session_of(&app, &t.access).await;
    let claims = claims_for(&app, &t.user_id, &sid);
    // Sanity: the same claims signed HS256 with the right key pass.
    let good = mint(
        json!({}),
        claims.clone(),
        SECRET.as_bytes(),
        jsonwebtoken::Algorithm::HS256,
    );
    assert_eq!(
        app.get_bearer("/api/me", &good).await.status(),
        StatusCode::OK
    );
    for alg in ["none", "None", "nOnE", "NONE"] {
        let header = B64.encode(json!({ "alg": alg, "typ": "JWT" }).to_string());
        let token = format!("{header}.{}.", B64.encode(claims.to_string()));
        refused(&app, &token).await;
    }
    for alg in [
        jsonwebtoken::Algorithm::HS384,
        jsonwebtoken::Algorithm::HS512,
    ] {
        refused(
            &app,
            &mint(json!({}), claims.clone(), SECRET.as_bytes(), alg),
        )
        .await;
    }
}

async fn hostile_kid_headers_are_harmless(kind: DbKind) {
    let app = app(kind).await;
    let t = app.admin().await;
    let sid = session_of(&app, &t.access).await;
    let claims = claims_for(&app, &t.user_id, &sid);
    for kid in [
        "../../../../etc/passwd",
        "' OR 1=1 --",
        "http://127.0.0.1:1/jwks.json",
        &"k".repeat(10_000),
    ] {
        let token = mint(
            json!({ "kid": kid }),
            claims.clone(),
            b"attacker-key-attacker-key-attacker",
            jsonwebtoken::Algorithm::HS256,
        );
        let r = app.get_bearer("/api/me", &token).await;
        assert!(
            r.status() == StatusCode::UNAUTHORIZED,
            "kid {kid:.20}: {}",
            r.status()
        );
    }
}

async fn expiry_not_before_and_missing_claims_are_enforced(kind: DbKind) {
    let app = app(kind).await;
    let t = app.admin().await;
    let sid = session_of(&app, &t.access).await;
    let base = claims_for(&app, &t.user_id, &sid);
    let now = base["iat"].as_i64().unwrap();

    let mut future = base.clone();
    future["nbf"] = json!(now + 120);
    refused(
        &app,
        &mint(
            json!({}),
            future,
            SECRET.as_bytes(),
            jsonwebtoken::Algorithm::HS256,
        ),
    )
    .await;
    for claim in ["exp", "sub", "sid", "iss", "aud", "typ", "nbf"] {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(claim);
        refused(
            &app,
            &mint(
                json!({}),
                c,
                SECRET.as_bytes(),
                jsonwebtoken::Algorithm::HS256,
            ),
        )
        .await;
    }
    let mut string_exp = base.clone();
    string_exp["exp"] = json!((now + 600).to_string());
    refused(
        &app,
        &mint(
            json!({}),
            string_exp,
            SECRET.as_bytes(),
            jsonwebtoken::Algorithm::HS256,
        ),
    )
    .await;

    // The real access token: valid at 15 min + 29 s (leeway), refused at 15 min + 31 s.
    app.clock
        .advance(std::time::Duration::from_secs(15 * 60 + 29));
    assert_eq!(
        app.get_bearer("/api/me", &t.access).await.status(),
        StatusCode::OK
    );
    app.clock.advance(std::time::Duration::from_secs(2));
    refused(&app, &t.access).await;
}

async fn wrong_issuer_audience_or_key_is_refused(kind: DbKind) {
    let app = app(kind).await;
    let t = app.admin().await;
    let sid = session_of(&app, &t.access).await;
    let base = claims_for(&app, &t.user_id, &sid);
    for (field, value) in [
        ("iss", "http://evil.test"),
        ("aud", "http://other-service.test"),
    ] {
        let mut c = base.clone();
        c[field] = json!(value);
        refused(
            &app,
            &mint(
                json!({}),
                c,
                SECRET.as_bytes(),
                jsonwebtoken::Algorithm::HS256,
            ),
        )
        .await;
    }
    refused(
        &app,
        &mint(
            json!({}),
            base.clone(),
            b"short",
            jsonwebtoken::Algorithm::HS256,
        ),
    )
    .await;
    refused(
        &app,
        &mint(
            json!({}),
            base,
            b"another-long-secret-another-long-secret",
            jsonwebtoken::Algorithm::HS256,
        ),
    )
    .await;
}

async fn token_kinds_do_not_pass_for_each_other(kind: DbKind) {
    let app = app(kind).await;
    let t = app.admin().await;
    refused(&app, &t.refresh).await;
    let browser = app
        .login_cookie("admin", crate::helpers::ADMIN_PASSWORD)
        .await;
    let cookie_token = browser.cookie.split_once('=').unwrap().1.to_string();
    refused(&app, &cookie_token).await;
    // And a bearer access token placed in the cookie is not a browser session.
    let r = app
        .get_as(
            "/api/me",
            &header("cookie", format!("auth_token={}", t.access)),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A token of kind "mfa" (a pending second factor) is not an access token.
    let sid = session_of(&app, &t.access).await;
    let mut c = claims_for(&app, &t.user_id, &sid);
    c["typ"] = json!("mfa");
    refused(
        &app,
        &mint(
            json!({}),
            c,
            SECRET.as_bytes(),
            jsonwebtoken::Algorithm::HS256,
        ),
    )
    .await;
}

async fn malformed_tokens_get_a_fast_4xx(kind: DbKind) {
    let app = app(kind).await;
    for token in [
        "a.b",
        "a.b.c.d",
        "!!!.@@@.###",
        "eyJhbGciOiJIUzI1NiJ9.%%%%.sig",
        "....",
        "ä.ö.ü",
    ] {
        refused(&app, token).await;
    }
    let big = "a".repeat(5000) + "." + &"b".repeat(5000) + "." + "c";
    refused(&app, &big).await;
    // A 1 MB header is refused at the edge (431) or by the HTTP layer, never with a 5xx.
    let huge = "x".repeat(1024 * 1024);
    // (The connection may instead be closed for an oversized head, which is fine too.)
    if let Ok(r) = app
        .client
        .get(app.url("/api/me"))
        .bearer_auth(&huge)
        .send()
        .await
    {
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    for header in ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer"] {
        let r = app
            .get_as("/api/me", &crate::helpers::header("authorization", header))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{header}");
    }
}

async fn a_revoked_sessions_unexpired_token_fails_at_once(kind: DbKind) {
    let app = app(kind).await;
    let t = app.admin().await;
    assert_eq!(
        app.get_bearer("/api/me", &t.access).await.status(),
        StatusCode::OK
    );
    let sid = session_of(&app, &t.access).await;
    app.state.auth.revoke_session(&sid, "test").await.unwrap();
    refused(&app, &t.access).await;
}

async fn tokens_issued_in_the_future_are_refused_ours_and_djangos(kind: DbKind) {
    let django_secret = "django-secret-for-tests-0123456789abcdef";
    let app = spawn_app_with(
        kind,
        &[
            ("JWT_SECRET_KEY", SECRET),
            ("DJANGO_SECRET_KEY", django_secret),
        ],
    )
    .await;
    let t = app.admin().await;
    let sid = session_of(&app, &t.access).await;
    app.state
        .auth
        .link_external("django", "42", &t.user_id)
        .await
        .unwrap();
    let base = claims_for(&app, &t.user_id, &sid);
    let now = base["iat"].as_i64().unwrap();
    let ours = |iat: i64| {
        let mut c = base.clone();
        c["iat"] = json!(iat);
        mint(
            json!({}),
            c,
            SECRET.as_bytes(),
            jsonwebtoken::Algorithm::HS256,
        )
    };
    let django = |iat: i64| {
        let c = json!({ "token_type": "access", "user_id": 42, "jti": "j", "exp": now + 300, "iat": iat });
        mint(
            json!({}),
            c,
            django_secret.as_bytes(),
            jsonwebtoken::Algorithm::HS256,
        )
    };
    // Within the leeway both pass, so the refusals below are about `iat` alone.
    for token in [ours(now + 29), django(now + 29)] {
        assert_eq!(
            app.get_bearer("/api/me", &token).await.status(),
            StatusCode::OK
        );
    }
    for iat in [now + 31, now + 3600, now + 10 * 365 * 86_400] {
        refused(&app, &ours(iat)).await;
        refused(&app, &django(iat)).await;
    }
}
