//! The admin page (`/admin`) in a real browser (see ui.rs for the driver and what a clean report means): an admin
//! adds a user and makes them an admin, sees the analytics figures and the five uPlot charts drawn (requests,
//! latency, top pages, tool calls, model tokens), grants and revokes a permission and adds a role, sets tool
//! policy rules (one with step-up) and removes one, lists and filters SMS transactions, adds and deletes a
//! connection profile, runs a saved test and sees its result, adds an MCP server (the stdio test peer, when the
//! MCP Python SDK is there; otherwise the built-in tools are shown) and sees its tools; a normal user sees "not
//! allowed" while the admin API refuses them with 403.

use crate::helpers::prelude::*;
use crate::ui::{assert_clean, browser_modules, run_scenario, screenshot_dir};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/upstream.py");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_users_servers_and_sees_analytics_and_a_user_is_not_allowed() {
    let Some(modules) = browser_modules() else {
        return;
    };
    // Two texts an hour to one number: the third is refused and logged as failed.
    let app = spawn_app_with(
        DbKind::Sqlite,
        &[
            ("SMS_NUMBER_PER_HOUR", "2"),
            ("CONNECTION_ALLOWED_HOSTS", "127.0.0.1"),
        ],
    )
    .await;
    let admin = app.admin().await;
    app.create_user("nora", "nora-password-Kq4", "user").await;
    for _ in 0..3 {
        app.post_as(
            "/api/sms/send-sms",
            &admin,
            json!({ "phone_number": "+1 (555) 867-5309", "message": "hi" }),
        )
        .await;
    }
    // A chat turn with a tool call: the tool and token charts have data.
    let session = new_session(&app, &admin.access).await;
    let r = send(&app, &admin.access, &session, "add 5 and 3").await;
    assert_eq!(r.status(), StatusCode::OK);
    // The admin's own saved test, run from the page.
    let r = app
        .post_as(
            "/api/tests",
            &admin,
            json!({
                "name": "sum", "endpoint_path": "/api/servers/builtin/tools/add/execute", "method": "POST",
                "parameters": [{ "name": "a", "value": 20 }, { "name": "b", "value": 22 }],
                "request_type": "mcp", "test_category": "math", "server_id": "builtin", "tool_name": "add",
            }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // A page view for the top-pages chart.
    let r = app
        .post_as(
            "/api/analytics/log-page-view",
            &admin,
            json!({ "path": "/chat", "title": "Chat", "loadTime": 120 }),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
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
            "savedTest": "sum",
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
            "permissions granted, revoked and a role added",
            "tool policy set and a rule removed",
            "SMS transactions listed and filtered",
            "connection profile added and deleted",
            "saved test run with its last result",
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
    assert_eq!(report["charts"].as_array().unwrap().len(), 5);
    let names = &report["chartNames"];
    assert!(
        names["chart-pages"].as_str().unwrap().contains("/chat"),
        "{names}"
    );
    assert!(
        names["chart-tools"]
            .as_str()
            .unwrap()
            .split('|')
            .any(|t| t == "add"),
        "{names}"
    );
    assert!(
        !names["chart-tokens"].as_str().unwrap().is_empty(),
        "{names}"
    );
    assert!(report["routeRows"].as_u64().unwrap() >= 3, "{report:#}");

    // Permissions: what the page showed, and what the server kept.
    let granted = report["grantedPermissions"].as_array().unwrap();
    assert!(granted.iter().any(|p| p == "analytics:read"), "{granted:?}");
    let revoked = report["revokedPermissions"].as_array().unwrap();
    assert!(
        !revoked.iter().any(|p| p == "analytics:read"),
        "{revoked:?}"
    );
    let roles = app.get_json("/api/permissions", &admin).await;
    let role = |name: &str| {
        roles["data"]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    // The user role is back to what it held before the grant, as the page showed it.
    let mut kept: Vec<Value> = role("user")["permissions"].as_array().unwrap().clone();
    let mut shown = revoked.clone();
    kept.sort_by_key(|p| p.to_string());
    shown.sort_by_key(|p| p.to_string());
    assert_eq!(kept, shown, "{roles:#}");
    assert_eq!(granted.len(), revoked.len() + 1);
    assert!(kept.iter().any(|p| p == "chat:use"), "{roles:#}");
    assert_eq!(role("auditor")["permissions"], json!(["audit:read"]));
    // Tool policy: the ask rule with step-up stays, the deny rule is gone.
    assert!(
        report["askRule"]
            .as_str()
            .unwrap()
            .contains("code required")
    );
    assert_eq!(report["stepUpDisabledForDeny"], true);
    let policies = app.get_json("/api/tool-policies", &admin).await;
    assert_eq!(
        policies["policies"],
        json!([{ "role": "user", "tool": "add", "decision": "ask", "step_up": true }]),
        "{policies:#}"
    );
    // SMS: three sends (one refused), the filter leaves the failed one.
    assert_eq!(report["smsRows"], 3, "{report:#}");
    assert!(
        report["smsSummary"]
            .as_str()
            .unwrap()
            .starts_with("3 matching"),
        "{report:#}"
    );
    assert_eq!(report["smsFailed"], json!(["false"]));
    // Connections: added then deleted; the saved test ran once and shows the sum.
    assert!(
        report["profileRow"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:5432")
    );
    let profiles = app.get_json("/api/get-connections", &admin).await;
    assert_eq!(profiles["count"], 0, "{profiles}");
    assert_eq!(report["testBefore"], "");
    assert!(
        report["testResult"].as_str().unwrap().contains("42"),
        "{report:#}"
    );
    let tests = app.get_json("/api/tests", &admin).await;
    assert_eq!(tests["tests"][0]["execution_count"], 1, "{tests}");
    assert_eq!(tests["tests"][0]["last_status"], "ok", "{tests}");
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
    // Six views (admin, analytics, event charts, access, operations, refused), light and dark, at two sizes.
    assert_eq!(shots.len(), 24, "{shots:?}");
    assert!(
        shots
            .iter()
            .any(|s| s.as_str().unwrap().ends_with("admin-dark-1280x800.png"))
    );
    for shot in shots {
        let path = shot.as_str().unwrap();
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        assert!(bytes > 1000, "{path} was written ({bytes} bytes)");
    }
}
