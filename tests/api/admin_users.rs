//! Admin user management over HTTP: searching and paging users, disabling and enabling, and a user's
//! sessions (list, end one, end all), each action in the audit trail.

use reqwest::Method;

use crate::helpers::{BrowserSession, Tokens, call, prelude::*};

db_tests!(
    searching_and_paging_users_returns_exactly_the_matching_users_and_totals,
    a_bad_page_size_is_refused_with_422,
    disabling_a_user_ends_its_bearer_and_cookie_sessions_and_enabling_lets_it_log_in_again,
    an_admin_lists_a_users_sessions_and_ends_one_then_all,
    a_session_id_of_another_user_is_not_found_and_stays_live,
    a_plain_user_gets_403_on_each_admin_user_route,
    every_admin_action_on_a_user_is_in_the_audit_trail,
);

/// `(actor_id, subject, detail)` of every audit event with this name, oldest first.
async fn audit(app: &TestApp, event: &str) -> Vec<(Option<String>, Option<String>, String)> {
    app.state.audit.flush().await;
    sqlx::query_as(
        "SELECT actor_id, subject, detail FROM audit_events WHERE event = $1 ORDER BY at, id",
    )
    .bind(event)
    .fetch_all(&app.db().pool)
    .await
    .unwrap()
}

async fn create(app: &TestApp, admin: &Tokens, body: Value) -> String {
    let r = app.post_as("/api/users", admin, body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    json_of(r).await["data"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn users_page(app: &TestApp, admin: &Tokens, query: &str) -> Value {
    let r = app.get_as(&format!("/api/users{query}"), admin).await;
    assert_eq!(r.status(), StatusCode::OK, "{query}");
    json_of(r).await["data"].clone()
}

fn names(page: &Value) -> Vec<String> {
    column(&page["users"], "username")
        .into_iter()
        .map(str::to_string)
        .collect()
}

async fn searching_and_paging_users_returns_exactly_the_matching_users_and_totals(kind: DbKind) {
    // Arrange: 25 members; odd ones are "Odd Person N", even ones "Even Person N"; member07 is disabled.
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let mut ids = Vec::new();
    for n in 1..=25 {
        let parity = if n % 2 == 1 { "Odd" } else { "Even" };
        ids.push(
            create(&app, &admin, json!({
                "username": format!("member{n:02}"), "password": "member-password",
                "email": format!("M{n:02}@Example.test"), "full_name": format!("{parity} Person {n}"),
            }))
            .await,
        );
    }
    let r = call(
        &app,
        Method::PUT,
        &format!("/api/users/{}", ids[6]),
        &admin.access,
        Some(json!({ "is_active": false })),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let member = |n: u32| format!("member{n:02}");

    // Act / Assert: pages in creation order, admin first.
    let first = users_page(&app, &admin, "?limit=10").await;
    assert_eq!(first["total"], json!(26));
    assert_eq!(first["has_more"], json!(true));
    let mut expected = vec!["admin".to_string()];
    expected.extend((1..=9).map(member));
    assert_eq!(names(&first), expected);
    let last = users_page(&app, &admin, "?limit=10&offset=20").await;
    assert_eq!(names(&last), (20..=25).map(member).collect::<Vec<_>>());
    assert_eq!(last["total"], json!(26));
    assert_eq!(last["has_more"], json!(false));
    let beyond = users_page(&app, &admin, "?limit=10&offset=40").await;
    assert!(names(&beyond).is_empty());
    assert_eq!(beyond["has_more"], json!(false));

    // Unpaged: every user, as before.
    let all = users_page(&app, &admin, "").await;
    assert_eq!(names(&all).len(), 26);
    assert_eq!(
        (all["total"].clone(), all["has_more"].clone()),
        (json!(26), json!(false))
    );

    // Username, case-insensitive.
    let by_name = users_page(&app, &admin, "?q=MEMBER1").await;
    assert_eq!(names(&by_name), (10..=19).map(member).collect::<Vec<_>>());
    assert_eq!(by_name["total"], json!(10));
    // Full name, paged.
    let odd = users_page(&app, &admin, "?q=odd%20person&limit=5&offset=5").await;
    assert_eq!(odd["total"], json!(13));
    assert_eq!(names(&odd), [11, 13, 15, 17, 19].map(member));
    assert_eq!(odd["has_more"], json!(true));
    // Email, whatever its case.
    let by_email = users_page(&app, &admin, "?q=m07@EXAMPLE").await;
    assert_eq!(names(&by_email), [member(7)]);
    // Filters, alone and with a search.
    let admins = users_page(&app, &admin, "?role=admin").await;
    assert_eq!(names(&admins), ["admin"]);
    let disabled = users_page(&app, &admin, "?active=false").await;
    assert_eq!(names(&disabled), [member(7)]);
    assert_eq!(disabled["users"][0]["is_active"], json!(false));
    let active_odd = users_page(&app, &admin, "?q=odd&active=true&role=user").await;
    assert_eq!(active_odd["total"], json!(12));
    // LIKE's wildcards are plain characters.
    for q in ["%25", "_", "member_1"] {
        let none = users_page(&app, &admin, &format!("?q={q}")).await;
        assert_eq!(none["total"], json!(0), "{q}");
        assert!(names(&none).is_empty());
    }
}

async fn a_bad_page_size_is_refused_with_422(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    for query in ["?limit=0", "?limit=201"] {
        let r = app.get_as(&format!("/api/users{query}"), &admin).await;
        let body = expect_error(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    }
    let r = app.get_as("/api/users?offset=-1", &admin).await;
    expect_error(r, StatusCode::BAD_REQUEST).await;
    let r = app.get_as("/api/users?limit=200", &admin).await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn set_active(app: &TestApp, admin: &Tokens, id: &str, active: bool) {
    let r = call(
        app,
        Method::PUT,
        &format!("/api/users/{id}"),
        &admin.access,
        Some(json!({ "is_active": active })),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["data"]["user"]["is_active"], json!(active));
}

async fn disabling_a_user_ends_its_bearer_and_cookie_sessions_and_enabling_lets_it_log_in_again(
    kind: DbKind,
) {
    // Arrange
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let id = app.create_user("dora", "dora-password", "user").await;
    let bearer = app.login("dora", "dora-password").await;
    let browser = app.login_cookie("dora", "dora-password").await;
    assert_eq!(
        app.get_as("/api/me", &bearer).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_as("/api/me", &browser).await.status(),
        StatusCode::OK
    );

    // Act
    set_active(&app, &admin, &id, false).await;

    // Assert: both credentials end at once, the refresh token too, and no new login is possible.
    assert_eq!(
        app.get_as("/api/me", &bearer).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_as("/api/me", &browser).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .post("/auth/refresh", json!({ "refresh_token": bearer.refresh }))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login_raw("dora", "dora-password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let sessions = app
        .get_json(&format!("/api/users/{id}/sessions"), &admin)
        .await;
    let sessions = sessions["data"]["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    assert!(
        sessions
            .iter()
            .all(|s| s["revoked"] == json!(true) && s["revoke_reason"] == json!("disabled"))
    );

    // Enabling lets her log in again; the old credentials stay dead.
    set_active(&app, &admin, &id, true).await;
    let again = app.login("dora", "dora-password").await;
    assert_eq!(app.get_as("/api/me", &again).await.status(), StatusCode::OK);
    assert_eq!(
        app.get_as("/api/me", &bearer).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_as("/api/me", &browser).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let disabled = audit(&app, "user.disabled").await;
    let enabled = audit(&app, "user.enabled").await;
    for events in [&disabled, &enabled] {
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].0.as_deref(), Some(admin.user_id.as_str()));
        assert_eq!(events[0].1.as_deref(), Some(id.as_str()));
    }
}

/// Logs in with a user agent of its own, so the admin's list tells the sessions apart.
async fn login_as_agent(app: &TestApp, username: &str, password: &str, agent: &str) -> Tokens {
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header("user-agent", agent)
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    Tokens {
        access: body["access_token"].as_str().unwrap().to_string(),
        refresh: body["refresh_token"].as_str().unwrap().to_string(),
        user_id: body["user_id"].as_str().unwrap().to_string(),
    }
}

async fn session_id_of(app: &TestApp, who: &(impl crate::helpers::Caller + ?Sized)) -> String {
    app.get_json("/api/me", who).await["session_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn an_admin_lists_a_users_sessions_and_ends_one_then_all(kind: DbKind) {
    // Arrange: two logins of bob, one a bearer client and one a browser.
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let bob = app.create_user("bob", "bob-password", "user").await;
    let phone = login_as_agent(&app, "bob", "bob-password", "bob-phone/1.0").await;
    let browser: BrowserSession = app.login_cookie("bob", "bob-password").await;
    let phone_session = session_id_of(&app, &phone).await;
    let browser_session = session_id_of(&app, &browser).await;

    // Act: the admin lists them.
    let r = app
        .get_as(&format!("/api/users/{bob}/sessions"), &admin)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();

    // Assert: two sessions, no token or cookie anywhere in the reply.
    for secret in [
        &phone.access,
        &phone.refresh,
        &browser.cookie,
        &browser.csrf,
    ] {
        let value = secret.split_once('=').map_or(secret.as_str(), |(_, v)| v);
        assert!(!text.contains(value), "a credential in {text}");
    }
    let list: Value = serde_json::from_str(&text).unwrap();
    let sessions = list["data"]["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{list}");
    let phone_row = sessions
        .iter()
        .find(|s| s["id"] == json!(phone_session))
        .unwrap();
    assert_eq!(phone_row["user_agent"], json!("bob-phone/1.0"));
    assert_eq!(phone_row["kind"], json!("password"));
    assert_eq!(phone_row["client_ip"], json!("127.0.0.1"));
    assert_eq!(phone_row["revoked"], json!(false));
    assert_eq!(phone_row["current"], json!(false));
    for field in ["created_at", "expires_at"] {
        assert!(phone_row[field].is_string(), "{field} in {phone_row}");
    }
    assert!(sessions.iter().any(|s| s["id"] == json!(browser_session)));

    // Act: end the phone's session.
    let r = app
        .delete_as(
            &format!("/api/users/{bob}/sessions/{phone_session}"),
            &admin,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["revoked"], json!(1));

    // Assert: the phone is out at once (its refresh token too); the browser still works.
    assert_eq!(
        app.get_as("/api/me", &phone).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .post("/auth/refresh", json!({ "refresh_token": phone.refresh }))
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get_as("/api/me", &browser).await.status(),
        StatusCode::OK
    );
    let list = app
        .get_json(&format!("/api/users/{bob}/sessions"), &admin)
        .await;
    let phone_row = list["data"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == json!(phone_session))
        .unwrap()
        .clone();
    assert_eq!(phone_row["revoked"], json!(true));
    assert_eq!(phone_row["revoke_reason"], json!("admin_revoked"));

    // Act: end them all (a second login meanwhile).
    let tablet = app.login("bob", "bob-password").await;
    let r = app
        .delete_as(&format!("/api/users/{bob}/sessions"), &admin)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["revoked"], json!(2));

    // Assert
    assert_eq!(
        app.get_as("/api/me", &browser).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_as("/api/me", &tablet).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get_as("/api/me", &admin).await.status(), StatusCode::OK);
    let revoked = audit(&app, "session.revoked_by_admin").await;
    assert_eq!(revoked.len(), 3, "{revoked:?}");
    assert!(revoked.iter().all(|(actor, subject, _)| {
        actor.as_deref() == Some(admin.user_id.as_str()) && subject.as_deref() == Some(bob.as_str())
    }));
    assert!(
        revoked.iter().any(|e| e.2.contains(&phone_session)),
        "{revoked:?}"
    );
    assert!(
        revoked.iter().any(|e| e.2.contains(&browser_session)),
        "{revoked:?}"
    );
    assert_eq!(audit(&app, "session.listed_by_admin").await.len(), 2);
    // Bob can log in again.
    app.login("bob", "bob-password").await;
}

async fn a_session_id_of_another_user_is_not_found_and_stays_live(kind: DbKind) {
    // Arrange
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let bob = app.create_user("bob", "bob-password", "user").await;
    app.create_user("carol", "carol-password", "user").await;
    let bob_login = app.login("bob", "bob-password").await;
    let carol_login = app.login("carol", "carol-password").await;
    let carol_session = session_id_of(&app, &carol_login).await;

    // Act
    let r = app
        .delete_as(
            &format!("/api/users/{bob}/sessions/{carol_session}"),
            &admin,
        )
        .await;

    // Assert: 404, like an unknown session or user; nothing ended, nothing audited.
    let body = expect_error(r, StatusCode::NOT_FOUND).await;
    assert_eq!(body["error"], json!("Session not found"));
    assert_eq!(
        app.get_as("/api/me", &carol_login).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_as("/api/me", &bob_login).await.status(),
        StatusCode::OK
    );
    let unknown = uuid::Uuid::new_v4();
    let r = app
        .delete_as(&format!("/api/users/{bob}/sessions/{unknown}"), &admin)
        .await;
    expect_error(r, StatusCode::NOT_FOUND).await;
    let r = app
        .get_as(&format!("/api/users/{unknown}/sessions"), &admin)
        .await;
    expect_error(r, StatusCode::NOT_FOUND).await;
    let r = app
        .delete_as(
            &format!("/api/users/{unknown}/sessions/{carol_session}"),
            &admin,
        )
        .await;
    expect_error(r, StatusCode::NOT_FOUND).await;
    let r = app
        .delete_as(&format!("/api/users/{unknown}/sessions"), &admin)
        .await;
    expect_error(r, StatusCode::NOT_FOUND).await;
    assert!(audit(&app, "session.revoked_by_admin").await.is_empty());
}

async fn a_plain_user_gets_403_on_each_admin_user_route(kind: DbKind) {
    let app = spawn_app(kind).await;
    let bob = app.create_user("bob", "bob-password", "user").await;
    app.create_user("henry", "henry-password", "user").await;
    let henry = app.login("henry", "henry-password").await;
    let bob_login = app.login("bob", "bob-password").await;
    let bob_session = session_id_of(&app, &bob_login).await;
    for (method, path) in [
        (Method::GET, "/api/users?q=bob&limit=5".to_string()),
        (Method::GET, format!("/api/users/{bob}/sessions")),
        (Method::DELETE, format!("/api/users/{bob}/sessions")),
        (
            Method::DELETE,
            format!("/api/users/{bob}/sessions/{bob_session}"),
        ),
        (Method::PUT, format!("/api/users/{bob}")),
    ] {
        let r = call(
            &app,
            method.clone(),
            &path,
            &henry.access,
            Some(json!({ "is_active": false })),
        )
        .await;
        let body = expect_error(r, StatusCode::FORBIDDEN).await;
        assert!(
            body["error"].as_str().unwrap().contains("users:manage"),
            "{method} {path}: {body}"
        );
    }
    assert_eq!(
        app.get_as("/api/me", &bob_login).await.status(),
        StatusCode::OK
    );
}

async fn every_admin_action_on_a_user_is_in_the_audit_trail(kind: DbKind) {
    // Arrange
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let id = app.create_user("erin", "erin-password-1", "user").await;
    let erin = app.login("erin", "erin-password-1").await;
    let put = |body: Value| {
        let path = format!("/api/users/{id}");
        let token = admin.access.clone();
        let app = &app;
        async move { call(app, Method::PUT, &path, &token, Some(body)).await }
    };

    // Act: profile, role, disable, enable, password reset.
    assert_eq!(
        put(json!({ "full_name": "Erin E." })).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_as("/api/me", &erin).await.status(),
        StatusCode::OK,
        "a profile change keeps sessions"
    );
    assert_eq!(
        put(json!({ "role": "admin" })).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_as("/api/me", &erin).await.status(),
        StatusCode::UNAUTHORIZED,
        "a role change ends sessions"
    );
    assert_eq!(
        put(json!({ "role": "user" })).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        put(json!({ "is_active": false })).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        put(json!({ "is_active": true })).await.status(),
        StatusCode::OK
    );
    let erin = app.login("erin", "erin-password-1").await;
    let r = call(
        &app,
        Method::PUT,
        &format!("/api/users/{id}/password"),
        &admin.access,
        Some(json!({ "new_password": "erin-password-2" })),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let reply = r.text().await.unwrap();

    // Assert: the reset ends her session, and the reply names no password.
    assert!(!reply.contains("erin-password"), "{reply}");
    assert_eq!(
        app.get_as("/api/me", &erin).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_raw("erin", "erin-password-1").await.status(),
        StatusCode::UNAUTHORIZED
    );
    app.login("erin", "erin-password-2").await;
    for (event, count) in [
        ("user.create", 1),
        ("user.update", 1),
        ("user.role_change", 2),
        ("user.disabled", 1),
        ("user.enabled", 1),
        ("user.password_change", 1),
    ] {
        let mut events = audit(&app, event).await;
        events.retain(|e| e.1.as_deref() == Some(id.as_str()));
        assert_eq!(events.len(), count, "{event}: {events:?}");
        for (actor, subject, detail) in &events {
            assert_eq!(actor.as_deref(), Some(admin.user_id.as_str()), "{event}");
            assert_eq!(subject.as_deref(), Some(id.as_str()), "{event}");
            assert!(!detail.contains("erin-password"), "{event}: {detail}");
        }
    }
    let roles = audit(&app, "user.role_change").await;
    assert!(
        roles[0].2.contains("\"from\":\"user\"") && roles[0].2.contains("\"role\":\"admin\""),
        "{roles:?}"
    );
    // Sessions the reset ended say why.
    let sessions = app
        .get_json(&format!("/api/users/{id}/sessions"), &admin)
        .await;
    let reasons: Vec<&str> = sessions["data"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["revoke_reason"].as_str())
        .collect();
    assert!(reasons.contains(&"password_change"), "{sessions}");
}
