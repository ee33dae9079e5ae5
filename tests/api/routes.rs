//! One route table: `warden::http::system::ROUTES` (what `/api/docs` describes) is checked against the routes
//! the router registers, both ways, and every route in it is swept for its 401 and 403 answers.

use std::collections::BTreeSet;

use reqwest::Method;

use crate::helpers::{call, prelude::*};

db_tests!(
    every_registered_route_is_in_the_route_table_and_back,
    every_admin_route_refuses_normal_users_with_403,
    every_protected_route_refuses_anonymous_callers_with_401,
);

/// A path of the table with every `{param}` filled by a fresh UUID.
fn filled(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if s.starts_with('{') {
                uuid::Uuid::new_v4().to_string()
            } else {
                s.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn every_registered_route_is_in_the_route_table_and_back(kind: DbKind) {
    let app = spawn_app(kind).await;
    // What the server serves: the API's routes and the pages the assembly hands to `http::router`.
    let registered: Vec<(String, String)> = warden::http::routes(&app.state)
        .merge(warden::web::router())
        .registered()
        .iter()
        .map(|(m, p)| (m.as_str().to_string(), p.to_string()))
        .collect();
    let table: Vec<(String, String)> = warden::http::system::ROUTES
        .iter()
        .map(|(m, p, _, _)| (m.to_uppercase(), p.to_string()))
        .collect();
    let registered_set: BTreeSet<_> = registered.iter().cloned().collect();
    let table_set: BTreeSet<_> = table.iter().cloned().collect();
    assert_eq!(
        registered_set.len(),
        registered.len(),
        "a route is registered twice"
    );
    assert_eq!(table_set.len(), table.len(), "a route is listed twice");
    let missing: Vec<_> = registered_set.difference(&table_set).collect();
    assert!(
        missing.is_empty(),
        "registered but not in ROUTES: {missing:?}"
    );
    let extra: Vec<_> = table_set.difference(&registered_set).collect();
    assert!(extra.is_empty(), "in ROUTES but not registered: {extra:?}");
    // The routes the route table used to miss are now in it (so the sweeps below reach them).
    for route in [
        ("PUT", "/api/tool-policies"),
        ("POST", "/api/mcp/servers"),
        ("DELETE", "/api/mcp/servers/{name}"),
        ("POST", "/api/servers/{id}/tools/{tool}/execute"),
    ] {
        assert!(
            table_set.contains(&(route.0.to_string(), route.1.to_string())),
            "{route:?}"
        );
    }
}

/// Every route of the table that needs a permission a normal user lacks (from the same table the OpenAPI
/// document is built from).
async fn admin_routes(app: &TestApp, user_token: &str) -> Vec<(Method, String, &'static str)> {
    let me: Value = call(app, Method::GET, "/api/me", user_token, None)
        .await
        .json()
        .await
        .unwrap();
    let held: Vec<&str> = me["permissions"]
        .as_array()
        .unwrap_or_else(|| panic!("permissions in {me}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    warden::http::system::ROUTES
        .iter()
        .filter(|(_, _, _, auth)| auth.contains(':') && !held.contains(auth))
        .map(|(m, p, _, auth)| (m.to_uppercase().parse().unwrap(), filled(p), *auth))
        .collect()
}

async fn every_admin_route_refuses_normal_users_with_403(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("henry", "henry-password", "user").await;
    let henry = app.login("henry", "henry-password").await;
    let routes = admin_routes(&app, &henry.access).await;
    assert!(routes.len() >= 9);
    let users_manage = routes.iter().filter(|r| r.2 == "users:manage").count();
    assert!(users_manage >= 11, "{routes:?}");
    assert!(routes.iter().any(|r| r.2 == "mcp:manage"), "{routes:?}");
    for (method, path, permission) in routes {
        let r = call(&app, method.clone(), &path, &henry.access, Some(json!({ "role": "user", "permissions": ["*"], "username": "x", "password": "xxxxxxxxxx", "new_password": "xxxxxxxxxx" }))).await;
        let body = expect_error(r, StatusCode::FORBIDDEN).await;
        assert!(
            body["error"].as_str().unwrap().contains(permission),
            "{method} {path}: {body}"
        );
    }
    let perms: Value = call(&app, Method::GET, "/api/me", &henry.access, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        perms["role"],
        json!("user"),
        "nothing was changed by the refused calls"
    );
}

async fn every_protected_route_refuses_anonymous_callers_with_401(kind: DbKind) {
    let app = spawn_app(kind).await;
    let mut swept = 0;
    for (method, path, _, auth) in warden::http::system::ROUTES {
        if ["none", "optional", "client"].contains(auth) {
            continue;
        }
        let path = filled(path);
        let method: Method = method.to_uppercase().parse().unwrap();
        let r = app
            .client
            .request(method.clone(), app.url(&path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let body = expect_error(r, StatusCode::UNAUTHORIZED).await;
        assert_eq!(
            body["error"],
            json!("Unauthorized - Invalid or missing token"),
            "{method} {path}"
        );
        swept += 1;
    }
    assert!(swept >= 35, "{swept} routes swept");
}
