//! SMS routes: seed 001's under `/api/whatsapp/` and the same under `/api/sms/`, Telesign's delivery receipts
//! (`POST /api/sms/callback`) and the admin view of the transaction log. Every send and lookup goes through
//! the `Sms` service (destination rules, limits, the log); no code and no full number is ever in a reply.

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::{
    error::{AppError, AppResult},
    extract::{Json, Permission, Require},
    routes::Routes,
};
use crate::{
    auth::permissions,
    sms::{MessageKind, PhoneNumber, Receipt, SmsError, TransactionKind},
    state::AppState,
};

pub struct SmsSend;
impl Permission for SmsSend {
    const NAME: &'static str = permissions::SMS_SEND;
}

pub struct SmsLookup;
impl Permission for SmsLookup {
    const NAME: &'static str = permissions::SMS_LOOKUP;
}

pub struct SmsReadAll;
impl Permission for SmsReadAll {
    const NAME: &'static str = permissions::SMS_READ_ALL;
}

pub fn router() -> Routes {
    Routes::new()
        .post("/api/sms/send-sms", send_sms)
        .post("/api/sms/send-message", send_message)
        .post("/api/sms/verify-phone", verify_phone)
        .get("/api/sms/status/{reference_id}", message_status)
        .post("/api/sms/send-verification", send_verification)
        .post("/api/sms/verify-code", verify_code)
        .post("/api/sms/assess-risk", assess_risk)
        .post("/api/whatsapp/send-sms", send_sms)
        .post("/api/whatsapp/send-message", send_message)
        .post("/api/whatsapp/verify-phone", verify_phone)
        .get("/api/whatsapp/status/{reference_id}", message_status)
        .post("/api/whatsapp/send-verification", send_verification)
        .post("/api/whatsapp/verify-code", verify_code)
        .post("/api/whatsapp/assess-risk", assess_risk)
        .post("/api/whatsapp/send-template", whatsapp_only)
        .post("/api/whatsapp/send-media", whatsapp_only)
        .post("/api/whatsapp/send-buttons", whatsapp_only)
        .post("/api/sms/callback", receive_receipt)
        .get("/api/sms/transactions", list_transactions)
}

/// Telesign's limit on a message.
const MAX_MESSAGE_CHARS: usize = 1600;
const LIFECYCLE_EVENTS: [&str; 5] = ["create", "sign-in", "transact", "update", "delete"];

fn number(raw: &str) -> Result<PhoneNumber, AppError> {
    Ok(PhoneNumber::parse(raw).map_err(SmsError::from)?)
}

fn message(text: &str) -> Result<&str, AppError> {
    if text.trim().is_empty() || text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(AppError::Unprocessable(format!(
            "message must be 1 to {MAX_MESSAGE_CHARS} characters"
        )));
    }
    Ok(text)
}

fn sent_reply(sent: crate::sms::Sent) -> Response {
    axum::Json(json!({
        "success": true,
        "status_code": sent.status_code,
        "reference_id": sent.reference_id,
        "status": sent.status,
        "errors": [],
    }))
    .into_response()
}

#[derive(Deserialize)]
struct SendBody {
    phone_number: String,
    message: String,
    #[serde(default)]
    sender_id: Option<String>,
}

async fn send_sms(
    State(state): State<AppState>,
    Require(principal, _): Require<SmsSend>,
    Json(body): Json<SendBody>,
) -> AppResult<Response> {
    let to = number(&body.phone_number)?;
    let sent = state
        .sms
        .send(
            &principal.account.id,
            &to,
            message(&body.message)?,
            MessageKind::Otp,
        )
        .await?;
    Ok(sent_reply(sent))
}

async fn send_message(
    State(state): State<AppState>,
    Require(principal, _): Require<SmsSend>,
    Json(body): Json<SendBody>,
) -> AppResult<Response> {
    let to = number(&body.phone_number)?;
    if body.sender_id.as_ref().is_some_and(|s| {
        s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_alphanumeric())
    }) {
        return Err(AppError::Unprocessable(
            "sender_id must be 1 to 20 letters or digits".into(),
        ));
    }
    let sent = state
        .sms
        .send_message(
            &principal.account.id,
            &to,
            message(&body.message)?,
            MessageKind::Arn,
            body.sender_id.as_deref(),
        )
        .await?;
    Ok(sent_reply(sent))
}

#[derive(Deserialize)]
struct NumberBody {
    phone_number: String,
}

async fn verify_phone(
    State(state): State<AppState>,
    Require(principal, _): Require<SmsLookup>,
    Json(body): Json<NumberBody>,
) -> AppResult<Response> {
    let to = number(&body.phone_number)?;
    let info = state.sms.phone_id(&principal.account.id, &to).await?;
    let mut reply = serde_json::to_value(info).map_err(anyhow::Error::from)?;
    reply["success"] = json!(true);
    Ok(axum::Json(reply).into_response())
}

