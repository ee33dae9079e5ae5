//! Login, refresh, verify, logout and password change over HTTP, with the seed response shapes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::db_tests;
use crate::helpers::{ADMIN_PASSWORD, DbKind, expect_error, spawn_app, spawn_app_with};
use warden::clock::Clock;

db_tests!(
    login_answers_with_the_union_of_the_seed_shapes,
    api_login_is_the_same_endpoint,
    login_input_errors_are_4xx_with_clear_messages,
    passwords_of_64_and_more_characters_work,
    every_login_failure_gets_the_same_answer,
    refresh_rotates_and_reuse_revokes_the_whole_family,
    sixteen_concurrent_refreshes_of_one_token_have_exactly_one_winner,
    verify_reports_valid_and_invalid_tokens_in_the_seed_shape,
    logout_ends_the_access_token_the_refresh_token_and_verify,
    seed_003_logout_with_a_token_in_the_body_works,
    logout_all_ends_every_session,
    changing_ones_password_ends_the_other_sessions_only,
    me_and_profile_describe_the_caller,
    service_clients_get_tokens_by_client_credentials_only,
    a_seed_bcrypt_hash_logs_in_once_and_is_rehashed,
    django_access_tokens_map_to_linked_local_users,
    a_password_matches_whether_typed_composed_or_decomposed,
    an_unused_refresh_family_ends_after_the_idle_timeout,
);

async fn login_answers_with_the_union_of_the_seed_shapes(kind: DbKind) {
    let app = spawn_app(kind).await;
    let r = app.login_raw("admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    for field in [
        "token",
        "access_token",
        "token_type",
        "expires_in",
        "expires_at",
        "refresh_token",
        "user_id",
        "username",
        "role",
    ] {
        assert!(!body[field].is_null(), "missing {field}: {body}");
    }
    assert_eq!(body["success"], json!(true));
    assert_eq!(body["message"], json!("Login successful"));
    assert_eq!(body["token"], body["access_token"]);
    assert_eq!(body["token_type"], json!("bearer"));
    assert_eq!(body["username"], json!("admin"));
    assert_eq!(body["role"], json!("admin"));
    assert!(body["expires_in"].as_i64().unwrap() <= 15 * 60);
}

async fn api_login_is_the_same_endpoint(kind: DbKind) {
    let app = spawn_app(kind).await;
    let r = app
        .post(
            "/api/login",
            json!({ "username": "ADMIN", "password": ADMIN_PASSWORD }),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "usernames compare case-insensitively"
    );
    let body: Value = r.json().await.unwrap();
    let me = app
        .get_bearer("/api/me", body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.status(), StatusCode::OK);
}

