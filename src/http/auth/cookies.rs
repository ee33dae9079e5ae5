//! What a login hands a client and what a logout takes back: bearer tokens in the body, or the session cookie
//! (HttpOnly, SameSite and Secure per config, `__Host-` when Secure) with its CSRF token.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;

use crate::{
    auth::{Issued, Tokens},
    clock::rfc3339,
    ids::UserId,
    state::AppState,
};

/// The login/refresh answer: the union of the seeds' shapes (seed 003's `token`, seed 004's `access_token` and
/// `token_type`), with bearer tokens or, in cookie mode, the CSRF token (the session itself goes in the cookie).
#[derive(Serialize)]
struct LoginAnswer<'a> {
    success: bool,
    message: &'static str,
    user_id: &'a UserId,
    username: &'a str,
    role: &'a str,
    session_expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<i64>,
    /// The access token's expiry, or in cookie mode the session's.
    expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<&'a str>,
}

/// The login/refresh answer: bearer tokens in the body, or the session cookie plus a CSRF token.
pub(super) fn issued_response(state: &AppState, issued: Issued) -> Response {
    let a = &issued.account;
    let session_expires_at = rfc3339(issued.session_expires_at);
    let mut answer = LoginAnswer {
        success: true,
        message: "Login successful",
        user_id: &a.id,
        username: &a.username,
        role: &a.role,
        session_expires_at: session_expires_at.clone(),
        token: None,
        access_token: None,
        token_type: None,
        expires_in: None,
        expires_at: session_expires_at,
        refresh_token: None,
        csrf_token: None,
    };
    match &issued.tokens {
        Tokens::Bearer {
            access_token,
            access_expires_at,
            refresh_token,
        } => {
            answer.token = Some(access_token);
            answer.access_token = Some(access_token);
            answer.token_type = Some("bearer");
            answer.expires_in = Some(((access_expires_at - state.clock.now_ms()) / 1000).max(0));
            answer.expires_at = rfc3339(*access_expires_at);
            answer.refresh_token = refresh_token.as_deref();
            axum::Json(answer).into_response()
        }
        Tokens::Cookie {
            cookie_token,
            csrf_token,
        } => {
            answer.csrf_token = Some(csrf_token);
            let max_age = (issued.session_expires_at - state.clock.now_ms()) / 1000;
            let mut response = axum::Json(answer).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                session_cookie(state, cookie_token, max_age),
            );
            response
        }
    }
}

fn session_cookie(state: &AppState, value: &str, max_age_secs: i64) -> HeaderValue {
    let c = &state.config;
    let secure = if c.cookie_secure() { "; Secure" } else { "" };
    let text = format!(
        "{}={}; HttpOnly; Path=/; SameSite={}; Max-Age={}{}",
        c.session_cookie_name(),
        value,
        c.cookie_samesite.as_str(),
        max_age_secs.max(0),
        secure
    );
    HeaderValue::from_str(&text).expect("cookie text is ASCII")
}

pub(super) fn logged_out(state: &AppState) -> Response {
    let mut response = axum::Json(json!({ "success": true, "message": "Logged out successfully" }))
        .into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session_cookie(state, "", 0));
    response
}
