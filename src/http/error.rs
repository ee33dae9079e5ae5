//! One error type for every handler, one status mapping and one builder of error bodies, [`ErrorBody`]:
//! `{"success": false, "error": "...", "message": "...", "code": "..."}` (`message` is what seed-003 clients read),
//! or RFC 6749's `{"error": code, "error_description": "..."}` dialect on the OAuth token route. Every error a
//! client sees — JSON responses, the `/mcp` challenge, `/ready`, the edge's refusals and a streamed chat turn's
//! `error` event — is built here, so no path can leak an internal error's text.
//! Unexpected errors are logged under an id that the client sees, never with their details.
//! Whatever route it comes from, an error caused by the database being unavailable (`store::is_unavailable`)
//! is a 503 with `Retry-After`, marked [`DatabaseUnavailable`] so that idempotent requests are retried once.

use axum::{
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use crate::{
    agent::llm::LlmError, auth::AuthError, chat::ChatError, connections::ConnectionError,
    mfa::MfaError, sms::SmsError,
};

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
    /// The request's headers exceed `max_header_bytes` (refused at the edge).
    #[error("Request headers too large")]
    HeadersTooLarge,
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
    /// An outcome with its own machine-readable code (a second factor awaited or required, a blocked number).
    #[error("{message}")]
    Coded {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
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
            AppError::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            AppError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            AppError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_error"),
            AppError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AppError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            AppError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AppError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "upstream_error"),
            AppError::GatewayTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            AppError::Coded { status, code, .. } => (*status, code),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    /// The answer to an account whose role requires a second factor it has not confirmed yet.
    pub fn enrolment_required() -> AppError {
        AppError::Coded {
            status: StatusCode::FORBIDDEN,
            code: "mfa_enrolment_required",
            message: "Enrol a second factor first".into(),
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

/// SMS outcomes: a server without SMS or a provider down is a 503 (with its message), a number that cannot
/// be one or may not be texted a 400, a number the provider refused (invalid, blocked) a 400 with its code,
/// too many messages a 429, a wrong verification code a 422, a receipt whose signature fails a 401.
impl From<SmsError> for AppError {
    fn from(e: SmsError) -> Self {
        match e {
            SmsError::Disabled | SmsError::Unavailable => AppError::Coded {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "sms_unavailable",
                message: e.to_string(),
            },
            SmsError::InvalidNumber(_) | SmsError::CountryNotAllowed => {
                AppError::BadRequest(e.to_string())
            }
            SmsError::RateLimited { retry_after_secs } => {
                AppError::TooManyRequests { retry_after_secs }
            }
            SmsError::Rejected { .. } => AppError::Coded {
                status: StatusCode::BAD_REQUEST,
                code: "sms_rejected",
                message: e.to_string(),
            },
            SmsError::NotFound => AppError::NotFound(e.to_string()),
            SmsError::WrongCode => AppError::Coded {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_code",
                message: e.to_string(),
            },
            SmsError::ReceiptRefused(_) => AppError::Coded {
                status: StatusCode::UNAUTHORIZED,
                code: "invalid_signature",
                message: e.to_string(),
            },
            SmsError::BadReceipt(_) => AppError::BadRequest(e.to_string()),
            SmsError::Internal(e) => AppError::Internal(e),
        }
    }
}

/// Second-factor outcomes: a wrong login code is a 401 like a wrong password; a wrong enrolment code a 422.
impl From<MfaError> for AppError {
    fn from(e: MfaError) -> Self {
        match e {
            MfaError::Auth(e) => e.into(),
            MfaError::Sms(e) => e.into(),
            MfaError::InvalidCode => AppError::Coded {
                status: StatusCode::UNAUTHORIZED,
                code: "invalid_code",
                message: e.to_string(),
            },
            MfaError::WrongEnrolmentCode => AppError::Coded {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_code",
                message: e.to_string(),
            },
            MfaError::NumberBlocked => AppError::Coded {
                status: StatusCode::BAD_REQUEST,
                code: "number_blocked",
                message: e.to_string(),
            },
            MfaError::ResendTooSoon { retry_after_secs } => {
                AppError::TooManyRequests { retry_after_secs }
            }
            MfaError::MethodUnavailable(m) => AppError::BadRequest(m),
            MfaError::AlreadyEnrolled(m) => AppError::Conflict(m),
            MfaError::NotEnrolled(m) => AppError::Conflict(m),
            MfaError::NoSuchApproval => AppError::NotFound(e.to_string()),
            MfaError::StepUpRequired => AppError::Coded {
                status: StatusCode::FORBIDDEN,
                code: "step_up_required",
                message: e.to_string(),
            },
            MfaError::StepUpFailed => AppError::Coded {
                status: StatusCode::FORBIDDEN,
                code: "invalid_code",
                message: e.to_string(),
            },
            MfaError::Internal(e) => AppError::Internal(e),
        }
    }
}

/// Connection-profile outcomes: a missing or foreign profile (or table) is a 404, bad fields a 422, a refused
/// statement a 422 `statement_refused`, a host or SQLite file the rules refuse a 403, a taken name a 409; the
/// user's database failing is a 502 (authentication, unreachable, no such database) or a 504 (timeout), and an
/// error of the statement itself a 400 `query_error` with the database's message.
impl From<ConnectionError> for AppError {
    fn from(e: ConnectionError) -> Self {
        let message = e.to_string();
        let coded = |status, code| AppError::Coded {
            status,
            code,
            message: message.clone(),
        };
        match e {
            ConnectionError::NotFound | ConnectionError::NoSuchTable => {
                AppError::NotFound(message.clone())
            }
            ConnectionError::Invalid(_) => AppError::Unprocessable(message.clone()),
            ConnectionError::NameTaken(_) => AppError::Conflict(message.clone()),
            ConnectionError::HostNotAllowed(_) => coded(StatusCode::FORBIDDEN, "host_not_allowed"),
            ConnectionError::SqliteNotAllowed(_) => {
                coded(StatusCode::FORBIDDEN, "sqlite_not_allowed")
            }
            ConnectionError::Refused(_) => {
                coded(StatusCode::UNPROCESSABLE_ENTITY, "statement_refused")
            }
            ConnectionError::AuthFailed => coded(StatusCode::BAD_GATEWAY, "db_auth_failed"),
            ConnectionError::DatabaseNotFound => coded(StatusCode::BAD_GATEWAY, "db_not_found"),
            ConnectionError::Unreachable(_) => coded(StatusCode::BAD_GATEWAY, "db_unreachable"),
            ConnectionError::Timeout => coded(StatusCode::GATEWAY_TIMEOUT, "db_timeout"),
            ConnectionError::Query(_) => coded(StatusCode::BAD_REQUEST, "query_error"),
            ConnectionError::Internal(e) => AppError::Internal(e),
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

impl From<ChatError> for AppError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::NotFound => AppError::NotFound("Session not found or access denied".into()),
            ChatError::Invalid(m) => AppError::Unprocessable(m),
            ChatError::QuotaExceeded { retry_after_secs } => {
                AppError::TooManyRequests { retry_after_secs }
            }
            ChatError::Llm(LlmError::Timeout) => AppError::GatewayTimeout(
                "The language model did not answer in time; your message was saved".into(),
            ),
            ChatError::Llm(e) => AppError::BadGateway(format!("{e}; your message was saved")),
            ChatError::Internal(e) => AppError::Internal(e),
        }
    }
}

impl AppError {
    /// The body (and headers) the client sees. An internal error is logged here under a fresh error id and
    /// only that id reaches the client; an internal error caused by the database being unavailable becomes a 503.
    pub fn into_body(self) -> ErrorBody {
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
        let body = ErrorBody::new(status, code, message);
        match error {
            AppError::Unauthorized | AppError::InvalidCredentials => {
                body.header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
            }
            AppError::TooManyRequests { retry_after_secs } => body.header(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            ),
            AppError::Busy => body.header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            AppError::Unavailable => body
                .header(header::RETRY_AFTER, HeaderValue::from_static("1"))
                .database_unavailable(),
            _ => body,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.into_body().into_response()
    }
}

/// The one builder of error bodies: status, a stable machine-readable `code`, a message for people, and the
/// headers that go with them. Build one from an [`AppError`] ([`AppError::into_body`]) wherever possible; build
/// one directly only for the few bodies with extra fields (readiness) or another dialect (OAuth).
#[derive(Debug)]
pub struct ErrorBody {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// RFC 6749 §5.2: `error` carries the code and `error_description` the message.
    oauth: bool,
    extra: Map<String, Value>,
    headers: HeaderMap,
    database_unavailable: bool,
}

impl ErrorBody {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ErrorBody {
            status,
            code,
            message: message.into(),
            oauth: false,
            extra: Map::new(),
            headers: HeaderMap::new(),
            database_unavailable: false,
        }
    }

    /// An OAuth 2.0 token-endpoint error (RFC 6749 §5.2): `error` is the OAuth code, `error_description` the text.
    pub fn oauth(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        ErrorBody {
            oauth: true,
            ..ErrorBody::new(status, error, description)
        }
    }

    /// An extra field beside the standard ones (never `success`, `error`, `message` or `code`).
    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Marks the response with [`DatabaseUnavailable`], so the retry layer may retry an idempotent request.
    fn database_unavailable(mut self) -> Self {
        self.database_unavailable = true;
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The JSON body alone, e.g. for a server-sent `error` event.
    pub fn to_json(&self) -> Value {
        let mut body = self.extra.clone();
        body.insert("success".into(), Value::Bool(false));
        if self.oauth {
            body.insert("error".into(), json!(self.code));
            body.insert("error_description".into(), json!(self.message));
        } else {
            body.insert("error".into(), json!(self.message));
            body.insert("message".into(), json!(self.message));
        }
        body.insert("code".into(), json!(self.code));
        Value::Object(body)
    }
}

impl IntoResponse for ErrorBody {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.to_json())).into_response();
        response.headers_mut().extend(self.headers);
        response.extensions_mut().insert(ErrorCode(self.code));
        if self.database_unavailable {
            response.extensions_mut().insert(DatabaseUnavailable);
        }
        response
    }
}

/// Response extension naming an error response's public code, for the request log (never the internal text).
#[derive(Clone, Copy, Debug)]
pub struct ErrorCode(pub &'static str);

/// Response extension on a 503 caused by the database being unavailable, so the retry layer can tell it
/// from other 503s (busy, readiness).
#[derive(Clone, Copy, Debug)]
pub struct DatabaseUnavailable;

pub type AppResult<T> = Result<T, AppError>;
