//! Saved tests (seed 004): `POST/GET /api/tests`, `DELETE /api/tests/{id}`, `POST /api/tests/{id}/run`. Tests are
//! owned; a run acts as the caller through the tool catalog (permission, policy, tool-call log) and is counted.

use std::time::Duration;

use crate::helpers::prelude::*;

db_tests!(
    a_user_saves_lists_runs_and_deletes_their_own_tests,
    another_users_test_is_not_found_for_run_or_delete,
    a_run_obeys_the_tool_permission_and_the_policy,
    a_failing_tool_is_a_failed_run_not_a_server_error,
    bad_bodies_are_refused_with_a_clear_422,
    database_tests_run_read_only_queries_on_the_callers_own_profile,
    a_role_without_tests_use_is_refused,
    concurrent_runs_are_all_counted,
);

fn add_test(name: &str, category: &str, a: i64, b: i64) -> Value {
    json!({
        "name": name,
        "endpoint_path": "/api/servers/builtin/tools/add/execute",
        "method": "POST",
        "parameters": [{ "name": "a", "value": a }, { "name": "b", "value": b }],
        "request_type": "mcp",
        "test_category": category,
        "server_id": "builtin",
        "tool_name": "add",
    })
}

/// Saves `body` as `token`; returns the saved test.
async fn save(app: &TestApp, token: &str, body: Value) -> Value {
    let r = app.post_as("/api/tests", &token, &body).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{body}");
    let out = json_of(r).await;
    assert_eq!(out["success"], json!(true));
    out["test"].clone()
}

async fn run(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.post_empty_as(&format!("/api/tests/{id}/run"), &token)
        .await
}

async fn list(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let body = app.get_json(&format!("/api/tests{query}"), &token).await;
    assert_eq!(
        body["count"],
        json!(body["tests"].as_array().unwrap().len())
    );
    column(&body["tests"], "name")
        .into_iter()
        .map(str::to_string)
        .collect()
}

