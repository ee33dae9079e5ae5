//! Operations and the HTTP edge: health, readiness (503 without a database), the API document, request ids
//! and security headers, and 4xx for oversized, broken or hostile bodies and headers.

use crate::helpers::prelude::*;

db_tests! {
    health_ready_and_docs_answer, ready_is_503_when_the_database_is_gone,
    every_response_has_a_request_id_and_security_headers, oversized_broken_and_hostile_bodies_get_4xx,
}

async fn health_ready_and_docs_answer(kind: DbKind) {
    let app = spawn_app(kind).await;
    let h = json_of(app.get("/health").await).await;
    assert_eq!(h, json!({ "status": "ok" }));
    let r = app.get("/ready").await;
    assert_eq!(r.status(), StatusCode::OK);
    let doc = json_of(app.get("/api/docs").await).await;
    assert_eq!(doc["openapi"], json!("3.1.0"));
    for (method, path, _, _) in warden::http::system::ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from the document"
        );
    }
    let r = app.get("/no/such/route").await;
    expect_error(r, StatusCode::NOT_FOUND).await;
}

async fn ready_is_503_when_the_database_is_gone(kind: DbKind) {
    let app = spawn_app(kind).await;
    let t = app.admin().await;
    app.db().close().await;
    let r = app.get("/ready").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    // Requests that need the database fail closed with 503, with no internals in the answer.
    let r = app.login_raw("admin", ADMIN_PASSWORD).await;
    let body = expect_error(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["error"], json!("Service unavailable"));
    assert_eq!(
        app.get_bearer("/api/me", &t.access).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

async fn every_response_has_a_request_id_and_security_headers(kind: DbKind) {
    let app = spawn_app(kind).await;
    for r in [app.get("/health").await, app.login_raw("x", "y").await] {
        let h = r.headers();
        assert_eq!(h["x-request-id"].len(), 32);
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["cache-control"], "no-store");
        assert!(h.contains_key("content-security-policy"));
    }
}

async fn oversized_broken_and_hostile_bodies_get_4xx(kind: DbKind) {
    let app = spawn_app_with(kind, &[("MAX_BODY_BYTES", "65536")]).await;
    let big = json!({ "username": "admin", "password": "x".repeat(70_000) });
    expect_error(
        app.post("/auth/login", big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    let nested = "[".repeat(10_000) + &"]".repeat(10_000);
    let r = app
        .post_body("/auth/login", Some("application/json"), nested)
        .await;
    assert!(r.status().is_client_error());
    let invalid_utf8 = b"{\"username\":\"\xff\xfe\",\"password\":\"x\"}".to_vec();
    let r = app
        .post_body("/auth/login", Some("application/json"), invalid_utf8)
        .await;
    assert!(r.status().is_client_error());
    let r = app
        .post(
            "/auth/login",
            json!({ "username": "ad\u{0}min", "password": "pass\u{0}word" }),
        )
        .await;
    expect_error(r, StatusCode::BAD_REQUEST).await;
    let r = app
        .post(
            "/auth/login",
            json!({ "username": "admin", "password": "pass\u{0}word" }),
        )
        .await;
    expect_error(r, StatusCode::UNAUTHORIZED).await;
    let r = app
        .post_body(
            "/auth/token",
            Some("application/x-www-form-urlencoded"),
            "grant_type=client_credentials&client_id=a%00b&client_secret=x",
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let big_header = "v".repeat(20_000);
    let r = app
        .get_as("/health", &header("x-padding", big_header))
        .await;
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}
