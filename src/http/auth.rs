//! Sign-in and sessions: `/auth/*`, `/api/login`, `/api/logout`, `/api/status`, `/api/me`, `/api/profile`.
//! Response shapes are the union of the seed shapes (seed-003 `token`/`message`, seed-004 `access_token`/
//! `token_type`), so existing clients keep working.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    error::{AppError, AppResult, ErrorBody},
    extract::{ClientIp, Json, MaybePrincipal, OptionalJson, cookie, is_json_content_type},
    routes::Routes,
    users::UserView,
};
use crate::{
    auth::{Credential, Issued, Principal, SessionMode, Tokens},
    clock::rfc3339,
    ids::{SessionId, UserId},
    mfa::LoginOutcome,
    state::AppState,
};

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

/// The login/refresh answer: bearer tokens in the body, or the session cookie plus a CSRF token.
fn issued_response(state: &AppState, issued: Issued) -> Response {
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

fn logged_out(state: &AppState) -> Response {
    let mut response = axum::Json(json!({ "success": true, "message": "Logged out successfully" }))
        .into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session_cookie(state, "", 0));
    response
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

/// OAuth2 client credentials (RFC 6749 §4.4): form or JSON body, or HTTP Basic client authentication.
async fn client_token(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let oauth_error = |status: StatusCode, error: &'static str, description: &str| {
        let body = ErrorBody::oauth(status, error, description);
        if status == StatusCode::UNAUTHORIZED {
            body.header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"warden\""),
            )
        } else {
            body
        }
        .into_response()
    };
    let is_json = is_json_content_type(&headers);
    let fields: Vec<(String, String)> = if is_json {
        match serde_json::from_slice::<serde_json::Map<String, Value>>(&body) {
            Ok(map) => map
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
                .collect(),
            Err(_) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "malformed JSON body",
                );
            }
        }
    } else {
        form_urlencoded(&body)
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if field("grant_type").as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let (id, secret) = match basic_credentials(&headers)
        .or_else(|| Some((field("client_id")?, field("client_secret")?)))
    {
        Some(c) => c,
        None => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            );
        }
    };
    match state.auth.client_credentials(&id, &secret, ip).await {
        Ok(issued) => match issued.tokens {
            Tokens::Bearer {
                access_token,
                access_expires_at,
                ..
            } => axum::Json(json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": (access_expires_at - state.clock.now_ms()) / 1000,
            }))
            .into_response(),
            Tokens::Cookie { .. } => {
                AppError::Internal(anyhow::anyhow!("client token issued as a cookie"))
                    .into_response()
            }
        },
        Err(crate::auth::AuthError::Unauthorized) => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        ),
        Err(e) => AppError::from(e).into_response(),
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(B64.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

fn form_urlencoded(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && let Ok(b) = u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                )
            {
                out.push(b);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
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
