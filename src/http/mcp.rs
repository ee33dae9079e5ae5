//! `/mcp`: the MCP gateway over Streamable HTTP (rmcp's server, stateless, JSON responses), behind this
//! project's bearer tokens; and the RFC 9728 protected-resource metadata that tells clients where to get them.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

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
use serde::Serialize;
use serde_json::json;
use tower::Service;

use super::{
    error::{AppError, AppResult},
    extract::{Json, McpManage, Require, presented_token},
    mcp_direct::{self, Direct},
    routes::Routes,
};
use crate::{
    auth::Credential,
    mcp::{
        Gateway,
        servers::{NewServer, RedactedTransport, ServerError, ServerView},
    },
    state::AppState,
};

pub fn router(state: &AppState) -> Routes {
    let gateway = Gateway {
        catalog: state.catalog.clone(),
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
    let direct = Direct {
        gateway: gateway.clone(),
        hosts: hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect(),
    };
    let mut config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
    config.legacy_session_mode = false;
    config.json_response = true;
    config.allowed_origins = state.config.cors_origins.clone();
    let service = SharedRmcp(Arc::new(StreamableHttpService::new(
        move || Ok(gateway.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    )));
    // Only the gateway sits behind the bearer check; the JSON API below authenticates in its extractors. One
    // middleware for both steps (the bearer check, then the direct path or rmcp): each layer of a route is one
    // more boxed clone of the route's service per request.
    let front = Front {
        state: state.clone(),
        direct,
    };
    let gateway = Router::new()
        .route_service("/mcp", service)
        .route_layer(axum::middleware::from_fn_with_state(front, gateway_front));
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

type RmcpService = StreamableHttpService<Gateway, LocalSessionManager>;

/// rmcp's service behind an `Arc`. axum clones a route's service for every request, and cloning rmcp's copies
/// its configuration (host lists, a cancellation token); behind the `Arc` it is only cloned when it is called,
/// which the direct path spares most requests.
#[derive(Clone)]
struct SharedRmcp(Arc<RmcpService>);

impl Service<Request> for SharedRmcp {
    type Response = <RmcpService as Service<Request>>::Response;
    type Error = <RmcpService as Service<Request>>::Error;
    type Future = <RmcpService as Service<Request>>::Future;

    /// rmcp's service is always ready.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        RmcpService::clone(&self.0).call(request)
    }
}

fn metadata_url(state: &AppState) -> String {
    format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        state.config.public_url
    )
}

/// What the middleware in front of rmcp needs.
#[derive(Clone)]
struct Front {
    state: AppState,
    direct: Direct,
}

/// In front of rmcp's service: the bearer check, then the direct path for a plain `tools/call`.
async fn gateway_front(State(front): State<Front>, request: Request, next: Next) -> Response {
    match require_bearer(&front.state, request).await {
        Ok(request) => mcp_direct::answer_tools_call(&front.direct, request, next).await,
        Err(refused) => refused,
    }
}

/// MCP clients present this project's access tokens in the Authorization header (never a cookie or the query).
/// The request with the authenticated `Principal` in it, or the refusal to send.
async fn require_bearer(state: &AppState, mut request: Request) -> Result<Request, Response> {
    let challenge = |error: Option<&str>| {
        let mut value = format!("Bearer resource_metadata=\"{}\"", metadata_url(state));
        if let Some(e) = error {
            value.push_str(&format!(", error=\"{e}\""));
        }
        // The public URL is checked to be ASCII at start (config), so the fallback is never expected.
        let value = HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer"));
        AppError::Unauthorized
            .into_body()
            .header(header::WWW_AUTHENTICATE, value)
            .into_response()
    };
    // One credential, in the Authorization header: a cookie or X-Access-Token alone is no MCP credential, and
    // two different credentials are refused as everywhere else (RFC 6750 §3.1: invalid_request is a 400).
    let token = match presented_token(request.headers(), state.config.session_cookie_name()) {
        Ok(Some(p)) if p.in_authorization => p.token.to_string(),
        Ok(_) => return Err(challenge(None)),
        Err(AppError::BadRequest(_)) => {
            let mut r = challenge(Some("invalid_request"));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            return Err(r);
        }
        Err(_) => return Err(challenge(None)),
    };
    match state.auth.authenticate(&token, Credential::Bearer).await {
        Ok(principal) if principal.account.must_enrol_second_factor() => {
            Err(AppError::enrolment_required().into_response())
        }
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            Ok(request)
        }
        Err(_) => Err(challenge(Some("invalid_token"))),
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

impl From<ServerError> for AppError {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::Invalid(m) => AppError::Unprocessable(m),
            ServerError::Duplicate(m) => AppError::Conflict(m),
            ServerError::NotFound => AppError::NotFound("MCP server not found".into()),
            ServerError::Internal(e) => AppError::Internal(e),
        }
    }
}

#[derive(Serialize)]
struct ServerList {
    success: bool,
    servers: Vec<ServerView>,
}

async fn list_servers(
    State(state): State<AppState>,
    _admin: Require<McpManage>,
) -> AppResult<axum::Json<ServerList>> {
    Ok(axum::Json(ServerList {
        success: true,
        servers: state.upstreams.list_servers().await?,
    }))
}

#[derive(Serialize)]
struct ServerAdded {
    success: bool,
    name: String,
    config: RedactedTransport,
}

/// Adds an upstream server (stdio `command`/`args`/`env`, or `url`/`headers`), stored and started at once.
async fn add_server(
    State(state): State<AppState>,
    Require(admin, ..): Require<McpManage>,
    Json(body): Json<NewServer>,
) -> AppResult<(StatusCode, axum::Json<ServerAdded>)> {
    let added = state.upstreams.add_server(&admin.account.id, body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ServerAdded {
            success: true,
            name: added.name,
            config: added.config,
        }),
    ))
}

#[derive(Serialize)]
struct ServerRemoved {
    success: bool,
    message: &'static str,
}

async fn remove_server(
    State(state): State<AppState>,
    Require(admin, ..): Require<McpManage>,
    Path(name): Path<String>,
) -> AppResult<axum::Json<ServerRemoved>> {
    state
        .upstreams
        .remove_server(&admin.account.id, &name)
        .await?;
    Ok(axum::Json(ServerRemoved {
        success: true,
        message: "MCP server removed",
    }))
}
