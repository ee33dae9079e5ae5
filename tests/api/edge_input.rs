//! Input the edge refuses before any route sees it: a NUL byte anywhere in the percent-decoded path or query
//! (PostgreSQL cannot store one, so it used to become a 500), and control characters in the path.

use reqwest::Method;

use crate::helpers::prelude::*;

db_tests!(
    a_nul_byte_in_the_path_or_query_is_a_400_on_every_route,
    control_characters_in_the_path_are_a_400_but_utf8_passes,
);

/// Every route of the router's own table (checked complete in routes.rs), with each `{param}` filled.
fn every_route(fill: &str) -> Vec<(Method, String)> {
    let routes: Vec<(Method, String)> = warden::http::system::ROUTES
        .iter()
        .map(|(m, p, _, _)| (m.to_uppercase().parse().unwrap(), p.to_string()))
        .collect();
    routes
        .into_iter()
        .map(|(m, p)| {
            let filled = p
                .split('/')
                .map(|s| if s.starts_with('{') { fill } else { s })
                .collect::<Vec<_>>()
                .join("/");
            (m, filled)
        })
        .collect()
}

async fn a_nul_byte_in_the_path_or_query_is_a_400_on_every_route(kind: DbKind) {
    // Arrange
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let named = [
        "/api/tool-calls?status=%00",
        "/api/tool-calls?tool_name=add%00&limit=5",
        "/chat/session/%00/history",
        "/api/users?role=%00",
        "/api/users/%00",
        "/nowhere%00",
    ];
    let mut requests: Vec<(Method, String)> =
        named.iter().map(|p| (Method::GET, p.to_string())).collect();
    for (method, path) in every_route("a%00b") {
        requests.push((method.clone(), format!("{path}?q=%00")));
        if path.contains("%00") {
            requests.push((method, path));
        }
    }
    assert!(requests.len() > 40, "{requests:?}");

    for (method, path) in requests {
        // Act
        let r = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(&admin.access)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({}))
            .send()
            .await
            .unwrap();

        // Assert
        let body = expect_error(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["code"], json!("bad_request"), "{method} {path}");
    }
    // The same filters without the NUL still work.
    let r = app
        .get_bearer("/api/tool-calls?status=error", &admin.access)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn control_characters_in_the_path_are_a_400_but_utf8_passes(kind: DbKind) {
    // Arrange
    let app = spawn_app(kind).await;
    let admin = app.admin().await;

    // Act / Assert: C0, DEL and C1 (U+0085, U+009B) in a path segment are refused...
    for id in [
        "a%0Ab",
        "a%0D%0Ab",
        "%1B%5B31m",
        "a%7Fb",
        "a%C2%85b",
        "%C2%9B",
    ] {
        let r = app
            .get_bearer(&format!("/chat/session/{id}/history"), &admin.access)
            .await;
        expect_error(r, StatusCode::BAD_REQUEST).await;
    }
    // ...while UTF-8 text and control characters other than NUL in a query value reach the route.
    let r = app
        .get_bearer("/chat/session/%C3%A9t%C3%A9/history", &admin.access)
        .await;
    expect_error(r, StatusCode::NOT_FOUND).await;
    let r = app
        .get_bearer(
            "/api/tool-calls?tool_name=%C3%A9t%C3%A9%0A%E2%80%AE",
            &admin.access,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}
