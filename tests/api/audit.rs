//! The audit viewer: `GET /api/audit` (filters, cursor paging newest first), the JSON Lines export, who may
//! read it, that no route changes it, and who sees tool-call bodies.

use crate::helpers::prelude::*;

db_tests!(
    events_of_known_actions_are_found_with_each_filter,
    paging_is_stable_newest_first_while_events_arrive,
    the_export_is_json_lines_without_secrets,
    only_audit_readers_see_the_trail_and_no_route_changes_it,
    tool_call_bodies_need_read_bodies_unless_the_call_is_ones_own,
);

async fn events(app: &TestApp, who: &str, query: &str) -> Vec<Value> {
    app.state.audit.flush().await;
    let r = app.get_bearer(&format!("/api/audit?{query}"), who).await;
    assert_eq!(r.status(), StatusCode::OK, "{query}");
    let body = json_of(r).await;
    body["events"].as_array().unwrap().clone()
}

fn names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

async fn events_of_known_actions_are_found_with_each_filter(kind: DbKind) {
    // Arrange: two logins, a failed login and a user created.
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let r = app.login_raw("mallory", "guess").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let created = app.create_user("carol", "carol-password", "user").await;
    let token = admin.access.as_str();

    // Act / Assert: action, exact and prefix.
    let logins = events(&app, token, "action=login.*").await;
    assert!(names(&logins).iter().all(|n| n.starts_with("login.")));
    assert!(names(&logins).contains(&"login.success"));
    assert!(names(&logins).contains(&"login.failure"));
    // (the first start created the admin: a user.create too)
    let created_events = events(&app, token, "action=user.create").await;
    assert_eq!(names(&created_events), ["user.create", "user.create"]);
    assert_eq!(
        created_events[0]["subject"],
        created.as_str(),
        "newest first"
    );
    // Subject (and its alias target).
    let about_carol = events(&app, token, &format!("subject={created}")).await;
    assert_eq!(names(&about_carol), ["user.create"]);
    let about_mallory = events(&app, token, "target=mallory").await;
    assert_eq!(names(&about_mallory), ["login.failure"]);
    // Actor.
    let by_admin = events(&app, token, &format!("actor={}", admin.user_id)).await;
    assert!(!by_admin.is_empty());
    assert!(
        by_admin
            .iter()
            .all(|e| e["actor_id"] == admin.user_id.as_str())
    );
    assert!(names(&by_admin).contains(&"login.success"));
    // Outcome.
    let denied = events(&app, token, "outcome=denied&action=login.*").await;
    assert_eq!(names(&denied), ["login.failure"]);
    // Time range: `from` is inclusive, `to` exclusive, in ms or RFC 3339.
    let at = about_carol[0]["at"].as_i64().unwrap();
    let time = about_carol[0]["time"].as_str().unwrap();
    let q = |range: String| format!("subject={created}&{range}");
    assert_eq!(events(&app, token, &q(format!("from={at}"))).await.len(), 1);
    assert_eq!(events(&app, token, &q(format!("to={at}"))).await.len(), 0);
    assert_eq!(
        events(&app, token, &q(format!("from={}", at + 1)))
            .await
            .len(),
        0
    );
    assert_eq!(
        events(&app, token, &q(format!("to={}", at + 1)))
            .await
            .len(),
        1
    );
    let rfc = time.replace('+', "%2B");
    assert_eq!(
        events(&app, token, &q(format!("from={rfc}"))).await.len(),
        1
    );
    // Bad input is a 400.
    for bad in ["from=yesterday", "cursor=nonsense", "format=xml"] {
        let r = app.get_bearer(&format!("/api/audit?{bad}"), token).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

async fn paging_is_stable_newest_first_while_events_arrive(kind: DbKind) {
    // Arrange: seven logins, some of them within one millisecond of the test clock.
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    for i in 0..6 {
        if i % 2 == 0 {
            app.clock.advance(std::time::Duration::from_millis(5));
        }
        app.admin().await;
    }
    let token = admin.access.as_str();
    let all = events(&app, token, "action=login.success&limit=500").await;
    assert_eq!(all.len(), 7);

    // Act: pages of 3, with a new login between pages.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        app.state.audit.flush().await;
        let query = match &cursor {
            Some(c) => format!("/api/audit?action=login.success&limit=3&cursor={c}"),
            None => "/api/audit?action=login.success&limit=3".to_string(),
        };
        let page = json_of(app.get_bearer(&query, token).await).await;
        assert_eq!(page["limit"], 3);
        paged.extend(page["events"].as_array().unwrap().clone());
        app.admin().await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }

    // Assert: the same seven, newest first, none repeated, none of the later logins.
    let ids = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&paged), ids(&all));
    let keys: Vec<(i64, String)> = all
        .iter()
        .map(|e| {
            (
                e["at"].as_i64().unwrap(),
                e["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, sorted);
    // A limit above 500 is held to 500.
    let page = json_of(app.get_bearer("/api/audit?limit=100000", token).await).await;
    assert_eq!(page["limit"], 500);
}

async fn the_export_is_json_lines_without_secrets(kind: DbKind) {
    // Arrange: logins (tokens issued), a failed login, a password set, a user created.
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let carol_id = app
        .create_user("carol", "carol-first-password", "user")
        .await;
    let carol = app.login("carol", "carol-first-password").await;
    let r = app
        .put_as(
            &format!("/api/users/{carol_id}/password"),
            &admin,
            json!({ "new_password": "carol-second-password" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.login_raw("carol", "carol-wrong-password").await;
    app.state.audit.flush().await;

    // Act
    let export = app.get_bearer("/api/audit/export", &admin.access).await;
    assert_eq!(export.status(), StatusCode::OK);
    assert_eq!(export.headers()["content-type"], "application/x-ndjson");
    let export = export.text().await.unwrap();
    let inline = app
        .get_bearer("/api/audit?format=jsonl&action=login.*", &admin.access)
        .await
        .text()
        .await
        .unwrap();

    // Assert: one JSON object per line, every event there, and no secret.
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert!(export.ends_with('\n'));
    let listed = events(&app, &admin.access, "limit=500").await;
    assert_eq!(lines.len(), listed.len());
    assert_eq!(lines, listed);
    for line in inline.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        assert!(e["event"].as_str().unwrap().starts_with("login."));
    }
    for secret in [
        ADMIN_PASSWORD,
        "carol-first-password",
        "carol-second-password",
        "carol-wrong-password",
        &admin.access,
        &admin.refresh,
        &carol.access,
        &carol.refresh,
    ] {
        assert!(!export.contains(secret), "a secret in the export: {secret}");
    }
}

async fn only_audit_readers_see_the_trail_and_no_route_changes_it(kind: DbKind) {
    // Arrange: a plain user, and an auditor role holding only audit:read.
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    app.create_user("plain", "plain-password", "user").await;
    let plain = app.login("plain", "plain-password").await;
    let r = app
        .post_as(
            "/api/permissions",
            &admin,
            json!({ "role": "auditor", "permissions": ["audit:read"] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.create_user("audrey", "audrey-password", "auditor")
        .await;
    let audrey = app.login("audrey", "audrey-password").await;
    let before = events(&app, &admin.access, "limit=500").await;

    // Act / Assert: who may read.
    for path in ["/api/audit", "/api/audit/export"] {
        assert_eq!(app.get(path).await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            app.get_bearer(path, &plain.access).await.status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.get_bearer(path, &audrey.access).await.status(),
            StatusCode::OK
        );
    }
    // No route writes: PUT, POST, PATCH and DELETE on the trail and on one event are refused.
    let id = before[0]["id"].as_str().unwrap();
    for path in [
        "/api/audit".to_string(),
        "/api/audit/export".to_string(),
        format!("/api/audit/{id}"),
    ] {
        for method in [
            reqwest::Method::PUT,
            reqwest::Method::POST,
            reqwest::Method::PATCH,
            reqwest::Method::DELETE,
        ] {
            let r =
                crate::helpers::call(&app, method.clone(), &path, &admin.access, Some(json!({})))
                    .await;
            assert!(
                [StatusCode::METHOD_NOT_ALLOWED, StatusCode::NOT_FOUND].contains(&r.status()),
                "{method} {path}: {}",
                r.status()
            );
        }
    }
    // Every event read before is still there, unchanged.
    let after = events(&app, &admin.access, "limit=500").await;
    for e in &before {
        assert!(after.contains(e), "changed or gone: {e}");
    }
}

async fn tool_call_bodies_need_read_bodies_unless_the_call_is_ones_own(kind: DbKind) {
    // Arrange: the admin calls a tool; a reader of all calls without read-bodies; carol calls one herself.
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let r = app
        .post_as(
            "/api/permissions",
            &admin,
            json!({ "role": "reader", "permissions": ["tool-calls:read-all", "tools:call:*", "chat:use"] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.create_user("carol", "carol-password", "reader").await;
    let carol = app.login("carol", "carol-password").await;
    for who in [&admin.access, &carol.access] {
        let r = app
            .client
            .post(app.url("/api/servers/builtin/tools/add/execute"))
            .bearer_auth(who)
            .json(&json!({ "parameters": { "a": 20, "b": 22 } }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    app.state.tool_log.flush().await;

    // Act
    let as_admin = app.get_json("/api/tool-calls", &admin).await;
    let as_carol = app.get_json("/api/tool-calls", &carol).await;

    // Assert: the admin sees both bodies; carol sees her own and only metadata of the admin's.
    let calls = |v: &Value| v["tool_calls"].as_array().unwrap().clone();
    assert_eq!(calls(&as_admin).len(), 2);
    for c in calls(&as_admin) {
        assert_eq!(c["arguments"], json!({ "a": 20, "b": 22 }), "{c}");
        assert!(c["result"].as_str().unwrap().contains("42"), "{c}");
    }
    let seen = calls(&as_carol);
    assert_eq!(seen.len(), 2);
    for c in seen {
        if c["user_id"] == carol.user_id.as_str() {
            assert_eq!(c["arguments"], json!({ "a": 20, "b": 22 }), "{c}");
            assert!(!c["result"].is_null(), "{c}");
        } else {
            assert_eq!(c["user_id"], admin.user_id.as_str());
            assert!(c["arguments"].is_null(), "{c}");
            assert!(c["result"].is_null(), "{c}");
            assert_eq!(c["tool_name"], "add");
            assert_eq!(c["status"], "success", "{c}");
        }
    }
}