async fn a_user_saves_lists_runs_and_deletes_their_own_tests(kind: DbKind) {
    // Arrange: two users with the seeded `user` role (which holds tests:use), each with tests.
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let ann = app.user_with_conversation("ann").await.tokens;
    let bob = app.user_with_conversation("bob").await.tokens;
    let sum = save(&app, &ann.access, add_test("sum", "math", 2, 3)).await;
    app.clock.advance(Duration::from_millis(5));
    save(&app, &ann.access, add_test("other", "smoke", 1, 1)).await;
    app.clock.advance(Duration::from_millis(5));
    save(&app, &bob.access, add_test("bobs", "math", 1, 1)).await;

    // The saved shape: what was sent, never run.
    assert_eq!(sum["name"], json!("sum"));
    assert_eq!(sum["request_type"], json!("mcp"));
    assert_eq!(sum["tool_name"], json!("add"));
    assert_eq!(sum["server_id"], json!("builtin"));
    assert_eq!(sum["parameters"][1], json!({ "name": "b", "value": 3 }));
    assert_eq!(sum["execution_count"], json!(0));
    assert_eq!(sum["last_result"], Value::Null);
    assert_eq!(sum["last_execution"], Value::Null);

    // List: own tests only, newest first; the category filter narrows.
    assert_eq!(list(&app, &ann.access, "").await, ["other", "sum"]);
    assert_eq!(
        list(&app, &ann.access, "?test_category=math").await,
        ["sum"]
    );
    assert_eq!(
        list(&app, &ann.access, "?test_category=none").await,
        Vec::<String>::new()
    );
    assert_eq!(list(&app, &bob.access, "").await, ["bobs"]);

    // Run twice: the sum each time, counted, with the time of the run.
    let id = sum["id"].as_str().unwrap();
    let r = run(&app, &ann.access, id).await;
    assert_eq!(r.status(), StatusCode::OK);
    let first = json_of(r).await["test"].clone();
    assert_eq!(first["last_status"], json!("ok"), "{first}");
    assert_eq!(first["last_result"]["result"], json!(5), "{first}");
    assert_eq!(first["execution_count"], json!(1));
    app.clock.advance(Duration::from_millis(7));
    let second = json_of(run(&app, &ann.access, id).await).await["test"].clone();
    assert_eq!(second["last_result"]["result"], json!(5), "{second}");
    assert_eq!(second["execution_count"], json!(2));
    let last = second["last_execution"]
        .as_i64()
        .expect("last_execution set");
    assert_eq!(last, first["last_execution"].as_i64().unwrap() + 7);
    // The listing shows the stored outcome.
    let listed = app
        .get_json("/api/tests?test_category=math", &ann.access)
        .await;
    assert_eq!(listed["tests"][0]["execution_count"], json!(2));
    assert_eq!(listed["tests"][0]["last_result"]["result"], json!(5));

    // The runs went through the catalog: in the tool-call log as ann's, marked as saved-test calls.
    app.state.tool_log.flush().await;
    let calls = app.get_json("/api/tool-calls", &ann.access).await;
    let from_tests: Vec<&Value> = calls["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["source"] == json!("saved_test"))
        .collect();
    assert_eq!(from_tests.len(), 2, "{calls}");
    assert_eq!(from_tests[0]["tool_name"], json!("add"));

    // Delete: 204, then gone (404 for delete and run).
    let r = app
        .delete_as(&format!("/api/tests/{id}"), &ann.access)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    expect_error(
        app.delete_as(&format!("/api/tests/{id}"), &ann.access)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_error(run(&app, &ann.access, id).await, StatusCode::NOT_FOUND).await;
    assert_eq!(list(&app, &ann.access, "").await, ["other"]);

    // Creating and deleting are in the audit trail, as ann's.
    app.state.audit.flush().await;
    let trail = app
        .get_json("/api/audit?action=saved_test.*", &admin.access)
        .await;
    let events: Vec<(&str, &str)> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["subject"] == json!(id))
        .map(|e| {
            assert_eq!(e["actor_id"], json!(ann.user_id));
            (e["event"].as_str().unwrap(), e["outcome"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        events,
        [("saved_test.delete", "ok"), ("saved_test.create", "ok")]
    );
}

async fn another_users_test_is_not_found_for_run_or_delete(kind: DbKind) {
    let app = spawn_app(kind).await;
    let ann = app.user_with_conversation("ann").await.tokens;
    let eve = app.user_with_conversation("eve").await.tokens;
    let admin = app.admin().await;
    let test = save(&app, &ann.access, add_test("mine", "math", 1, 2)).await;
    let id = test["id"].as_str().unwrap();

    // Eve (and even the admin: tests are personal) get the same 404 as for an id that does not exist.
    for token in [&eve.access, &admin.access] {
        let body = expect_error(run(&app, token, id).await, StatusCode::NOT_FOUND).await;
        assert_eq!(body["error"], json!("Saved test not found"));
        expect_error(
            app.delete_as(&format!("/api/tests/{id}"), token).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    let missing = uuid::Uuid::new_v4();
    expect_error(
        run(&app, &eve.access, &missing.to_string()).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // Ann's test is untouched: never run, still listed.
    let listed = app.get_json("/api/tests", &ann.access).await;
    assert_eq!(listed["tests"][0]["id"], json!(id));
    assert_eq!(listed["tests"][0]["execution_count"], json!(0));
}

async fn a_run_obeys_the_tool_permission_and_the_policy(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let una = app.user_with_conversation("una").await.tokens;
    let test = save(&app, &una.access, add_test("sum", "math", 2, 2)).await;
    let id = test["id"].as_str().unwrap();

    // The policy denies `add` to the user role: the run is refused and nothing is recorded.
    let r = app
        .put_as(
            "/api/tool-policies",
            &admin.access,
            json!({ "role": "user", "tool": "add", "decision": "deny" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = expect_error(run(&app, &una.access, id).await, StatusCode::FORBIDDEN).await;
    assert_eq!(body["code"], json!("tool_unavailable"), "{body}");
    assert!(body["error"].as_str().unwrap().contains("add"), "{body}");

    // `ask`: outside a chat nobody can approve, so the run is refused too.
    let r = app
        .put_as(
            "/api/tool-policies",
            &admin.access,
            json!({ "role": "user", "tool": "add", "decision": "ask" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = expect_error(run(&app, &una.access, id).await, StatusCode::FORBIDDEN).await;
    assert_eq!(body["code"], json!("approval_required"), "{body}");

    // Without the rule the same test runs.
    let r = app
        .put_as(
            "/api/tool-policies",
            &admin.access,
            json!({ "role": "user", "tool": "add", "decision": null }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let ran = json_of(run(&app, &una.access, id).await).await["test"].clone();
    assert_eq!(ran["last_result"]["result"], json!(4), "{ran}");
    assert_eq!(
        ran["execution_count"],
        json!(1),
        "the refused runs were not counted"
    );

    // A role that may keep tests but call only `time`: saving an `add` test works, running it is refused.
    let r = app
        .post_as(
            "/api/permissions",
            &admin.access,
            json!({ "role": "timer", "permissions": ["tests:use", "tools:call:time"] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.create_user("tim", "tim-password", "timer").await;
    let tim = app.login("tim", "tim-password").await;
    let sum = save(&app, &tim.access, add_test("sum", "math", 1, 1)).await;
    let body = expect_error(
        run(&app, &tim.access, sum["id"].as_str().unwrap()).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(body["code"], json!("tool_unavailable"), "{body}");
    let clock = save(
        &app,
        &tim.access,
        json!({ "name": "clock", "request_type": "mcp", "tool_name": "time" }),
    )
    .await;
    let ran =
        json_of(run(&app, &tim.access, clock["id"].as_str().unwrap()).await).await["test"].clone();
    assert_eq!(ran["last_status"], json!("ok"), "{ran}");

    // No refused run reached the tool-call log.
    app.state.tool_log.flush().await;
    let calls = app.get_json("/api/tool-calls", &admin.access).await;
    let mut names = column(&calls["tool_calls"], "tool_name");
    names.sort_unstable();
    assert_eq!(names, ["add", "time"], "{calls}");
}

async fn a_failing_tool_is_a_failed_run_not_a_server_error(kind: DbKind) {
    let app = spawn_app(kind).await;
    let ann = app.user_with_conversation("ann").await.tokens;
    // `b` is text: the tool answers with an error for the caller.
    let test = save(
        &app,
        &ann.access,
        json!({
            "name": "broken", "request_type": "mcp", "tool_name": "add",
            "parameters": [{ "name": "a", "value": 1 }, { "name": "b", "value": "two" }],
        }),
    )
    .await;
    let id = test["id"].as_str().unwrap();
    let r = run(&app, &ann.access, id).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ran = json_of(r).await["test"].clone();
    assert_eq!(ran["last_status"], json!("error"), "{ran}");
    assert_eq!(ran["last_result"]["success"], json!(false), "{ran}");
    assert!(ran["last_result"]["error"].is_string(), "{ran}");
    assert_eq!(ran["execution_count"], json!(1));

    // An unknown tool is refused like a forbidden one (the two look the same from outside).
    let ghost = save(
        &app,
        &ann.access,
        json!({ "name": "ghost", "request_type": "mcp", "tool_name": "nope", "server_id": "nowhere" }),
    )
    .await;
    let body = expect_error(
        run(&app, &ann.access, ghost["id"].as_str().unwrap()).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(
        body["error"].as_str().unwrap().contains("nowhere__nope"),
        "{body}"
    );
}

async fn bad_bodies_are_refused_with_a_clear_422(kind: DbKind) {
    let app = spawn_app(kind).await;
    let ann = app.user_with_conversation("ann").await.tokens;
    let cases = [
        (
            json!({ "name": "", "request_type": "mcp", "tool_name": "add" }),
            "name must be 1 to 200",
        ),
        (
            json!({ "name": "x".repeat(201), "request_type": "mcp", "tool_name": "add" }),
            "name must be 1 to 200",
        ),
        (
            json!({ "name": "n", "request_type": "http" }),
            "request_type must be mcp",
        ),
        (
            json!({ "name": "n", "request_type": "mcp" }),
            "needs a tool_name",
        ),
        (
            json!({ "name": "n", "request_type": "mcp", "tool_name": "" }),
            "needs a tool_name",
        ),
        (
            json!({ "name": "n", "request_type": "mcp", "tool_name": "add", "method": "BREW" }),
            "method must be one of",
        ),
        (
            json!({ "name": "n", "request_type": "mcp", "tool_name": "add",
                    "parameters": [{ "name": "a", "value": 1 }, { "name": "a", "value": 2 }] }),
            "given twice",
        ),
        (
            json!({ "name": "n", "request_type": "database" }),
            "connection_id",
        ),
        (
            json!({ "name": "n", "request_type": "database",
                    "parameters": [{ "name": "connection_id", "value": "c1" }, { "name": "query", "value": "" }] }),
            "query",
        ),
        // Wrong types and missing fields are refused by the body's shape.
        (json!({ "request_type": "mcp", "tool_name": "add" }), "name"),
        (
            json!({ "name": "n", "request_type": "mcp", "tool_name": "add", "parameters": [{ "name": "a" }] }),
            "value",
        ),
        (
            json!({ "name": "n", "request_type": "mcp", "tool_name": "add", "parameters": { "a": 1 } }),
            "parameters",
        ),
    ];
    for (body, needle) in cases {
        let r = app.post_as("/api/tests", &ann.access, &body).await;
        let error = expect_error(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            error["error"].as_str().unwrap().contains(needle),
            "{body}: {error}"
        );
    }
    assert_eq!(list(&app, &ann.access, "").await, Vec::<String>::new());
}

async fn database_tests_run_read_only_queries_on_the_callers_own_profile(kind: DbKind) {
    // Arrange: a SQLite file with three rows, a profile of ann's on it, and bob, who has no profile.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.db");
    {
        use sqlx::Connection;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true);
        let mut c = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3);",
        )
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
    }
    let app = spawn_app_with(
        kind,
        &[("CONNECTION_SQLITE_DIR", dir.path().to_str().unwrap())],
    )
    .await;
    let ann = app.user_with_conversation("ann").await.tokens;
    let bob = app.user_with_conversation("bob").await.tokens;
    let saved = app
        .post_as(
            "/api/save-connection",
            &ann.access,
            json!({ "name": "lite", "database": "data.db", "database_type": "sqlite" }),
        )
        .await;
    assert_eq!(saved.status(), StatusCode::CREATED);
    let connection_id = json_of(saved).await["connection"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let db_test = |name: &str, query: &str| {
        json!({
            "name": name, "request_type": "database", "test_category": "db",
            "parameters": [{ "name": "connection_id", "value": connection_id }, { "name": "query", "value": query }],
        })
    };
    let count = save(
        &app,
        &ann.access,
        db_test("count rows", "SELECT COUNT(*) AS n FROM t"),
    )
    .await;
    let write = save(&app, &ann.access, db_test("write", "DELETE FROM t")).await;
    let bobs = save(&app, &bob.access, db_test("not mine", "SELECT 1")).await;

    // Act and assert: the query runs and its result is stored.
    let r = run(&app, &ann.access, count["id"].as_str().unwrap()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ran = json_of(r).await["test"].clone();
    assert_eq!(ran["last_status"], json!("ok"), "{ran}");
    assert_eq!(ran["execution_count"], json!(1));
    assert_eq!(ran["last_result"]["result"]["rows"], json!([{ "n": 3 }]));
    assert_eq!(ran["last_result"]["result"]["row_count"], json!(1));

    // A writing statement is a failed run, and the rows are still there.
    let r = run(&app, &ann.access, write["id"].as_str().unwrap()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let refused = json_of(r).await["test"].clone();
    assert_eq!(refused["last_status"], json!("error"), "{refused}");
    assert!(
        refused["last_result"]["error"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{refused}"
    );
    let again = json_of(run(&app, &ann.access, count["id"].as_str().unwrap()).await).await;
    assert_eq!(
        again["test"]["last_result"]["result"]["rows"],
        json!([{ "n": 3 }])
    );
    assert_eq!(again["test"]["execution_count"], json!(2));

    // Bob's test names ann's profile: not his, so refused and not counted.
    let body = expect_error(
        run(&app, &bob.access, bobs["id"].as_str().unwrap()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no connection profile of yours")
    );
    let listed = app
        .get_json("/api/tests?test_category=db", &bob.access)
        .await;
    assert_eq!(listed["tests"][0]["execution_count"], json!(0));
    assert_eq!(listed["tests"][0]["last_result"], Value::Null);
}

async fn a_role_without_tests_use_is_refused(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let r = app
        .post_as(
            "/api/permissions",
            &admin.access,
            json!({ "role": "chatter", "permissions": ["chat:use", "tools:call:*"] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.create_user("cat", "cat-password", "chatter").await;
    let cat = app.login("cat", "cat-password").await;
    let r = app
        .post_as("/api/tests", &cat.access, add_test("t", "math", 1, 1))
        .await;
    let body = expect_error(r, StatusCode::FORBIDDEN).await;
    assert!(
        body["error"].as_str().unwrap().contains("tests:use"),
        "{body}"
    );
    expect_error(
        app.get_as("/api/tests", &cat.access).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    // The admin (`*`) may keep tests of their own.
    save(&app, &admin.access, add_test("admins", "math", 1, 1)).await;
}

async fn concurrent_runs_are_all_counted(kind: DbKind) {
    let app = spawn_app(kind).await;
    let ann = app.user_with_conversation("ann").await.tokens;
    let test = save(&app, &ann.access, add_test("sum", "math", 20, 22)).await;
    let id = test["id"].as_str().unwrap();
    // Eight runs at once: the count is incremented in SQL, so none is lost.
    let runs = (0..8).map(|_| run(&app, &ann.access, id));
    for r in futures::future::join_all(runs).await {
        assert_eq!(r.status(), StatusCode::OK);
    }
    let listed = app.get_json("/api/tests", &ann.access).await;
    assert_eq!(listed["tests"][0]["execution_count"], json!(8));
    assert_eq!(listed["tests"][0]["last_result"]["result"], json!(42));
}
