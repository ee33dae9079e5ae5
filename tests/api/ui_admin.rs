//! The admin page (`/admin`) in a real browser (see ui.rs for the driver and what a clean report means): an admin
//! adds a user and makes them an admin, sees the analytics figures and both uPlot charts drawn, adds an MCP server
//! (the stdio test peer, when the MCP Python SDK is there; otherwise the built-in tools are shown) and sees its
//! tools; a normal user sees "not allowed" while the admin API refuses them with 403.

use crate::helpers::prelude::*;
use crate::ui::{assert_clean, browser_modules, run_scenario, screenshot_dir};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/upstream.py");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_users_servers_and_sees_analytics_and_a_user_is_not_allowed() {
    let Some(modules) = browser_modules() else {
        return;
    };
    let app = spawn_app(DbKind::Sqlite).await;
    let admin = app.admin().await;
    app.create_user("nora", "nora-password-Kq4", "user").await;
    // Some traffic for the dashboards, written to the request log before the page reads it.
    for path in ["/api/users", "/api/servers", "/api/audit", "/health"] {
        for _ in 0..3 {
            app.get_as(path, &admin).await;
        }
    }
    app.state.analytics.flush().await;
    let python = crate::helpers::mcp_python();

    let report = run_scenario(
        &modules,
        json!({
            "base": app.base,
            "scenario": "admin",
            "username": "admin",
            "password": ADMIN_PASSWORD,
            "newUser": "quinn",
            "newPassword": "quinn-password-Kq4",
            "plainUser": "nora",
            "plainPassword": "nora-password-Kq4",
            "serverName": python.as_ref().map(|_| "peer"),
            "serverCommand": python,
            "serverArgs": PEER,
            "screenshots": screenshot_dir(),
        }),
    )
    .await;

    assert_clean(&report, &["GET /api/users 403"]);
    let server_step = if python.is_some() {
        "server added with its tools"
    } else {
        "built-in tools shown"
    };
    assert_eq!(
        report["steps"],
        json!([
            "signed in",
            "admin page open",
            "user added",
            "role changed",
            "analytics shown",
            server_step,
            "normal user not allowed",
        ])
    );
    assert_eq!(report["roleChangeStatus"], 200);
    // The server agrees with what the page shows.
    let r = app.get_as("/api/users?q=quinn", &admin).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["users"][0]["role"], "admin", "{body:#}");

    let metrics = &report["metrics"];
    let requests: i64 = metrics["requests"].as_str().unwrap().parse().unwrap();
    assert!(requests >= 12, "{metrics:#}");
    for key in ["error-rate", "p50", "p95", "p99", "active-users"] {
        assert!(metrics[key].is_string(), "{key}: {metrics:#}");
    }
    for chart in report["charts"].as_array().unwrap() {
        assert!(
            chart["width"].as_f64().unwrap() > 0.0 && chart["height"].as_f64().unwrap() > 0.0,
            "{chart}"
        );
    }
    assert!(report["routeRows"].as_u64().unwrap() >= 3, "{report:#}");
    let tools = report["tools"].as_array().unwrap();
    assert!(!tools.is_empty());
    if python.is_some() {
        assert!(
            report["servers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["name"] == "peer" && s["status"] == "up"),
            "{report:#}"
        );
    } else {
        assert!(tools.iter().any(|t| t == "add"), "{tools:?}");
    }
    assert!(report["auditRows"].as_u64().unwrap() >= 1, "{report:#}");

    assert_eq!(report["plainUserSeesAdminLink"], false);
    assert!(
        report["deniedMessage"]
            .as_str()
            .unwrap()
            .starts_with("Not allowed"),
        "{report:#}"
    );
    assert_eq!(report["deniedContentHidden"], true);
    assert_eq!(report["plainUserApiStatus"], 403);
    let nora = app.login("nora", "nora-password-Kq4").await;
    for path in [
        "/api/users",
        "/api/mcp/servers",
        "/api/analytics/key-metrics",
    ] {
        let r = app.get_as(path, &nora).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }

    let shots = report["screenshots"].as_array().unwrap();
    assert_eq!(shots.len(), 6, "{shots:?}");
    for shot in shots {
        let path = shot.as_str().unwrap();
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        assert!(bytes > 1000, "{path} was written ({bytes} bytes)");
    }
}
