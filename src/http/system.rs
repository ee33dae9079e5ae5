//! Liveness, readiness and the API description.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{error::ErrorBody, routes::Routes};
use crate::state::AppState;

pub fn router() -> Routes {
    Routes::new()
        .get("/health", health)
        .get("/ready", ready)
        .get("/api/docs", docs)
}

async fn health() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// 200 while the database answers, 503 otherwise.
async fn ready(State(state): State<AppState>) -> Response {
    if state.is_ready().await {
        axum::Json(json!({ "status": "ready", "database": "ok" })).into_response()
    } else {
        // Not AppError::Unavailable: a readiness probe is not retried, and it names what is unreachable.
        ErrorBody::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "database unreachable",
        )
        .field("status", "unavailable")
        .field("database", "unreachable")
        .into_response()
    }
}

/// (method, path, summary, auth) for every route; the OpenAPI document and the 401/403 sweep tests are built
/// from it, and a test checks it against the routes the router registers ([`super::routes`]), both ways.
/// `auth` is `none`, `optional`, `client` (OAuth client credentials), `session` (any signed-in caller),
/// `bearer` (an access token in the Authorization header) or the permission the route requires.
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
        "/auth/mfa/verify",
        "Complete a login that awaits a second factor: {mfa_token, code, method: sms|totp|recovery}",
        "none",
    ),
    (
        "post",
        "/auth/mfa/send",
        "Send a new SMS code for a login challenge: {mfa_token} (30 s apart, at most 5)",
        "none",
    ),
    (
        "post",
        "/api/me/phone",
        "Enrol a phone for SMS codes: {phone_number} (risk-checked, then a code is sent)",
        "session",
    ),
    (
        "post",
        "/api/me/phone/verify",
        "Confirm the enrolled phone with the code sent to it: {code}",
        "session",
    ),
    (
        "delete",
        "/api/me/phone",
        "Remove the caller's phone",
        "session",
    ),
    (
        "get",
        "/api/me/mfa",
        "The caller's second factors (masked phone, TOTP, recovery codes left; never a secret)",
        "session",
    ),
    (
        "post",
        "/api/me/mfa/totp",
        "Start TOTP enrolment: a new secret and otpauth URI, shown once",
        "session",
    ),
    (
        "post",
        "/api/me/mfa/totp/confirm",
        "Confirm TOTP with a current code: {code}; answers 10 single-use recovery codes, shown once",
        "session",
    ),
    (
        "get",
        "/api/me/mfa/totp/qr.svg",
        "The pending TOTP enrolment's otpauth URI as a QR code (SVG, no-store); 404 when none is pending",
        "session",
    ),
    (
        "delete",
        "/api/me/mfa/totp",
        "Remove TOTP and its recovery codes: {code} (a current code)",
        "session",
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
    (
        "get",
        "/api/me/sessions",
        "The caller's live sessions (kind, times, address, user agent, current; never a token)",
        "session",
    ),
    (
        "delete",
        "/api/me/sessions/{id}",
        "End one of the caller's sessions (another user's session id is 404)",
        "session",
    ),
    (
        "get",
        "/api/users",
        "Search users: ?q (username, email, full name), role, active, limit (≤200), offset; total, has_more",
        "users:manage",
    ),
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
        "/api/users/{id}/sessions",
        "A user's unexpired sessions (kind, times, address, user agent, current, revoked; never a token)",
        "users:manage",
    ),
    (
        "delete",
        "/api/users/{id}/sessions",
        "End every session of a user at once",
        "users:manage",
    ),
    (
        "delete",
        "/api/users/{id}/sessions/{session_id}",
        "End one session of a user at once (another user's session id is 404)",
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
    (
        "post",
        "/chat/approvals/{approval_id}",
        "Approve or refuse a pending tool call of one's own turn: {approve, code?, method?} (a step-up approval needs a fresh sms or totp code)",
        "chat:use",
    ),
    (
        "post",
        "/chat/approvals/{approval_id}/code",
        "Send an SMS code to the approver's verified phone for a step-up approval (2-minute code, 30 s apart)",
        "chat:use",
    ),
    (
        "get",
        "/api/servers",
        "The upstream MCP servers and their health",
        "chat:use",
    ),
    (
        "get",
        "/api/servers/{id}/tools",
        "One server's tools the caller may use",
        "chat:use",
    ),
    (
        "post",
        "/api/servers/{id}/tools/{tool}/execute",
        "Call one tool with JSON arguments (policy and log as over MCP)",
        "chat:use",
    ),
    (
        "get",
        "/api/tool-policies",
        "The tool-policy rules",
        "users:manage",
    ),
    (
        "put",
        "/api/tool-policies",
        "Set one tool-policy rule",
        "users:manage",
    ),
    (
        "get",
        "/api/mcp/servers",
        "The configured upstream MCP servers",
        "mcp:manage",
    ),
    (
        "post",
        "/api/mcp/servers",
        "Add an upstream MCP server",
        "mcp:manage",
    ),
    (
        "delete",
        "/api/mcp/servers/{name}",
        "Remove an upstream MCP server",
        "mcp:manage",
    ),
    (
        "get",
        "/metrics",
        "Prometheus metrics (open on METRICS_BIND instead, when set)",
        "metrics:read",
    ),
    (
        "get",
        "/api/audit",
        "The audit trail, newest first: filters actor, action (prefix with .*), subject, from, to, outcome; cursor; format=jsonl",
        "audit:read",
    ),
    (
        "get",
        "/api/audit/export",
        "The audit trail as JSON Lines (same filters)",
        "audit:read",
    ),
    (
        "get",
        "/api/analytics/system-overview",
        "Uptime, this process's CPU, memory, open files, pool and queues, MCP server status, the last hour's key metrics and samples",
        "analytics:read",
    ),
    (
        "get",
        "/api/analytics/db-status",
        "The database: kind, reachable, ping latency, pool size and idle connections, request-log queue",
        "analytics:read",
    ),
    (
        "get",
        "/api/analytics/key-metrics",
        "Requests, errors, error rate, requests per minute, latency p50/p95/p99, active users, page views, tool calls, LLM tokens, SMS over ?hours (default 24)",
        "analytics:read",
    ),
    (
        "get",
        "/api/analytics/top-pages",
        "The most viewed pages over ?hours with ?limit (default 10, at most 100)",
        "analytics:read",
    ),
    (
        "get",
        "/api/analytics/error-analysis",
        "Errors by status and by route over ?hours, and the latest server errors",
        "analytics:read",
    ),
    (
        "get",
        "/api/analytics/routes",
        "Per route over ?hours: requests, errors, error rate, latency avg/p50/p95/p99/max",
        "analytics:read",
    ),
    (
        "get",
        "/api/analytics/timeseries",
        "Requests and server errors per minute (windows up to 6 hours) or per hour over ?hours",
        "analytics:read",
    ),
    (
        "get",
        "/api/analytics/events",
        "Tool calls per tool and status, LLM tokens per user and model, SMS per type and outcome over ?hours",
        "analytics:read",
    ),
    (
        "post",
        "/api/analytics/log-page-view",
        "Report a page view: {path, title, loadTime} (60 a minute per address; tied to the caller when signed in)",
        "optional",
    ),
    (
        "post",
        "/api/tests",
        "Save a test: {name, endpoint_path, method, parameters: [{name, value}], request_type: mcp|database, \
         test_category, server_id?, tool_name?}",
        "tests:use",
    ),
    (
        "get",
        "/api/tests",
        "The caller's saved tests, newest first (?test_category=)",
        "tests:use",
    ),
    (
        "delete",
        "/api/tests/{id}",
        "Delete one of the caller's saved tests",
        "tests:use",
    ),
    (
        "post",
        "/api/tests/{id}/run",
        "Run one of the caller's saved tests as the caller; records last_result, last_status, last_execution, \
         execution_count",
        "tests:use",
    ),
    (
        "post",
        "/api/save-connection",
        "Save a database connection profile of one's own: {name, host, port, user, password, database, database_type: postgresql|mysql|sqlite} (the password is sealed, never returned)",
        "connections:use",
    ),
    (
        "get",
        "/api/get-connections",
        "The caller's own connection profiles (has_password and a fixed mask, never the password)",
        "connections:use",
    ),
    (
        "delete",
        "/api/delete-connection/{id}",
        "Delete one of the caller's connection profiles (another user's is 404)",
        "connections:use",
    ),
    (
        "post",
        "/api/test-connection",
        "Connect and report the server version: {connection_id} or the unsaved fields of save-connection",
        "connections:use",
    ),
    (
        "post",
        "/api/list-tables",
        "The tables and views of a profile's database: {connection_id}",
        "connections:use",
    ),
    (
        "post",
        "/api/describe-columns",
        "The columns of one table: {connection_id, table}",
        "connections:use",
    ),
    (
        "post",
        "/api/get-table-rows",
        "The first rows of one table, read-only: {connection_id, table, limit?}",
        "connections:use",
    ),
    (
        "post",
        "/api/analytics-query",
        "One read-only statement (SELECT, WITH, SHOW, EXPLAIN, ...) with a timeout and a row limit: {connection_id, query} -> {rows, sql, execution_time, row_count, truncated}",
        "connections:use",
    ),
    ("get", "/health", "Alive", "none"),
    ("get", "/ready", "Database reachable", "none"),
    ("get", "/api/docs", "This OpenAPI document", "none"),
    (
        "post",
        "/api/sms/send-sms",
        "Send an SMS (OTP type): {phone_number, message} -> {status_code, reference_id, status, errors}",
        "sms:send",
    ),
    (
        "post",
        "/api/sms/send-message",
        "Send a message (ARN type): {phone_number, message, sender_id?}",
        "sms:send",
    ),
    (
        "post",
        "/api/sms/verify-phone",
        "Look a number up (PhoneID with the contact addon): {phone_number}",
        "sms:lookup",
    ),
    (
        "get",
        "/api/sms/status/{reference_id}",
        "A send's delivery status, polled and recorded (own sends unless sms:read-all)",
        "sms:send",
    ),
    (
        "post",
        "/api/sms/send-verification",
        "Send a verification code by SMS (never in the reply): {phone_number}",
        "sms:send",
    ),
    (
        "post",
        "/api/sms/verify-code",
        "Check a verification code against the server's state: {phone_number, code}",
        "sms:send",
    ),
    (
        "post",
        "/api/sms/assess-risk",
        "Fraud risk of a number: {phone_number, account_lifecycle_event=create} -> {risk_level, risk_score, recommendation, phone_type, carrier}",
        "sms:lookup",
    ),
    (
        "post",
        "/api/whatsapp/send-sms",
        "Send an SMS (OTP type): {phone_number, message} -> {status_code, reference_id, status, errors} (seed 001 path)",
        "sms:send",
    ),
    (
        "post",
        "/api/whatsapp/send-message",
        "Send a message (ARN type): {phone_number, message, sender_id?} (seed 001 path)",
        "sms:send",
    ),
    (
        "post",
        "/api/whatsapp/verify-phone",
        "Look a number up (PhoneID with the contact addon): {phone_number} (seed 001 path)",
        "sms:lookup",
    ),
    (
        "get",
        "/api/whatsapp/status/{reference_id}",
        "A send's delivery status, polled and recorded (own sends unless sms:read-all) (seed 001 path)",
        "sms:send",
    ),
    (
        "post",
        "/api/whatsapp/send-verification",
        "Send a verification code by SMS (never in the reply): {phone_number} (seed 001 path)",
        "sms:send",
    ),
    (
        "post",
        "/api/whatsapp/verify-code",
        "Check a verification code against the server's state: {phone_number, code} (seed 001 path)",
        "sms:send",
    ),
    (
        "post",
        "/api/whatsapp/assess-risk",
        "Fraud risk of a number: {phone_number, account_lifecycle_event=create} -> {risk_level, risk_score, recommendation, phone_type, carrier} (seed 001 path)",
        "sms:lookup",
    ),
    (
        "post",
        "/api/whatsapp/send-template",
        "WhatsApp template messages: not implemented (501)",
        "sms:send",
    ),
    (
        "post",
        "/api/whatsapp/send-media",
        "WhatsApp media messages: not implemented (501)",
        "sms:send",
    ),
    (
        "post",
        "/api/whatsapp/send-buttons",
        "WhatsApp buttons messages: not implemented (501)",
        "sms:send",
    ),
    (
        "post",
        "/api/sms/callback",
        "Telesign delivery receipts (signed on the body; 401 otherwise; idempotent)",
        "none",
    ),
    (
        "get",
        "/api/sms/transactions",
        "The SMS transaction log with its summary: ?phone_number&type&failed&limit&offset",
        "sms:read-all",
    ),
    ("get", "/", "Redirect to the chat page", "none"),
    (
        "get",
        "/login",
        "The sign-in page (HTML; password, then a second factor when due)",
        "none",
    ),
    (
        "get",
        "/chat",
        "The chat page (HTML; it sends a signed-out browser to /login)",
        "none",
    ),
    (
        "get",
        "/admin",
        "The admin page (HTML: users, MCP servers, analytics, logs; others see \"not allowed\")",
        "none",
    ),
    (
        "get",
        "/settings",
        "The settings page (HTML; second factors, password, one's sessions)",
        "none",
    ),
    (
        "get",
        "/static/{file}",
        "The pages' CSS and JavaScript, compiled into the binary",
        "none",
    ),
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