/// A send's delivery status, polled from the provider; another user's transaction is a 404 without
/// `sms:read-all`.
async fn message_status(
    State(state): State<AppState>,
    Require(principal, _): Require<SmsSend>,
    Path(reference_id): Path<String>,
) -> AppResult<Response> {
    if reference_id.is_empty()
        || reference_id.len() > 64
        || !reference_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(SmsError::NotFound.into());
    }
    let read_all = principal.account.has_permission(permissions::SMS_READ_ALL);
    let transaction = state
        .sms
        .status(&principal.account.id, &reference_id, read_all)
        .await?;
    Ok(axum::Json(json!({ "success": true, "transaction": transaction })).into_response())
}

async fn send_verification(
    State(state): State<AppState>,
    Require(principal, _): Require<SmsSend>,
    Json(body): Json<NumberBody>,
) -> AppResult<Response> {
    let to = number(&body.phone_number)?;
    let sent = state
        .sms
        .send_verification(&principal.account.id, &to)
        .await?;
    Ok(sent_reply(sent))
}

/// Only `code` is read: the seed's client-sent `original_code` is ignored (the server keeps the code).
#[derive(Deserialize)]
struct CodeBody {
    phone_number: String,
    code: String,
}

async fn verify_code(
    State(state): State<AppState>,
    Require(principal, _): Require<SmsSend>,
    Json(body): Json<CodeBody>,
) -> AppResult<Response> {
    let to = number(&body.phone_number)?;
    state
        .sms
        .check_verification(&principal.account.id, &to, body.code.trim())
        .await?;
    Ok(
        axum::Json(json!({ "success": true, "valid": true, "phone_number": to.masked() }))
            .into_response(),
    )
}

#[derive(Deserialize)]
struct RiskBody {
    phone_number: String,
    #[serde(default)]
    account_lifecycle_event: Option<String>,
}

async fn assess_risk(
    State(state): State<AppState>,
    Require(principal, _): Require<SmsLookup>,
    Json(body): Json<RiskBody>,
) -> AppResult<Response> {
    let to = number(&body.phone_number)?;
    let event = body.account_lifecycle_event.as_deref().unwrap_or("create");
    if !LIFECYCLE_EVENTS.contains(&event) {
        return Err(AppError::BadRequest(format!(
            "account_lifecycle_event must be one of {}",
            LIFECYCLE_EVENTS.join(", ")
        )));
    }
    let risk = state
        .sms
        .assess_risk(&principal.account.id, &to, event)
        .await?;
    Ok(axum::Json(json!({
        "success": true,
        "risk_level": risk.level,
        "risk_score": risk.score,
        "recommendation": risk.recommendation,
        "phone_type": risk.phone_type,
        "carrier": risk.carrier,
    }))
    .into_response())
}

/// Template, media and button messages need the WhatsApp Business API, which this server does not speak.
async fn whatsapp_only(_: Require<SmsSend>) -> AppError {
    AppError::Coded {
        status: StatusCode::NOT_IMPLEMENTED,
        code: "not_implemented",
        message: "WhatsApp template, media and button messages are not supported (they need the WhatsApp \
                  Business API); use /api/sms/send-message"
            .into(),
    }
}

/// Telesign's delivery receipt: signed on the raw body (401 otherwise); a repeated receipt or an unknown
/// reference changes nothing and is still a 200, so Telesign stops retrying.
async fn receive_receipt(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let outcome = state.sms.receipt(&body, authorization).await?;
    let status = match outcome {
        Receipt::Updated => "updated",
        Receipt::Unchanged => "unchanged",
        Receipt::UnknownReference => "unknown_reference",
    };
    Ok(axum::Json(json!({ "success": true, "status": status })).into_response())
}

#[derive(Deserialize)]
struct TransactionQuery {
    #[serde(alias = "number")]
    phone_number: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    failed: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

async fn list_transactions(
    State(state): State<AppState>,
    _: Require<SmsReadAll>,
    Query(q): Query<TransactionQuery>,
) -> AppResult<Response> {
    let number = q.phone_number.as_deref().map(number).transpose()?;
    let kind = match q.kind.as_deref() {
        None | Some("") => None,
        Some(k) => Some(TransactionKind::parse(k).ok_or_else(|| {
            AppError::BadRequest(format!(
                "type must be one of {}",
                TransactionKind::ALL.map(|k| k.as_str()).join(", ")
            ))
        })?),
    };
    let failed_only = matches!(q.failed.as_deref(), Some("true" | "1"));
    let int = |v: Option<&str>, default: i64, max: i64, name: &str| -> Result<i64, AppError> {
        match v {
            None => Ok(default),
            Some(t) => t
                .parse::<i64>()
                .ok()
                .filter(|n| (0..=max).contains(n))
                .ok_or_else(|| AppError::BadRequest(format!("{name} must be 0 to {max}"))),
        }
    };
    let limit = int(q.limit.as_deref(), 50, 500, "limit")?.max(1);
    let offset = int(q.offset.as_deref(), 0, i64::MAX, "offset")?;
    let page = state
        .sms
        .transactions(number.as_ref(), kind, failed_only, limit, offset)
        .await?;
    Ok(axum::Json(json!({
        "success": true,
        "transactions": page.transactions,
        "total": page.total,
        "limit": limit,
        "offset": offset,
        "has_more": offset + limit < page.total,
        "summary": page.summary,
    }))
    .into_response())
}