async fn login_input_errors_are_4xx_with_clear_messages(kind: DbKind) {
    let app = spawn_app(kind).await;
    let missing = app
        .post("/auth/login", json!({ "username": "admin" }))
        .await;
    let body = expect_error(missing, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        body["error"].as_str().unwrap().contains("password"),
        "{body}"
    );

    let wrong_type = app
        .post("/auth/login", json!({ "username": 5, "password": "x" }))
        .await;
    expect_error(wrong_type, StatusCode::UNPROCESSABLE_ENTITY).await;

    let broken = app
        .client
        .post(app.url("/auth/login"))
        .header("content-type", "application/json")
        .body("{\"username\":")
        .send()
        .await
        .unwrap();
    expect_error(broken, StatusCode::BAD_REQUEST).await;

    let not_json = app
        .client
        .post(app.url("/auth/login"))
        .body("username=admin")
        .send()
        .await
        .unwrap();
    expect_error(not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    let too_long = app
        .post(
            "/auth/login",
            json!({ "username": "admin", "password": "p".repeat(257) }),
        )
        .await;
    let body = expect_error(too_long, StatusCode::BAD_REQUEST).await;
    assert!(
        body["error"].as_str().unwrap().contains("at most 256"),
        "{body}"
    );

    let bad_mode = app
        .post(
            "/auth/login",
            json!({ "username": "admin", "password": "x", "mode": "magic" }),
        )
        .await;
    expect_error(bad_mode, StatusCode::UNPROCESSABLE_ENTITY).await;
}

async fn passwords_of_64_and_more_characters_work(kind: DbKind) {
    let app = spawn_app(kind).await;
    let long = "Ü".repeat(100) + &"x".repeat(156);
    app.create_user("longpass", &long, "user").await;
    app.login("longpass", &long).await;
    // No truncation: the same password minus its last character fails.
    let r = app.login_raw("longpass", &long[..long.len() - 1]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn every_login_failure_gets_the_same_answer(kind: DbKind) {
    let app = spawn_app_with(kind, &[("LOGIN_MAX_FAILURES", "3")]).await;
    let disabled_id = app
        .create_user("disabled", "disabled-password", "user")
        .await;
    app.create_user("locked", "locked-password", "user").await;
    let admin = app.admin().await;
    let r = app
        .client
        .put(app.url(&format!("/api/users/{disabled_id}")))
        .bearer_auth(&admin.access)
        .json(&json!({ "is_active": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for _ in 0..3 {
        app.login_raw("locked", "wrong").await;
    }
    let answers = [
        app.login_raw("nobody-here", "whatever-password").await,
        app.login_raw("admin", "wrong-password").await,
        app.login_raw("disabled", "disabled-password").await,
        app.login_raw("locked", "locked-password").await,
    ];
    let mut seen = Vec::new();
    for r in answers {
        let status = r.status();
        let mut headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .filter(|(k, _)| !["x-request-id", "date", "content-length"].contains(&k.as_str()))
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        headers.sort();
        let body: Value = r.json().await.unwrap();
        seen.push((status, headers, body));
    }
    assert_eq!(seen[0].0, StatusCode::UNAUTHORIZED);
    assert_eq!(seen[0].2["message"], json!("Invalid username or password"));
    for other in &seen[1..] {
        assert_eq!(other, &seen[0]);
    }
}

async fn refresh_rotates_and_reuse_revokes_the_whole_family(kind: DbKind) {
    let app = spawn_app(kind).await;
    let first = app.admin().await;
    let r = app
        .post("/auth/refresh", json!({ "refresh_token": first.refresh }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let second: Value = r.json().await.unwrap();
    let second_refresh = second["refresh_token"].as_str().unwrap().to_string();
    let second_access = second["access_token"].as_str().unwrap().to_string();
    assert_ne!(second_refresh, first.refresh);
    assert_eq!(
        app.get_bearer("/api/me", &second_access).await.status(),
        StatusCode::OK
    );

    // A retry within the grace window only fails; later, replaying the first refresh token is theft and
    // the family (session) ends.
    expect_error(
        app.post("/auth/refresh", json!({ "refresh_token": first.refresh }))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        app.get_bearer("/api/me", &second_access).await.status(),
        StatusCode::OK
    );
    app.clock.advance(std::time::Duration::from_secs(3));
    let replay = app
        .post("/auth/refresh", json!({ "refresh_token": first.refresh }))
        .await;
    expect_error(replay, StatusCode::UNAUTHORIZED).await;
    let after = app
        .post("/auth/refresh", json!({ "refresh_token": second_refresh }))
        .await;
    expect_error(after, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        app.get_bearer("/api/me", &second_access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_bearer("/api/me", &first.access).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let garbage = app
        .post("/auth/refresh", json!({ "refresh_token": "not-a-token" }))
        .await;
    expect_error(garbage, StatusCode::UNAUTHORIZED).await;
    let missing = app.post("/auth/refresh", json!({})).await;
    expect_error(missing, StatusCode::UNPROCESSABLE_ENTITY).await;
}

async fn sixteen_concurrent_refreshes_of_one_token_have_exactly_one_winner(kind: DbKind) {
    let app = spawn_app(kind).await;
    let tokens = app.admin().await;
    let attempts = (0..16).map(|_| {
        let client = app.client.clone();
        let url = app.url("/auth/refresh");
        let refresh = tokens.refresh.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({ "refresh_token": refresh }))
                .send()
                .await
                .unwrap()
                .status()
        })
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let winners = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(winners, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
}

async fn verify_reports_valid_and_invalid_tokens_in_the_seed_shape(kind: DbKind) {
    let app = spawn_app(kind).await;
    let tokens = app.admin().await;
    let r = app
        .post("/auth/verify", json!({ "token": tokens.access }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["valid"], json!(true));
    assert_eq!(body["user_id"], json!(tokens.user_id));
    assert_eq!(body["username"], json!("admin"));
    assert_eq!(body["message"], json!("Token is valid"));

    let r = app
        .post("/auth/verify", json!({ "token": "abc.def.ghi" }))
        .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "valid": false, "message": "Invalid or expired token" })
    );
    let r = app
        .post("/auth/verify", json!({ "token": tokens.refresh }))
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["valid"],
        json!(false),
        "a refresh token is not an access token"
    );
    expect_error(
        app.post("/auth/verify", json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

async fn logout_ends_the_access_token_the_refresh_token_and_verify(kind: DbKind) {
    let app = spawn_app(kind).await;
    let tokens = app.admin().await;
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .bearer_auth(&tokens.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "success": true, "message": "Logged out successfully" })
    );
    expect_error(
        app.get_bearer("/api/me", &tokens.access).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_error(
        app.post("/auth/refresh", json!({ "refresh_token": tokens.refresh }))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let v: Value = app
        .post("/auth/verify", json!({ "token": tokens.access }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["valid"], json!(false));
    // Logging out again, or with nothing, is a 401.
    expect_error(
        app.client
            .post(app.url("/auth/logout"))
            .bearer_auth(&tokens.access)
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_error(
        app.client
            .post(app.url("/api/logout"))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn seed_003_logout_with_a_token_in_the_body_works(kind: DbKind) {
    let app = spawn_app(kind).await;
    let tokens = app.admin().await;
    let r = app
        .post("/auth/logout", json!({ "token": tokens.access }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.get_bearer("/api/me", &tokens.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // And by refresh token.
    let other = app.admin().await;
    assert_eq!(
        app.post("/api/logout", json!({ "refresh_token": other.refresh }))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_bearer("/api/me", &other.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn logout_all_ends_every_session(kind: DbKind) {
    let app = spawn_app(kind).await;
    let a = app.admin().await;
    let b = app.admin().await;
    let browser = app.login_cookie("admin", ADMIN_PASSWORD).await;
    let r = app
        .client
        .post(app.url("/auth/logout-all"))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["sessions_ended"], json!(3));
    for t in [&a.access, &b.access] {
        assert_eq!(
            app.get_bearer("/api/me", t).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = app
        .client
        .get(app.url("/api/me"))
        .header("cookie", &browser.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    expect_error(
        app.post("/auth/refresh", json!({ "refresh_token": b.refresh }))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_error(
        app.client
            .post(app.url("/auth/logout-all"))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn changing_ones_password_ends_the_other_sessions_only(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("carol", "carol-password-1", "user").await;
    let here = app.login("carol", "carol-password-1").await;
    let elsewhere = app.login("carol", "carol-password-1").await;
    let change = |current: &str, new: &str| {
        app.client
            .post(app.url("/api/me/password"))
            .bearer_auth(&here.access)
            .json(&json!({ "current_password": current, "new_password": new }))
            .send()
    };
    expect_error(
        change("not-my-password", "carol-password-2").await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_error(
        change("carol-password-1", "short").await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        app.get_bearer("/api/me", &elsewhere.access).await.status(),
        StatusCode::OK,
        "failed changes end nothing"
    );

    assert_eq!(
        change("carol-password-1", "carol-password-2")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_bearer("/api/me", &here.access).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_bearer("/api/me", &elsewhere.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    expect_error(
        app.post(
            "/auth/refresh",
            json!({ "refresh_token": elsewhere.refresh }),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        app.login_raw("carol", "carol-password-1").await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.login("carol", "carol-password-2").await;
}

async fn me_and_profile_describe_the_caller(kind: DbKind) {
    let app = spawn_app(kind).await;
    let id = app.create_user("dave", "dave-password", "user").await;
    let t = app.login("dave", "dave-password").await;
    for path in ["/api/me", "/api/profile"] {
        let body: Value = app.get_bearer(path, &t.access).await.json().await.unwrap();
        assert_eq!(body["id"], json!(id));
        assert_eq!(body["username"], json!("dave"));
        assert_eq!(body["role"], json!("user"));
        assert_eq!(body["login_count"], json!(1));
        assert!(
            body["permissions"]
                .as_array()
                .unwrap()
                .contains(&json!("chat:use"))
        );
        assert!(body.get("password_hash").is_none());
    }
    // The seed-004 header works too.
    let r = app
        .client
        .get(app.url("/api/me"))
        .header("x-access-token", &t.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    expect_error(
        app.client.get(app.url("/api/me")).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn service_clients_get_tokens_by_client_credentials_only(kind: DbKind) {
    let app = spawn_app(kind).await;
    let client = app
        .state
        .auth
        .create_client("ci-bot", "user")
        .await
        .unwrap();
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        client.client_id, client.client_secret
    );
    let r = app
        .client
        .post(app.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], json!("Bearer"));
    let token = body["access_token"].as_str().unwrap().to_string();
    let me: Value = app
        .get_bearer("/api/me", &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["kind"], json!("service"));

    // HTTP Basic works as well.
    let r = app
        .client
        .post(app.url("/auth/token"))
        .basic_auth(&client.client_id, Some(&client.client_secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The seed handed a token to anyone: here no or wrong credentials are a 401.
    let r = app
        .client
        .post(app.url("/auth/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        json!("unsupported_grant_type")
    );
    let wrong = format!(
        "grant_type=client_credentials&client_id={}&client_secret=wrong",
        client.client_id
    );
    let r = app
        .client
        .post(app.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        json!("invalid_client")
    );
    let r = app
        .client
        .post(app.url("/auth/token"))
        .json(
            &json!({ "grant_type": "client_credentials", "client_id": "x", "client_secret": "y" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A person cannot use their password as a client secret, nor a client log in with a password.
    let admin = app.admin().await;
    let as_person = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        admin.user_id, ADMIN_PASSWORD
    );
    let r = app
        .client
        .post(app.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(as_person)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login_raw("ci-bot", &client.client_secret)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Disabling the client ends its tokens at once.
    let r = app
        .client
        .put(app.url(&format!("/api/users/{}", client.client_id)))
        .bearer_auth(&admin.access)
        .json(&json!({ "is_active": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.get_bearer("/api/me", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn a_seed_bcrypt_hash_logs_in_once_and_is_rehashed(kind: DbKind) {
    let app = spawn_app(kind).await;
    let id = app
        .create_user("legacy", "temporary-password", "user")
        .await;
    let seed_hash = bcrypt::hash("root-from-seed", 4).unwrap();
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(&seed_hash)
        .bind(&id)
        .execute(&app.db().pool)
        .await
        .unwrap();
    app.login("legacy", "root-from-seed").await;
    let (stored,): (String,) = sqlx::query_as("SELECT password_hash FROM users WHERE id = $1")
        .bind(&id)
        .fetch_one(&app.db().pool)
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    app.login("legacy", "root-from-seed").await;
}

async fn django_access_tokens_map_to_linked_local_users(kind: DbKind) {
    let django_secret = "django-secret-for-tests-0123456789abcdef";
    let app = spawn_app_with(kind, &[("DJANGO_SECRET_KEY", django_secret)]).await;
    let id = app.create_user("erin", "erin-password", "user").await;
    app.state
        .auth
        .link_external("django", "42", &id)
        .await
        .unwrap();
    let now = app.clock.now_ms() / 1000;
    let mint = |claims: Value, secret: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let access = mint(
        json!({ "token_type": "access", "user_id": 42, "jti": "j1", "exp": now + 300, "iat": now }),
        django_secret,
    );
    let body: Value = app
        .get_bearer("/api/me", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["username"], json!("erin"));

    let refresh = mint(
        json!({ "token_type": "refresh", "user_id": 42, "jti": "j2", "exp": now + 300, "iat": now }),
        django_secret,
    );
    expect_error(
        app.get_bearer("/api/me", &refresh).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let unlinked = mint(
        json!({ "token_type": "access", "user_id": 43, "jti": "j3", "exp": now + 300, "iat": now }),
        django_secret,
    );
    expect_error(
        app.get_bearer("/api/me", &unlinked).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let expired = mint(
        json!({ "token_type": "access", "user_id": 42, "jti": "j4", "exp": now - 60, "iat": now - 400 }),
        django_secret,
    );
    expect_error(
        app.get_bearer("/api/me", &expired).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let forged = mint(
        json!({ "token_type": "access", "user_id": 42, "jti": "j5", "exp": now + 300, "iat": now }),
        "another-secret-another-secret-xx",
    );
    expect_error(
        app.get_bearer("/api/me", &forged).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Our own tokens are not accepted as Django's and Django's not as a browser cookie.
    let r = app
        .client
        .get(app.url("/api/me"))
        .header("cookie", format!("auth_token={access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn a_password_matches_whether_typed_composed_or_decomposed(kind: DbKind) {
    let app = spawn_app(kind).await;
    let composed = "Cr\u{e8}me br\u{fb}l\u{e9}e \u{212b}ngstr\u{f6}m";
    let decomposed = "Cre\u{300}me bru\u{302}le\u{301}e A\u{30a}ngstro\u{308}m";
    app.create_user("nfc", composed, "user").await;
    app.create_user("nfd", decomposed, "user").await;
    app.login("nfc", decomposed).await;
    app.login("nfd", composed).await;
    expect_error(
        app.login_raw("nfc", "Creme brulee Angstrom").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // A hash of the decomposed form as typed, made before passwords were normalised, still logs in, and is
    // replaced by a hash of the normalised form, which the composed form then matches.
    let id = app.create_user("older", "temporary-password", "user").await;
    let old_hash = bcrypt::hash(decomposed, 4).unwrap();
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(&old_hash)
        .bind(&id)
        .execute(&app.db().pool)
        .await
        .unwrap();
    expect_error(
        app.login_raw("older", composed).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    app.login("older", decomposed).await;
    let (stored,): (String,) = sqlx::query_as("SELECT password_hash FROM users WHERE id = $1")
        .bind(&id)
        .fetch_one(&app.db().pool)
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    app.login("older", composed).await;
}

async fn an_unused_refresh_family_ends_after_the_idle_timeout(kind: DbKind) {
    let app = spawn_app_with(kind, &[("SESSION_IDLE_MINUTES", "30")]).await;
    let minutes = |m: u64| std::time::Duration::from_secs(m * 60);
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.post("/auth/refresh", json!({ "refresh_token": token }))
                .await
        }
    };
    let t = app.admin().await;

    // Refreshing keeps the family alive; so does using its access token (15 minutes by default).
    app.clock.advance(minutes(29));
    let r = refresh(t.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_string();
    app.clock.advance(minutes(14));
    assert_eq!(
        app.get_bearer("/api/me", &access).await.status(),
        StatusCode::OK
    );
    app.clock.advance(minutes(29));
    let r = refresh(body["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "72 minutes after the login, 29 after the last use"
    );
    let body: Value = r.json().await.unwrap();

    // Unused for 30 minutes and a second: the refresh token fails and the family is ended.
    app.clock
        .advance(minutes(30) + std::time::Duration::from_secs(1));
    let stale = body["refresh_token"].as_str().unwrap().to_string();
    expect_error(refresh(stale).await, StatusCode::UNAUTHORIZED).await;
    let revoked: Vec<(Option<String>,)> =
        sqlx::query_as("SELECT revoke_reason FROM sessions WHERE revoke_reason IS NOT NULL")
            .fetch_all(&app.db().pool)
            .await
            .unwrap();
    assert_eq!(revoked, vec![(Some("idle_timeout".to_string()),)]);
}
