//! Logging in over HTTP: the seed response shapes, input errors, one answer for every failure, long and
//! Unicode-normalised passwords, seed bcrypt hashes, and `/api/me` describing the caller.

use crate::helpers::prelude::*;

db_tests! {
    login_answers_with_the_union_of_the_seed_shapes, api_login_is_the_same_endpoint,
    login_input_errors_are_4xx_with_clear_messages, passwords_of_64_and_more_characters_work,
    every_login_failure_gets_the_same_answer, me_and_profile_describe_the_caller,
    a_seed_bcrypt_hash_logs_in_once_and_is_rehashed, a_password_matches_whether_typed_composed_or_decomposed,
}

async fn login_answers_with_the_union_of_the_seed_shapes(kind: DbKind) {
    let app = spawn_app(kind).await;
    let r = app.login_raw("admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
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
    let body = json_of(r).await;
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
        .post_body("/auth/login", Some("application/json"), "{\"username\":")
        .await;
    expect_error(broken, StatusCode::BAD_REQUEST).await;

    let not_json = app.post_body("/auth/login", None, "username=admin").await;
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
        .put_as(
            &format!("/api/users/{disabled_id}"),
            &admin.access,
            json!({ "is_active": false }),
        )
        .await;
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
        let body = json_of(r).await;
        seen.push((status, headers, body));
    }
    assert_eq!(seen[0].0, StatusCode::UNAUTHORIZED);
    assert_eq!(seen[0].2["message"], json!("Invalid username or password"));
    for other in &seen[1..] {
        assert_eq!(other, &seen[0]);
    }
}

async fn me_and_profile_describe_the_caller(kind: DbKind) {
    let app = spawn_app(kind).await;
    let id = app.create_user("dave", "dave-password", "user").await;
    let t = app.login("dave", "dave-password").await;
    for path in ["/api/me", "/api/profile"] {
        let body: Value = app.get_json(path, &t.access).await;
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
        .get_as("/api/me", &header("x-access-token", &t.access))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    expect_error(app.get("/api/me").await, StatusCode::UNAUTHORIZED).await;
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
