//! Sign-in and sessions: `/auth/*`, `/api/login`, `/api/logout`, `/api/status`, `/api/me`, `/api/profile`.
//! Response shapes are the union of the seed shapes (seed-003 `token`/`message`, seed-004 `access_token`/
//! `token_type`), so existing clients keep working.

use axum::{
    extract::State,
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    error::{AppError, AppResult},
    extract::{ClientIp, Json, MaybePrincipal, OptionalJson, cookie},
    routes::Routes,
    users::UserView,
};
use crate::{
    auth::{Credential, Principal, SessionMode},
    ids::{SessionId, UserId},
    mfa::LoginOutcome,
    state::AppState,
};

mod cookies;
mod oauth;

use cookies::{issued_response, logged_out};
use oauth::client_token;

pub fn router() -> Routes {
    Routes::new()
        .post("/auth/login", login)
        .post("/api/login", login)
        .post("/auth/mfa/verify", verify_mfa)
        .post("/auth/mfa/send", send_mfa_code)
        .post("/auth/refresh", refresh)
        .post("/auth/verify", verify)
        .post("/auth/logout", logout)
        .post("/api/logout", logout)
        .post("/auth/logout-all", logout_all)
        .post("/auth/token", client_token)
        .get("/api/status", status)
        .get("/api/me", me)
        .get("/api/profile", me)
        .post("/api/me/password", change_password)
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
    #[serde(default)]
    mode: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(body): Json<LoginBody>,
) -> AppResult<Response> {
    let mode = match body.mode.as_deref() {
        None | Some("token") | Some("bearer") => SessionMode::Bearer,
        Some("cookie") => SessionMode::Cookie,
        Some(_) => {
            return Err(AppError::Unprocessable(
                "mode must be \"cookie\" or \"token\"".into(),
            ));
        }
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    // A browser that logs in again ends the session its old cookie names (the service decides).
    let old_cookie = cookie(&headers, state.config.session_cookie_name());
    let outcome = state
        .mfa
        .login(
            &body.username,
            body.password,
            mode,
            ip,
            user_agent,
            old_cookie,
        )
        .await?;
    Ok(match outcome {
        LoginOutcome::Session(issued) => issued_response(&state, issued),
        // No session and no cookie yet: the password is checked, a second factor is awaited.
        LoginOutcome::Challenge { mfa_token, methods } => axum::Json(json!({
            "success": true,
            "mfa_required": true,
            "mfa_token": mfa_token,
            "methods": methods,
            "message": "Enter the code of your second factor",
        }))
        .into_response(),
    })
}

#[derive(Deserialize)]
struct VerifyMfaBody {
    mfa_token: String,
    code: String,
    method: String,
}

/// Completes a login that awaited a second factor: the same answer as a plain login (bearer tokens, or the
/// cookie and CSRF token), and a browser's old session ends as it would.
async fn verify_mfa(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Json(body): Json<VerifyMfaBody>,
) -> AppResult<Response> {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let old_cookie = cookie(&headers, state.config.session_cookie_name());
    let issued = state
        .mfa
        .verify_login(
            &body.mfa_token,
            &body.code,
            &body.method,
            ip,
            user_agent,
            old_cookie,
        )
        .await?;
    Ok(issued_response(&state, issued))
}

#[derive(Deserialize)]
struct SendMfaBody {
    mfa_token: String,
}

/// Sends a new SMS code for a login challenge (throttled); the older code stops working.
async fn send_mfa_code(
    State(state): State<AppState>,
    Json(body): Json<SendMfaBody>,
) -> AppResult<Response> {
    state.mfa.send_login_code(&body.mfa_token).await?;
    Ok(axum::Json(json!({ "success": true, "message": "A new code was sent" })).into_response())
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshBody>,
) -> AppResult<Response> {
    let issued = state.auth.refresh(&body.refresh_token).await?;
    Ok(issued_response(&state, issued))
}

#[derive(Deserialize)]
struct TokenBody {
    token: String,
}

/// Seed 003: `{valid, user_id, username, message}`; an invalid token is a 200 with `valid: false`.
async fn verify(State(state): State<AppState>, Json(body): Json<TokenBody>) -> Json200 {
    match state
        .auth
        .authenticate(&body.token, Credential::Bearer)
        .await
    {
        Ok(p) => Json200(json!({
            "valid": true,
            "user_id": p.account.id,
            "username": p.account.username,
            "role": p.account.role,
            "message": "Token is valid",
        })),
        Err(_) => Json200(json!({ "valid": false, "message": "Invalid or expired token" })),
    }
}

pub struct Json200(Value);
impl IntoResponse for Json200 {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(Default, Deserialize)]
struct LogoutBody {
    token: Option<String>,
    refresh_token: Option<String>,
}

/// Ends the caller's session: named by the credential sent (cookie or bearer), or by a seed-003 body
/// `{token}`, or a `{refresh_token}`. A body naming another session than the credential sent is refused.
async fn logout(
    State(state): State<AppState>,
    MaybePrincipal(principal): MaybePrincipal,
    OptionalJson(body): OptionalJson<LogoutBody>,
) -> AppResult<Response> {
    let body = body.unwrap_or_default();
    let principal = match (principal, body.token, body.refresh_token) {
        (Some(p), None, None) => p,
        (None, Some(token), None) => state.auth.authenticate(&token, Credential::Bearer).await?,
        (None, None, Some(refresh)) => {
            state.auth.logout_by_refresh_token(&refresh).await?;
            return Ok(logged_out(&state));
        }
        (None, None, None) => return Err(AppError::Unauthorized),
        _ => {
            return Err(AppError::BadRequest(
                "Ambiguous credentials: send exactly one token".into(),
            ));
        }
    };
    if principal.credential == Credential::External {
        return Err(AppError::BadRequest(
            "External tokens are ended by their issuer".into(),
        ));
    }
    state.auth.logout(&principal).await?;
    Ok(logged_out(&state))
}

async fn logout_all(State(state): State<AppState>, principal: Principal) -> AppResult<Response> {
    let n = state.auth.logout_all(&principal).await?;
    let mut response = logged_out(&state);
    *response.body_mut() = axum::body::Body::from(
        json!({ "success": true, "message": "Logged out of all sessions", "sessions_ended": n })
            .to_string(),
    );
    Ok(response)
}

/// The status answer; a struct rather than a JSON map, since this is the hot path.
#[derive(serde::Serialize)]
struct StatusBody<'a> {
    status: &'static str,
    authenticated: bool,
    csrf_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
}

