//! The caller's own account, for the settings page: their sessions (`/api/me/sessions`) and the QR code of a
//! pending TOTP enrolment (`/api/me/mfa/totp/qr.svg`), rendered here so no other service ever sees the secret.

use axum::{
    extract::{Path, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;

use super::{
    error::{AppError, AppResult},
    routes::Routes,
};
use crate::{
    auth::{Principal, UserSession},
    clock::rfc3339,
    state::AppState,
};

pub fn router() -> Routes {
    Routes::new()
        .get("/api/me/sessions", list_sessions)
        .delete("/api/me/sessions/{id}", revoke_session)
        .get("/api/me/mfa/totp/qr.svg", totp_qr)
}

/// One of the caller's sessions: never a token.
#[derive(Serialize)]
struct SessionView<'a> {
    id: &'a str,
    kind: &'a str,
    created_at: String,
    last_seen_at: Option<String>,
    expires_at: String,
    client_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    current: bool,
}

impl<'a> SessionView<'a> {
    fn of(s: &'a UserSession) -> SessionView<'a> {
        SessionView {
            id: &s.id,
            kind: &s.kind,
            created_at: rfc3339(s.created_at),
            last_seen_at: s.last_seen_at.map(rfc3339),
            expires_at: rfc3339(s.expires_at),
            client_ip: s.client_ip.as_deref(),
            user_agent: s.user_agent.as_deref(),
            current: s.current,
        }
    }
}

async fn list_sessions(State(state): State<AppState>, principal: Principal) -> AppResult<Response> {
    let sessions = state.auth.own_sessions(&principal).await?;
    let views: Vec<SessionView> = sessions.iter().map(SessionView::of).collect();
    Ok(axum::Json(json!({ "success": true, "sessions": views })).into_response())
}

async fn revoke_session(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let not_found = || AppError::NotFound("Session not found".into());
    if id.is_empty() || id.len() > 64 {
        return Err(not_found());
    }
    let was_live = state
        .auth
        .revoke_own_session(&principal, &id)
        .await
        .map_err(|e| match AppError::from(e) {
            AppError::NotFound(_) => not_found(),
            other => other,
        })?;
    Ok(axum::Json(json!({
        "success": true,
        "message": "Session revoked",
        "revoked": usize::from(was_live),
    }))
    .into_response())
}

/// The pending enrolment's `otpauth://` URI as a QR code (SVG), never cached; 404 when none is pending.
async fn totp_qr(State(state): State<AppState>, principal: Principal) -> AppResult<Response> {
    let uri = state
        .mfa
        .pending_totp_uri(&principal.account)
        .await?
        .ok_or_else(|| AppError::NotFound("No authenticator enrolment is pending".into()))?;
    let code = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("QR code: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        svg,
    )
        .into_response())
}
