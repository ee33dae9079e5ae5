//! One error type for every handler, one status mapping and one JSON shape:
//! `{"success": false, "error": "...", "message": "...", "code": "..."}` (`message` is what seed-003 clients read).
//! Unexpected errors are logged under an id that the client sees, never with their details.
//! Whatever route it comes from, an error caused by the database being unavailable (`store::is_unavailable`)
//! is a 503 with `Retry-After`, marked [`DatabaseUnavailable`] so that idempotent requests are retried once.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::auth::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("Unauthorized - Invalid or missing token")]
    Unauthorized,
    #[error("Invalid username or password")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("Request body too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("Too many requests; try again later")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("The server is busy; try again shortly")]
    Busy,
    /// The database is unavailable now (`store::is_unavailable`); the client should come back shortly.
    #[error("Service unavailable")]
    Unavailable,
    /// An upstream (the LLM, an MCP server) failed.
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    GatewayTimeout(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AppError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AppError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            AppError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_error"),
            AppError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AppError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            AppError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AppError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "upstream_error"),
            AppError::GatewayTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    pub fn not_found() -> AppError {
        AppError::NotFound("Not found".into())
    }
}

/// The one place where the auth service's outcomes become HTTP statuses: a malformed request is a 400, input
/// that breaks a rule a 422, a taken name a 409, a refused change a 403.
impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidCredentials => AppError::InvalidCredentials,
            AuthError::Unauthorized => AppError::Unauthorized,
            AuthError::RateLimited { retry_after_secs } => {
                AppError::TooManyRequests { retry_after_secs }
            }
            AuthError::Busy => AppError::Busy,
            AuthError::Unavailable => AppError::Unavailable,
            AuthError::Malformed(m) => AppError::BadRequest(m),
            AuthError::InvalidInput(m) => AppError::Unprocessable(m),
            AuthError::AlreadyExists(m) => AppError::Conflict(m),
            AuthError::NotFound => AppError::not_found(),
            AuthError::NotAllowed(m) => AppError::Forbidden(m),
            AuthError::Internal(e) => AppError::Internal(e),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        if crate::store::is_unavailable(&e) {
            AppError::Unavailable
        } else {
            AppError::Internal(e.into())
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        // Services wrap sqlx errors in anyhow (often under `.context()`): the cause decides, not the wrapper.
        let error = match self {
            AppError::Internal(e) if crate::store::is_unavailable_cause(&e) => {
                tracing::warn!(error = format!("{e:#}"), "database unavailable");
                AppError::Unavailable
            }
            other => other,
        };
        let (status, code) = error.status_and_code();
        let message = match &error {
            AppError::Internal(e) => {
                let error_id = uuid::Uuid::new_v4().simple().to_string();
                tracing::error!(error_id, error = format!("{e:#}"), "internal error");
                format!("Internal server error (error id {error_id})")
            }
            other => other.to_string(),
        };
        let body = json!({ "success": false, "error": message, "message": message, "code": code });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match error {
            AppError::Unauthorized | AppError::InvalidCredentials => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            AppError::TooManyRequests { retry_after_secs } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(1)),
                );
            }
            AppError::Busy => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            AppError::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response.extensions_mut().insert(DatabaseUnavailable);
            }
            _ => {}
        }
        response
    }
}

/// Response extension on a 503 caused by the database being unavailable, so the retry layer can tell it
/// from other 503s (busy, readiness).
#[derive(Clone, Copy, Debug)]
pub struct DatabaseUnavailable;

pub type AppResult<T> = Result<T, AppError>;