/// Seed 000's status probe: who is calling and, for a browser session, a fresh CSRF token bound to it.
/// The raw token is never returned (the seed did, which undid HttpOnly).
async fn status(
    State(state): State<AppState>,
    MaybePrincipal(principal): MaybePrincipal,
) -> Response {
    let body = match &principal {
        Some(p) => StatusBody {
            status: "ok",
            authenticated: true,
            csrf_token: (p.credential == Credential::Cookie)
                .then(|| state.auth.issue_csrf(&p.session_id)),
            user_id: Some(&p.account.id),
            username: Some(&p.account.username),
            role: Some(&p.account.role),
        },
        None => StatusBody {
            status: "ok",
            authenticated: false,
            csrf_token: None,
            user_id: None,
            username: None,
            role: None,
        },
    };
    axum::Json(body).into_response()
}

async fn me(State(state): State<AppState>, principal: Principal) -> AppResult<Response> {
    let row = state.auth.find_user(principal.account.id.as_str()).await?;
    Ok(axum::Json(Me {
        user: UserView::of(&row),
        success: true,
        permissions: &principal.account.permissions,
        session_id: &principal.session_id,
    })
    .into_response())
}

/// `GET /auth/me`: the user's public view with the caller's permissions and login session.
#[derive(Serialize)]
struct Me<'a> {
    #[serde(flatten)]
    user: UserView<'a>,
    success: bool,
    permissions: &'a [String],
    session_id: &'a SessionId,
}

#[derive(Deserialize)]
struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<ChangePasswordBody>,
) -> AppResult<Response> {
    state
        .auth
        .change_own_password(&principal, body.current_password, body.new_password)
        .await?;
    Ok(axum::Json(json!({ "success": true, "message": "Password changed; other sessions have been signed out" })).into_response())
}
