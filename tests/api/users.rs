//! Seed-004 admin routes: users and permissions (shapes and errors; the 401/403 sweeps of every route are in
//! routes.rs).

use reqwest::Method;

use crate::helpers::{call, captured_logs, prelude::*};

db_tests!(
    admins_list_create_read_update_and_delete_users,
    duplicate_and_invalid_users_are_refused_with_409_and_422,
    deleting_admins_or_oneself_is_refused,
    role_change_disabling_and_password_reset_end_every_session,
    role_permissions_are_read_from_server_state_at_once,
    sql_looking_input_is_an_ordinary_4xx,
    invisible_and_format_characters_in_usernames_are_refused_with_422,
    script_lookalikes_of_an_existing_name_are_refused_like_a_duplicate,
    names_in_any_script_are_still_accepted_and_can_log_in,
    accounts_from_before_skeletons_get_one_at_start_up_and_old_collisions_still_log_in,
);

async fn admins_list_create_read_update_and_delete_users(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let r = call(&app, Method::POST, "/api/users", &admin.access, Some(json!({ "username": "frank", "password": "frank-password", "email": "f@example.test", "full_name": "Frank" }))).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["status"], json!("success"));
    let user = &created["data"]["user"];
    let id = user["id"].as_str().unwrap().to_string();
    assert_eq!(user["username"], json!("frank"));
    assert_eq!(user["email"], json!("f@example.test"));
    assert_eq!(user["role"], json!("user"));
    assert!(user.get("password_hash").is_none());

    let list: Value = call(&app, Method::GET, "/api/users", &admin.access, None)
        .await
        .json()
        .await
        .unwrap();
    let names = column(&list["data"]["users"], "username");
    assert_eq!(names, ["admin", "frank"]);

    let one: Value = call(
        &app,
        Method::GET,
        &format!("/api/users/{id}"),
        &admin.access,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(one["data"]["user"]["full_name"], json!("Frank"));

    let r = call(
        &app,
        Method::PUT,
        &format!("/api/users/{id}"),
        &admin.access,
        Some(json!({ "full_name": "Frank F." })),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap()["data"]["user"]["full_name"],
        json!("Frank F.")
    );

    let r = call(
        &app,
        Method::PUT,
        &format!("/api/users/{id}/password"),
        &admin.access,
        Some(json!({ "new_password": "frank-password-2" })),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.login("frank", "frank-password-2").await;

    let r = call(
        &app,
        Method::DELETE,
        &format!("/api/users/{id}"),
        &admin.access,
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let gone = call(
        &app,
        Method::GET,
        &format!("/api/users/{id}"),
        &admin.access,
        None,
    )
    .await;
    let body = expect_error(gone, StatusCode::NOT_FOUND).await;
    assert_eq!(body["error"], json!("User not found"));
    assert_eq!(
        app.login_raw("frank", "frank-password-2").await.status(),
        StatusCode::UNAUTHORIZED
    );
    for path in [
        format!("/api/users/{id}"),
        format!("/api/users/{}", uuid::Uuid::new_v4()),
    ] {
        expect_error(
            call(&app, Method::PUT, &path, &admin.access, Some(json!({}))).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        expect_error(
            call(&app, Method::DELETE, &path, &admin.access, None).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        expect_error(
            call(
                &app,
                Method::PUT,
                &format!("{path}/password"),
                &admin.access,
                Some(json!({ "new_password": "long-enough-1" })),
            )
            .await,
            StatusCode::NOT_FOUND,
        )
        .await;
        expect_error(
            call(
                &app,
                Method::GET,
                &path.replace("/api/users/", "/api/permissions/user/"),
                &admin.access,
                None,
            )
            .await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
}

async fn duplicate_and_invalid_users_are_refused_with_409_and_422(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    app.create_user("grace", "grace-password", "user").await;
    for name in ["grace", "GRACE", "ｇｒａｃｅ"] {
        let r = call(
            &app,
            Method::POST,
            "/api/users",
            &admin.access,
            Some(json!({ "username": name, "password": "another-password" })),
        )
        .await;
        let body = expect_error(r, StatusCode::CONFLICT).await;
        assert_eq!(body["error"], json!("username already exists"));
    }
    let bad = [
        json!({ "username": "h", "password": "short" }),
        json!({ "username": "", "password": "long-enough-password" }),
        json!({ "username": "has space", "password": "long-enough-password" }),
        json!({ "username": "x".repeat(65), "password": "long-enough-password" }),
        json!({ "username": "h", "password": "long-enough-password", "role": "emperor" }),
        json!({ "username": "h", "password": "long-enough-password", "email": "e".repeat(300) }),
        json!({ "username": "h" }),
        json!({ "username": "h", "password": 12345678 }),
    ];
    for body in bad {
        let r = call(
            &app,
            Method::POST,
            "/api/users",
            &admin.access,
            Some(body.clone()),
        )
        .await;
        expect_error(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let r = app
        .client
        .post(app.url("/api/users"))
        .bearer_auth(&admin.access)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    expect_error(r, StatusCode::BAD_REQUEST).await;
}

async fn deleting_admins_or_oneself_is_refused(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let body = expect_error(
        call(
            &app,
            Method::DELETE,
            &format!("/api/users/{}", admin.user_id),
            &admin.access,
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(body["error"].as_str().unwrap().contains("yourself"));
    let other_admin = app.create_user("ivy", "ivy-password", "admin").await;
    let body = expect_error(
        call(
            &app,
            Method::DELETE,
            &format!("/api/users/{other_admin}"),
            &admin.access,
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(body["error"].as_str().unwrap().contains("admin"));
    let r = call(
        &app,
        Method::PUT,
        &format!("/api/users/{}", admin.user_id),
        &admin.access,
        Some(json!({ "role": "user" })),
    )
    .await;
    expect_error(r, StatusCode::FORBIDDEN).await;
}

async fn role_change_disabling_and_password_reset_end_every_session(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let id = app.create_user("jack", "jack-password", "user").await;
    let cases = [json!({ "role": "admin" }), json!({ "is_active": false })];
    for change in cases {
        let t = app.login_raw("jack", "jack-password").await;
        if t.status() != StatusCode::OK {
            // Re-enable after the disable case.
            call(
                &app,
                Method::PUT,
                &format!("/api/users/{id}"),
                &admin.access,
                Some(json!({ "is_active": true })),
            )
            .await;
        }
        let t = app.login("jack", "jack-password").await;
        let browser = app.login_cookie("jack", "jack-password").await;
        assert_eq!(
            app.get_bearer("/api/me", &t.access).await.status(),
            StatusCode::OK
        );
        let r = call(
            &app,
            Method::PUT,
            &format!("/api/users/{id}"),
            &admin.access,
            Some(change.clone()),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{change}");
        assert_eq!(
            app.get_bearer("/api/me", &t.access).await.status(),
            StatusCode::UNAUTHORIZED,
            "{change}"
        );
        let r = app
            .get_as("/api/me", &header("cookie", &browser.cookie))
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{change}");
        expect_error(
            app.post("/auth/refresh", json!({ "refresh_token": t.refresh }))
                .await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    assert_eq!(
        app.login_raw("jack", "jack-password").await.status(),
        StatusCode::UNAUTHORIZED,
        "disabled users cannot log in"
    );
    call(
        &app,
        Method::PUT,
        &format!("/api/users/{id}"),
        &admin.access,
        Some(json!({ "is_active": true })),
    )
    .await;
    let t = app.login("jack", "jack-password").await;
    let r = call(
        &app,
        Method::PUT,
        &format!("/api/users/{id}/password"),
        &admin.access,
        Some(json!({ "new_password": "jack-password-2" })),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.get_bearer("/api/me", &t.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_bearer("/api/me", &admin.access).await.status(),
        StatusCode::OK,
        "the admin's own session is untouched"
    );
}

async fn role_permissions_are_read_from_server_state_at_once(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let id = app.create_user("kim", "kim-password", "user").await;
    let kim = app.login("kim", "kim-password").await;
    assert_eq!(
        call(&app, Method::GET, "/api/users", &kim.access, None)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );

    let r = call(
        &app,
        Method::POST,
        "/api/permissions",
        &admin.access,
        Some(json!({ "role": "user", "permissions": ["chat:use", "users:manage"] })),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Kim's existing token now carries the new permission: it comes from the server, not the token.
    assert_eq!(
        call(&app, Method::GET, "/api/users", &kim.access, None)
            .await
            .status(),
        StatusCode::OK
    );

    let p: Value = call(
        &app,
        Method::GET,
        &format!("/api/permissions/user/{id}"),
        &admin.access,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(p["data"]["role"], json!("user"));
    assert_eq!(
        p["data"]["permissions"],
        json!(["chat:use", "users:manage"])
    );

    let r = call(&app, Method::POST, "/api/permissions", &admin.access, Some(json!({ "role": "auditor", "description": "Reads analytics", "permissions": ["analytics:read"] }))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let all: Value = call(&app, Method::GET, "/api/permissions", &admin.access, None)
        .await
        .json()
        .await
        .unwrap();
    let roles = column(&all["data"]["roles"], "name");
    assert_eq!(roles, ["admin", "auditor", "user"]);
    let r = call(
        &app,
        Method::PUT,
        &format!("/api/users/{id}"),
        &admin.access,
        Some(json!({ "role": "auditor" })),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);

    for bad in [
        json!({ "role": "bad role", "permissions": [] }),
        json!({ "role": "x", "permissions": ["no spaces"] }),
        json!({ "role": "x" }),
    ] {
        expect_error(
            call(
                &app,
                Method::POST,
                "/api/permissions",
                &admin.access,
                Some(bad),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let r = call(
        &app,
        Method::POST,
        "/api/permissions",
        &admin.access,
        Some(json!({ "role": "admin", "permissions": ["chat:use"] })),
    )
    .await;
    expect_error(r, StatusCode::FORBIDDEN).await;
}

async fn sql_looking_input_is_an_ordinary_4xx(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let evil = [
        "' OR '1'='1",
        "1; DROP TABLE users; --",
        "\" OR \"\"=\"",
        "admin'--",
        "%27%20OR%201%3D1",
    ];
    for e in evil {
        let encoded = e
            .replace('%', "%25")
            .replace(' ', "%20")
            .replace('"', "%22")
            .replace(';', "%3B")
            .replace('\'', "%27");
        for path in [
            format!("/api/users/{encoded}"),
            format!("/api/permissions/user/{encoded}"),
        ] {
            let r = call(&app, Method::GET, &path, &admin.access, None).await;
            let body = expect_error(r, StatusCode::NOT_FOUND).await;
            assert!(
                !body.to_string().to_lowercase().contains("select"),
                "{body}"
            );
        }
        let r = app.login_raw(e, e).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{e}");
        let r = call(&app, Method::POST, "/api/users", &admin.access, Some(json!({ "username": e.replace(' ', ""), "password": "long-enough-password", "full_name": e }))).await;
        assert!(
            r.status() == StatusCode::CREATED
                || r.status() == StatusCode::UNPROCESSABLE_ENTITY
                || r.status() == StatusCode::CONFLICT,
            "{e}: {}",
            r.status()
        );
    }
    let list = call(&app, Method::GET, "/api/users", &admin.access, None).await;
    assert_eq!(list.status(), StatusCode::OK, "the users table is intact");
}

async fn create(app: &TestApp, token: &str, username: &str) -> reqwest::Response {
    call(
        app,
        Method::POST,
        "/api/users",
        token,
        Some(json!({ "username": username, "password": "long-enough-password" })),
    )
    .await
}

async fn invisible_and_format_characters_in_usernames_are_refused_with_422(kind: DbKind) {
    // Arrange
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let hidden = [
        ('\u{200B}', "zero-width space"),
        ('\u{200C}', "zero-width non-joiner"),
        ('\u{200D}', "zero-width joiner"),
        ('\u{00AD}', "soft hyphen"),
        ('\u{202A}', "left-to-right embedding"),
        ('\u{202B}', "right-to-left embedding"),
        ('\u{202C}', "pop directional formatting"),
        ('\u{202D}', "left-to-right override"),
        ('\u{202E}', "right-to-left override"),
        ('\u{2066}', "left-to-right isolate"),
        ('\u{2067}', "right-to-left isolate"),
        ('\u{2068}', "first strong isolate"),
        ('\u{2069}', "pop directional isolate"),
        ('\u{E0001}', "language tag"),
        ('\u{E0061}', "tag latin small letter a"),
        ('\u{FE00}', "variation selector-1"),
        ('\u{FE0F}', "variation selector-16"),
        ('\u{E0100}', "variation selector-17"),
        ('\u{FEFF}', "byte order mark"),
        ('\u{2060}', "word joiner"),
        ('\u{180E}', "mongolian vowel separator"),
    ];
    for (c, what) in hidden {
        for name in [
            format!("ma{c}llory"),
            format!("{c}mallory"),
            format!("mallory{c}"),
        ] {
            // Act
            let r = create(&app, &admin.access, &name).await;
            // Assert
            let body = expect_error(r, StatusCode::UNPROCESSABLE_ENTITY).await;
            let message = body["error"].as_str().unwrap();
            assert!(
                message.contains(&format!("U+{:04X}", u32::from(c))),
                "{what}: {message}"
            );
        }
    }
    let list: Value = call(&app, Method::GET, "/api/users", &admin.access, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"]["total"], json!(1), "only the admin exists");
}

async fn script_lookalikes_of_an_existing_name_are_refused_like_a_duplicate(kind: DbKind) {
    // Arrange: `admin` exists from start-up (bootstrap); `paypal` is made over the API.
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    app.create_user("paypal", "paypal-password", "user").await;
    let duplicate = expect_error(
        create(&app, &admin.access, "admin").await,
        StatusCode::CONFLICT,
    )
    .await;
    let lookalikes = [
        "\u{0430}dmin",               // Cyrillic а
        "\u{03B1}dmin",               // Greek α
        "adm\u{0131}n",               // dotless ı
        "\u{0410}DMIN",               // Cyrillic А, upper case
        "\u{0430}\u{0501}m\u{0456}n", // Cyrillic а, ԁ, і
        "p\u{0430}yp\u{0430}l",
        "\u{0440}aypal", // Cyrillic р
    ];
    for name in lookalikes {
        // Act
        let r = create(&app, &admin.access, name).await;
        // Assert
        let body = expect_error(r, StatusCode::CONFLICT).await;
        assert_eq!(body["error"], duplicate["error"], "{name}");
        assert_eq!(body["code"], duplicate["code"], "{name}");
    }
    let list: Value = call(&app, Method::GET, "/api/users", &admin.access, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"]["total"], json!(2));
}

async fn names_in_any_script_are_still_accepted_and_can_log_in(kind: DbKind) {
    // Arrange
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let names = [
        "José",
        "Ελένη",
        "李雷",
        "Дмитрий",
        "مريم",
        "नमस्ते",
        "o'brien",
        "first.last",
        "jane_doe-2",
    ];
    for name in names {
        // Act
        let r = create(&app, &admin.access, name).await;
        // Assert
        assert_eq!(r.status(), StatusCode::CREATED, "{name}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["data"]["user"]["username"], json!(name));
        app.login(name, "long-enough-password").await;
    }
    // The decomposed spelling of an existing name is the same account, not a new one.
    let r = create(&app, &admin.access, "Jose\u{0301}").await;
    expect_error(r, StatusCode::CONFLICT).await;
    app.login("JOSÉ", "long-enough-password").await;
}

async fn accounts_from_before_skeletons_get_one_at_start_up_and_old_collisions_still_log_in(
    kind: DbKind,
) {
    // Arrange: two accounts as they were before skeletons, one of them a lookalike of the other.
    let app = spawn_app(kind).await;
    app.create_user("carl", "carl-password", "user").await;
    let legacy = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO users (id, username, username_canonical, kind, password_hash, role, is_active, created_at, \
         updated_at, login_count) SELECT $1, $2, $2, kind, password_hash, role, 1, created_at + 1, updated_at, 0 \
         FROM users WHERE username_canonical = 'carl'",
    )
    .bind(&legacy)
    .bind("\u{0441}arl") // Cyrillic с
    .execute(app.db().writer())
    .await
    .unwrap();
    sqlx::query("UPDATE users SET username_skeleton = NULL")
        .execute(app.db().writer())
        .await
        .unwrap();

    // Act
    let app = app.restart().await;

    // Assert: the older account holds the name again, the newer lookalike is logged and still signs in.
    let admin = app.admin().await;
    for name in ["\u{0441}\u{0430}rl", "c\u{0430}rl", "\u{0430}dmin"] {
        let body = expect_error(
            create(&app, &admin.access, name).await,
            StatusCode::CONFLICT,
        )
        .await;
        assert_eq!(body["error"], json!("username already exists"), "{name}");
    }
    app.login("carl", "carl-password").await;
    app.login("\u{0441}arl", "carl-password").await;
    assert!(captured_logs().contains(&legacy), "the collision is logged");
    let left: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM users WHERE username_skeleton IS NULL")
            .fetch_all(&app.db().pool)
            .await
            .unwrap();
    assert_eq!(left, [(legacy,)]);
}

/// The CLI's `user create` and `client create` go through the same rules as the admin API.
#[test]
fn the_cli_refuses_invisible_characters_and_lookalike_names() {
    use std::io::Write;
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WARDEN_DATA_DIR", dir.path())
            .env("LOG_LEVEL", "warn")
            .current_dir(dir.path())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"long-enough-password\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = run(&["user", "create", "bob"]);
    assert!(ok, "{text}");

    // Act
    let lookalike = run(&["user", "create", "b\u{043E}b"]);
    let client_lookalike = run(&["client", "create", "b\u{03BF}b"]);
    let hidden = run(&["user", "create", "b\u{200B}ob"]);

    // Assert
    assert!(
        !lookalike.0 && lookalike.1.contains("already exists"),
        "{}",
        lookalike.1
    );
    assert!(
        !client_lookalike.0 && client_lookalike.1.contains("already exists"),
        "{}",
        client_lookalike.1
    );
    assert!(!hidden.0 && hidden.1.contains("U+200B"), "{}", hidden.1);
    let (ok, text) = run(&["user", "list"]);
    assert!(
        ok && !text.contains("b\u{043E}b") && !text.contains('\u{200B}'),
        "{text}"
    );
}
