//! `POST /auth/token`: the OAuth2 client-credentials grant for service clients, with its own error dialect
//! (RFC 6749 §5.2) and both ways of presenting the client (HTTP Basic, or the form or JSON body).

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde_json::{Value, json};

use crate::{
    auth::Tokens,
    http::{
        error::{AppError, ErrorBody},
        extract::{ClientIp, is_json_content_type},
    },
    state::AppState,
};

/// OAuth2 client credentials (RFC 6749 §4.4): form or JSON body, or HTTP Basic client authentication.
pub(super) async fn client_token(
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
