//! Second-factor enrolment for the caller: `/api/me/phone` (SMS codes) and `/api/me/mfa/*` (TOTP, the list of
//! factors). These routes stay open to a session whose role requires a factor it has not enrolled yet.

use axum::{
    extract::State,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::{error::AppResult, extract::Json, routes::Routes};
use crate::{auth::Principal, state::AppState};

pub fn router() -> Routes {
    Routes::new()
        .post("/api/me/phone", enrol_phone)
        .post("/api/me/phone/verify", verify_phone)
        .delete("/api/me/phone", remove_phone)
        .get("/api/me/mfa", list_factors)
        .post("/api/me/mfa/totp", start_totp)
        .post("/api/me/mfa/totp/confirm", confirm_totp)
        .delete("/api/me/mfa/totp", remove_totp)
}

#[derive(Deserialize)]
struct PhoneBody {
    phone_number: String,
}

async fn enrol_phone(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<PhoneBody>,
) -> AppResult<Response> {
    let masked = state
        .mfa
        .enrol_phone(&principal.account.id, &body.phone_number)
        .await?;
    Ok(axum::Json(json!({
        "success": true,
        "phone_number": masked,
        "message": "A code was sent to the phone; confirm it at /api/me/phone/verify",
    }))
    .into_response())
}

#[derive(Deserialize)]
struct CodeBody {
    code: String,
}

async fn verify_phone(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CodeBody>,
) -> AppResult<Response> {
    state
        .mfa
        .confirm_phone(&principal.account.id, &body.code)
        .await?;
    Ok(axum::Json(json!({ "success": true, "message": "Phone verified" })).into_response())
}

async fn remove_phone(State(state): State<AppState>, principal: Principal) -> AppResult<Response> {
    state.mfa.remove_phone(&principal.account.id).await?;
    Ok(axum::Json(json!({ "success": true, "message": "Phone removed" })).into_response())
}

async fn list_factors(State(state): State<AppState>, principal: Principal) -> AppResult<Response> {
    let factors = state.mfa.find_factors(&principal.account.id).await?;
    Ok(axum::Json(json!({ "success": true, "factors": factors })).into_response())
}

async fn start_totp(State(state): State<AppState>, principal: Principal) -> AppResult<Response> {
    let enrolment = state.mfa.start_totp(&principal.account).await?;
    Ok(axum::Json(json!({
        "success": true,
        "secret": enrolment.secret,
        "otpauth_uri": enrolment.otpauth_uri,
    }))
    .into_response())
}

async fn confirm_totp(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CodeBody>,
) -> AppResult<Response> {
    let recovery_codes = state
        .mfa
        .confirm_totp(&principal.account.id, &body.code)
        .await?;
    Ok(axum::Json(json!({
        "success": true,
        "recovery_codes": recovery_codes,
        "message": "Authenticator confirmed; keep the recovery codes somewhere safe, they are shown only now",
    }))
    .into_response())
}

async fn remove_totp(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CodeBody>,
) -> AppResult<Response> {
    state
        .mfa
        .remove_totp(&principal.account.id, &body.code)
        .await?;
    Ok(axum::Json(json!({ "success": true, "message": "Authenticator removed" })).into_response())
}
