//! `/mcp`: the MCP gateway over Streamable HTTP (rmcp's server, stateless, JSON responses), behind this
//! project's bearer tokens; and the RFC 9728 protected-resource metadata that tells clients where to get them.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Path, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use serde_json::json;

use super::{
    error::{AppError, AppResult},
    extract::{Json, McpManage, Require, presented_token},
    routes::Routes,
};
use crate::{
    app::AppState,
    auth::Credential,
    mcp::{
        Gateway,
        upstream::{ServerConfig, Transport, validate_name},
    },
};

pub fn router(state: &AppState) -> Routes {
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
    // Only the gateway sits behind `require_bearer`; the JSON API below authenticates in its extractors.
    let gateway = Router::new().route_service("/mcp", service).route_layer(
        axum::middleware::from_fn_with_state(state.clone(), require_bearer),
    );
    Routes::new()
        .service(Method::POST, "/mcp", gateway)
        .get("/api/mcp/servers", list_servers)
        .post("/api/mcp/servers", add_server)
        .delete("/api/mcp/servers/{name}", remove_server)
        .get("/.well-known/oauth-protected-resource", resource_metadata)
        .get(
            "/.well-known/oauth-protected-resource/mcp",
            resource_metadata,
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
    let challenge = |error: Option<&str>| {
        let mut value = format!("Bearer resource_metadata=\"{}\"", metadata_url(&state));
        if let Some(e) = error {
            value.push_str(&format!(", error=\"{e}\""));
        }
        // The public URL is checked to be ASCII at start (config), so the fallback is never expected.
        let value = HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer"));
        AppError::Unauthorized
            .into_body()
            .header(header::WWW_AUTHENTICATE, value)
    };
    // One credential, in the Authorization header: a cookie or X-Access-Token alone is no MCP credential, and
    // two different credentials are refused as everywhere else (RFC 6750 §3.1: invalid_request is a 400).
    let token = match presented_token(request.headers(), state.config.session_cookie_name()) {
        Ok(Some(p)) if p.in_authorization => p.token.to_string(),
        Ok(_) => return challenge(None).into_response(),
        Err(AppError::BadRequest(_)) => {
            let mut r = challenge(Some("invalid_request")).into_response();
            *r.status_mut() = StatusCode::BAD_REQUEST;
            return r;
        }
        Err(_) => return challenge(None).into_response(),
    };
    match state.auth.authenticate(&token, Credential::Bearer).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(_) => challenge(Some("invalid_token")).into_response(),
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

/// A stored server as admins see it: env and header values are never shown.
fn redacted(transport: &Transport) -> serde_json::Value {
    match transport {
        Transport::Stdio { command, args, env } => {
            json!({ "command": command, "args": args, "env": env.keys().map(|k| (k.clone(), "[REDACTED]")).collect::<std::collections::BTreeMap<_, _>>() })
        }
        Transport::Http { url, headers } => {
            json!({ "url": url, "headers": headers.keys().map(|k| (k.clone(), "[REDACTED]")).collect::<std::collections::BTreeMap<_, _>>() })
        }
    }
}

async fn list_servers(
    State(state): State<AppState>,
    _admin: Require<McpManage>,
) -> AppResult<axum::Json<serde_json::Value>> {
    let health = state.upstreams.health();
    let servers: Vec<serde_json::Value> = crate::mcp::store::find_servers(&state.db)
        .await?
        .into_iter()
        .filter_map(|(name, text)| {
            let transport: Transport = serde_json::from_str(&text).ok()?;
            let status = health
                .iter()
                .find(|h| h.server_name == name)
                .map(|h| h.status);
            Some(json!({ "name": name, "config": redacted(&transport), "status": status }))
        })
        .collect();
    Ok(axum::Json(json!({ "success": true, "servers": servers })))
}

#[derive(serde::Deserialize)]
struct NewServer {
    name: String,
    #[serde(flatten)]
    transport: Transport,
}

/// Adds an upstream server (stdio `command`/`args`/`env`, or `url`/`headers`), stored and started at once.
async fn add_server(
    State(state): State<AppState>,
    Require(admin, ..): Require<McpManage>,
    Json(body): Json<NewServer>,
) -> AppResult<Response> {
    validate_name(&body.name).map_err(AppError::Unprocessable)?;
    if let Transport::Http { url, .. } = &body.transport
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(AppError::Unprocessable(
            "url must start with http:// or https://".into(),
        ));
    }
    let text = serde_json::to_string(&body.transport).map_err(|e| AppError::Internal(e.into()))?;
    match crate::mcp::store::insert_server(
        &state.db,
        &body.name,
        &text,
        &admin.account.id,
        state.clock.now_ms(),
    )
    .await
    {
        Err(e) if crate::store::Db::is_unique_violation(&e) => {
            return Err(AppError::Conflict(format!(
                "an MCP server named {:?} already exists",
                body.name
            )));
        }
        other => other?,
    }
    if let Err(e) = state.upstreams.add(ServerConfig {
        name: body.name.clone(),
        transport: body.transport.clone(),
    }) {
        crate::mcp::store::delete_server(&state.db, &body.name).await?;
        return Err(AppError::Conflict(e));
    }
    state.audit.record(
        crate::audit::Event::new("mcp.server.add", "ok")
            .actor(&admin.account.id)
            .subject(&body.name),
    );
    Ok((
        StatusCode::CREATED,
        axum::Json(
            json!({ "success": true, "name": body.name, "config": redacted(&body.transport) }),
        ),
    )
        .into_response())
}

async fn remove_server(
    State(state): State<AppState>,
    Require(admin, ..): Require<McpManage>,
    Path(name): Path<String>,
) -> AppResult<axum::Json<serde_json::Value>> {
    // Only servers added here can be removed here; those of the settings belong to the settings.
    if name.len() > 64 || !crate::mcp::store::delete_server(&state.db, &name).await? {
        return Err(AppError::NotFound("MCP server not found".into()));
    }
    state.upstreams.remove(&name);
    state.audit.record(
        crate::audit::Event::new("mcp.server.remove", "ok")
            .actor(&admin.account.id)
            .subject(&name),
    );
    Ok(axum::Json(
        json!({ "success": true, "message": "MCP server removed" }),
    ))
}
