//! `/mcp`: the MCP gateway over Streamable HTTP (rmcp's server, stateless, JSON responses), behind this
//! project's bearer tokens; and the RFC 9728 protected-resource metadata that tells clients where to get them.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use serde_json::json;

use crate::{app::AppState, auth::Credential, mcp::Gateway};

pub fn router(state: &AppState) -> Router<AppState> {
    let gateway = Gateway {
        catalog: state.catalog.clone(),
        tool_log: state.tool_log.clone(),
        clock: state.clock.clone(),
    };
    // Host and Origin checks against DNS rebinding: loopback plus the public host; browsers only from CORS_ORIGINS.
    let public_host = state
        .config
        .public_url
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let mut hosts = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    hosts.push(public_host.split(':').next().unwrap_or("").to_string());
    let mut config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
    config.legacy_session_mode = false;
    config.json_response = true;
    config.allowed_origins = state.config.cors_origins.clone();
    let service = StreamableHttpService::new(
        move || Ok(gateway.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .route_service("/mcp", service)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_bearer,
        ))
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata),
        )
}

fn metadata_url(state: &AppState) -> String {
    format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        state.config.public_url
    )
}

/// MCP clients present this project's access tokens in the Authorization header (never a cookie or the query).
async fn require_bearer(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    let challenge = |error: Option<&str>| {
        let mut value = format!("Bearer resource_metadata=\"{}\"", metadata_url(&state));
        if let Some(e) = error {
            value.push_str(&format!(", error=\"{e}\""));
        }
        let mut r = (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "success": false, "error": "Unauthorized - Invalid or missing token", "code": "unauthorized" })),
        )
            .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&value).expect("ASCII challenge"),
        );
        r
    };
    let Some(token) = token else {
        return challenge(None);
    };
    match state.auth.authenticate(&token, Credential::Bearer).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(_) => challenge(Some("invalid_token")),
    }
}

/// RFC 9728 protected-resource metadata.
async fn resource_metadata(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    let base = &state.config.public_url;
    axum::Json(json!({
        "resource": format!("{base}/mcp"),
        "authorization_servers": [base],
        "bearer_methods_supported": ["header"],
        "resource_name": "Warden MCP gateway",
    }))
}
