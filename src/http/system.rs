//! Liveness, readiness and the API description.

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use serde_json::{Value, json};

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/api/docs", get(docs))
}

async fn health() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// 200 while the database answers, 503 otherwise.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.db.is_ready().await {
        (
            StatusCode::OK,
            axum::Json(json!({ "status": "ready", "database": "ok" })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                json!({ "success": false, "status": "unavailable", "database": "unreachable", "code": "unavailable", "error": "database unreachable" }),
            ),
        )
    }
}

/// (method, path, summary, auth) for every route; the OpenAPI document is built from it.
pub const ROUTES: &[(&str, &str, &str, &str)] = &[
    (
        "post",
        "/auth/login",
        "Sign in with username and password (bearer tokens, or a cookie with mode=cookie)",
        "none",
    ),
    (
        "post",
        "/api/login",
        "Same as /auth/login (seed 004 path)",
        "none",
    ),
    (
        "post",
        "/auth/refresh",
        "Rotate a refresh token for new tokens",
        "none",
    ),
    (
        "post",
        "/auth/verify",
        "Check an access token (seed 003)",
        "none",
    ),
    (
        "post",
        "/auth/logout",
        "End the caller's session",
        "session",
    ),
    (
        "post",
        "/api/logout",
        "Same as /auth/logout (seed 004 path)",
        "session",
    ),
    (
        "post",
        "/auth/logout-all",
        "End every session of the caller",
        "session",
    ),
    (
        "post",
        "/auth/token",
        "OAuth2 client credentials for service clients",
        "client",
    ),
    (
        "get",
        "/api/status",
        "Who is calling; a CSRF token for browser sessions",
        "optional",
    ),
    (
        "get",
        "/api/me",
        "The caller's account and permissions",
        "session",
    ),
    (
        "get",
        "/api/profile",
        "Same as /api/me (seed 004 path)",
        "session",
    ),
    (
        "post",
        "/api/me/password",
        "Change one's own password; other sessions end",
        "session",
    ),
    ("get", "/api/users", "List users", "users:manage"),
    ("post", "/api/users", "Create a user", "users:manage"),
    ("get", "/api/users/{id}", "One user", "users:manage"),
    (
        "put",
        "/api/users/{id}",
        "Change a user's profile, role or active flag",
        "users:manage",
    ),
    (
        "delete",
        "/api/users/{id}",
        "Delete a user (not admins, not oneself)",
        "users:manage",
    ),
    (
        "put",
        "/api/users/{id}/password",
        "Set a user's password; their sessions end",
        "users:manage",
    ),
    (
        "get",
        "/api/permissions",
        "Roles and their permissions",
        "users:manage",
    ),
    (
        "post",
        "/api/permissions",
        "Create a role or replace its permissions",
        "users:manage",
    ),
    (
        "get",
        "/api/permissions/user/{id}",
        "A user's role and permissions",
        "users:manage",
    ),
    (
        "post",
        "/chat/session/new",
        "Start a conversation",
        "chat:use",
    ),
    (
        "post",
        "/chat/message",
        "One chat turn (JSON, or server-sent events with Accept: text/event-stream)",
        "chat:use",
    ),
    (
        "get",
        "/chat/sessions",
        "The caller's conversations",
        "chat:use",
    ),
    ("get", "/chat/session/{id}", "One conversation", "chat:use"),
    (
        "delete",
        "/chat/session/{id}",
        "Delete a conversation and its messages",
        "chat:use",
    ),
    (
        "get",
        "/chat/session/{id}/history",
        "A conversation's messages",
        "chat:use",
    ),
    (
        "get",
        "/chat/session/{id}/tokens",
        "A conversation's token usage",
        "chat:use",
    ),
    (
        "get",
        "/chat/user/tokens",
        "The caller's token usage",
        "chat:use",
    ),
    (
        "post",
        "/api/chat",
        "Stateless chat (seed 000): cookie and X-CSRF-Token",
        "chat:use",
    ),
    (
        "get",
        "/tools",
        "The tools the caller may use (seed 004)",
        "chat:use",
    ),
    (
        "get",
        "/api/tool-calls",
        "The caller's tool calls (everyone's with tool-calls:read-all); filters",
        "session",
    ),
    (
        "post",
        "/mcp",
        "MCP gateway (Streamable HTTP): the caller's permitted tools",
        "bearer",
    ),
    (
        "get",
        "/.well-known/oauth-protected-resource",
        "RFC 9728 metadata of the MCP gateway",
        "none",
    ),
    (
        "get",
        "/.well-known/oauth-protected-resource/mcp",
        "Same, at the MCP resource's own path",
        "none",
    ),
    ("get", "/health", "Alive", "none"),
    ("get", "/ready", "Database reachable", "none"),
    ("get", "/api/docs", "This OpenAPI document", "none"),
];

async fn docs(State(state): State<AppState>) -> axum::Json<Value> {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, auth) in ROUTES {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        let security = match *auth {
            "none" => json!([]),
            "optional" => json!([{}, { "bearer": [] }, { "cookie": [] }]),
            _ => json!([{ "bearer": [] }, { "cookie": [] }]),
        };
        entry[*method] = json!({
            "summary": summary,
            "security": security,
            "x-required-permission": if auth.contains(':') { Some(*auth) } else { None },
            "responses": { "200": { "description": "OK" }, "4XX": { "description": "Error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } } },
        });
    }
    axum::Json(json!({
        "openapi": "3.1.0",
        "info": { "title": "Warden API", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
                "cookie": { "type": "apiKey", "in": "cookie", "name": state.config.session_cookie_name() }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["success", "error", "code"], "properties": {
                    "success": { "type": "boolean", "const": false },
                    "error": { "type": "string" },
                    "message": { "type": "string" },
                    "code": { "type": "string" } } }
            }
        }
    }))
}
