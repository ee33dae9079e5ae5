//! What a login hands a client and what a logout takes back: bearer tokens in the body, or the session cookie
//! (HttpOnly, SameSite and Secure per config, `__Host-` when Secure) with its CSRF token.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{
    auth::{Issued, Tokens},
    clock::rfc3339,
    state::AppState,
};

/// The login/refresh answer: bearer tokens in the body, or the session cookie plus a CSRF token.
pub(super) fn issued_response(state: &AppState, issued: Issued) -> Response {
    let a = &issued.account;
    let mut body = json!({
        "success": true,
        "message": "Login successful",
        "user_id": a.id,
        "username": a.username,
        "role": a.role,
        "session_expires_at": rfc3339(issued.session_expires_at),
    });
    match issued.tokens {
        Tokens::Bearer {
            access_token,
            access_expires_at,
            refresh_token,
        } => {
            let expires_in = ((access_expires_at - state.clock.now_ms()) / 1000).max(0);
            body["token"] = json!(access_token);
            body["access_token"] = json!(access_token);
            body["token_type"] = json!("bearer");
            body["expires_in"] = json!(expires_in);
            body["expires_at"] = json!(rfc3339(access_expires_at));
            if let Some(r) = refresh_token {
                body["refresh_token"] = json!(r);
            }
            axum::Json(body).into_response()
        }
        Tokens::Cookie {
            cookie_token,
            csrf_token,
        } => {
            body["csrf_token"] = json!(csrf_token);
            body["expires_at"] = json!(rfc3339(issued.session_expires_at));
            let max_age = (issued.session_expires_at - state.clock.now_ms()) / 1000;
            let mut response = axum::Json(body).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                session_cookie(state, &cookie_token, max_age),
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
