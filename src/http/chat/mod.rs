//! Seed-002 chat routes (`/chat/...`, bearer or cookie) and seed-000's stateless `POST /api/chat` (cookie +
//! CSRF). All need `chat:use`; every conversation route answers a foreign id exactly like a missing one.
//! A turn asked for as `text/event-stream` is answered by `stream.rs`.

use axum::{
    extract::{FromRequestParts, Path, State},
    http::{HeaderMap, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod stream;
mod views;

use views::{
    Deleted, History, MessageView, OneSession, SessionCreated, SessionPage, SessionTokens,
    SessionView, StatelessAnswer, StatelessToolCall, Today, UserTokens, metadata, turn_view,
};

use super::{
    error::{AppError, AppResult},
    extract::{CSRF_HEADER, ChatUse, Json, OptionalJson, Query, Require, cookie},
    routes::Routes,
};
use crate::{
    chat::ChatError,
    clock::rfc3339,
    ids::{ApprovalId, ConversationId},
    state::AppState,
};

pub fn router() -> Routes {
    Routes::new()
        .post("/chat/session/new", create_session)
        .post("/chat/message", send_message)
        .get("/chat/sessions", list_sessions)
        .get("/chat/session/{id}", get_session)
        .delete("/chat/session/{id}", delete_session)
        .get("/chat/session/{id}/history", history)
        .get("/chat/session/{id}/tokens", session_tokens)
        .get("/chat/user/tokens", user_tokens)
        .post("/api/chat", stateless_chat)
        // Not `{id}`: an approval id names no conversation (tests pick conversation routes by `{id}`).
        .post("/chat/approvals/{approval_id}", decide_approval)
        .post("/chat/approvals/{approval_id}/code", send_approval_code)
}

/// Conversation ids are UUIDs; anything else cannot name one and gets the same 404.
fn session_id(id: &str) -> AppResult<ConversationId> {
    if id.len() <= 64 && uuid::Uuid::parse_str(id).is_ok() {
        Ok(ConversationId::from(id))
    } else {
        Err(ChatError::NotFound.into())
    }
}

#[derive(Default, Deserialize)]
struct NewSession {
    title: Option<String>,
    initial_message: Option<String>,
}

async fn create_session(
    State(state): State<AppState>,
    Require(p, ..): Require<ChatUse>,
    OptionalJson(body): OptionalJson<NewSession>,
) -> AppResult<Response> {
    // The body is optional: an empty one starts an untitled conversation.
    let NewSession {
        title,
        initial_message,
    } = body.unwrap_or_default();
    let s = state
        .chat
        .create_session(&p.account.id, title, initial_message)
        .await?;
    Ok(axum::Json(SessionCreated {
        success: true,
        session_id: &s.id,
        title: &s.title,
        created_at: rfc3339(s.created_at),
        message: "Chat session created",
    })
    .into_response())
}

#[derive(Deserialize)]
struct SendMessage {
    session_id: String,
    message: String,
}

/// A chat turn: JSON, or a stream of server-sent events (`token`, `tool_call`, `tool_result`, `done`, `error`)
/// when the client accepts `text/event-stream`. A streamed turn runs to the end and is stored even if the
/// client goes away; a plain one is cancelled with its request.
async fn send_message(
    State(state): State<AppState>,
    Require(p, ..): Require<ChatUse>,
    headers: HeaderMap,
    Json(body): Json<SendMessage>,
) -> AppResult<Response> {
    let id = session_id(&body.session_id)?;
    let streaming = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !streaming {
        let turn = state.chat.send(&p, &id, body.message, None).await?;
        return Ok(axum::Json(turn_view(&turn)).into_response());
    }
    // Refuse a bad message or a foreign conversation with a plain error before any stream starts.
    let text = crate::chat::validate_message(body.message)?;
    state.chat.find_session(&p.account.id, &id).await?;
    Ok(stream::turn(state, p, id, text))
}

#[derive(Deserialize)]
struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn list_sessions(
    State(state): State<AppState>,
    Require(p, ..): Require<ChatUse>,
    Query(page): Query<Page>,
) -> AppResult<Response> {
    let limit = page.limit.unwrap_or(20).clamp(1, 100);
    let offset = page.offset.unwrap_or(0).max(0);
    let (rows, total) = state
        .chat
        .list_sessions(&p.account.id, limit, offset)
        .await?;
    Ok(axum::Json(SessionPage {
        success: true,
        sessions: rows.iter().map(SessionView::of).collect(),
        total,
        limit,
        offset,
        has_more: offset + i64::try_from(rows.len()).unwrap_or(0) < total,
    })
    .into_response())
}

async fn get_session(
    State(state): State<AppState>,
    Require(p, ..): Require<ChatUse>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let s = state
        .chat
        .find_session(&p.account.id, &session_id(&id)?)
        .await?;
    Ok(axum::Json(OneSession {
        session: SessionView::of(&s),
        success: true,
    })
    .into_response())
}

async fn delete_session(
    State(state): State<AppState>,
    Require(p, ..): Require<ChatUse>,
    Path(id): Path<String>,
) -> AppResult<axum::Json<Deleted>> {
    state
        .chat
        .delete_session(&p.account.id, &session_id(&id)?)
        .await?;
    Ok(axum::Json(Deleted {
        success: true,
        message: "Session deleted",
    }))
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<i64>,
}

async fn history(
    State(state): State<AppState>,
    Require(p, ..): Require<ChatUse>,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> AppResult<Response> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let (session, rows) = state
        .chat
        .history(&p.account.id, &session_id(&id)?, limit)
        .await?;
    let messages = rows
        .iter()
        .map(|m| MessageView {
            id: &m.id,
            role: &m.role,
            content: &m.content,
            timestamp: rfc3339(m.created_at),
            tool_calls: m
                .tool_calls
                .as_deref()
                .and_then(|t| serde_json::from_str::<Value>(t).ok()),
            tool_call_id: m.tool_call_id.as_deref(),
            metadata: metadata(&m.metadata),
        })
        .collect();
    Ok(axum::Json(History {
        success: true,
        session_id: &session.id,
        session: SessionView::of(&session),
        messages,
        total_messages: session.message_count,
    })
    .into_response())
}

async fn session_tokens(
    State(state): State<AppState>,
    Require(p, ..): Require<ChatUse>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let s = state
        .chat
        .find_session(&p.account.id, &session_id(&id)?)
        .await?;
    Ok(axum::Json(SessionTokens {
        success: true,
        session_id: &s.id,
        total_tokens_used: s.input_tokens + s.output_tokens,
        input_tokens: s.input_tokens,
        output_tokens: s.output_tokens,
        message_count: s.message_count,
    })
    .into_response())
}

async fn user_tokens(
    State(state): State<AppState>,
    Require(p, ..): Require<ChatUse>,
) -> AppResult<Response> {
    let (sessions, messages, input, output) = state.chat.user_totals(&p.account.id).await?;
    let (today, quota) = state.chat.usage_today(&p.account.id).await?;
    Ok(axum::Json(UserTokens {
        success: true,
        user_id: &p.account.id,
        total_tokens_used: input + output,
        input_tokens: input,
        output_tokens: output,
        sessions,
        messages,
        today: Today {
            tokens_used: today,
            daily_quota: (quota > 0).then_some(quota),
        },
    })
    .into_response())
}

/// Seed 000 answered 401 when the cookie or the CSRF header was missing (and 403 for a wrong CSRF token).
pub struct SeedCookieAndCsrf;

impl FromRequestParts<AppState> for SeedCookieAndCsrf {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let has_cookie = cookie(&parts.headers, state.config.session_cookie_name()).is_some();
        if !has_cookie || !parts.headers.contains_key(CSRF_HEADER) {
            return Err(AppError::Unauthorized);
        }
        Ok(SeedCookieAndCsrf)
    }
}

async fn stateless_chat(
    State(state): State<AppState>,
    _seed: SeedCookieAndCsrf,
    Require(p, ..): Require<ChatUse>,
    Json(body): Json<Value>,
) -> AppResult<Response> {
    let Some(list) = body.get("messages").and_then(Value::as_array) else {
        return Err(AppError::BadRequest("messages must be a list".into()));
    };
    let mut messages = Vec::with_capacity(list.len());
    for m in list {
        match (
            m.get("role").and_then(Value::as_str),
            m.get("content").and_then(Value::as_str),
        ) {
            (Some(role), Some(content)) => messages.push((role.to_string(), content.to_string())),
            _ => {
                return Err(AppError::BadRequest(
                    "each message needs a role and a content".into(),
                ));
            }
        }
    }
    let turn = state.chat.send_stateless(&p, messages).await?;
    let tool_calls = turn
        .tool_calls
        .iter()
        .map(|c| StatelessToolCall {
            name: &c.name,
            arguments: serde_json::from_str(&c.arguments)
                .unwrap_or_else(|_| Value::String(c.arguments.clone())),
        })
        .collect();
    Ok(axum::Json(StatelessAnswer {
        response: &turn.message.content,
        tool_calls,
        session_id: &turn.session_id,
    })
    .into_response())
}

#[derive(Deserialize)]
struct Decision {
    approve: bool,
    /// For a step-up approval: a fresh code, and its method (`sms` or `totp`).
    code: Option<String>,
    method: Option<String>,
}

#[derive(Serialize)]
struct ApprovalDecided {
    success: bool,
    approval_id: ApprovalId,
    approved: bool,
}

/// The owner of a conversation approves or refuses a tool call waiting under the `ask` policy; approving a
/// step-up call needs a fresh second-factor code (the mfa service verifies it, decides, and audits both).
async fn decide_approval(
    State(state): State<AppState>,
    Require(p, ..): Require<ChatUse>,
    Path(id): Path<ApprovalId>,
    Json(body): Json<Decision>,
) -> AppResult<axum::Json<ApprovalDecided>> {
    state
        .mfa
        .decide_approval(
            &p.account.id,
            &id,
            body.approve,
            body.code.as_deref(),
            body.method.as_deref(),
        )
        .await?;
    Ok(axum::Json(ApprovalDecided {
        success: true,
        approval_id: id,
        approved: body.approve,
    }))
}

#[derive(Serialize)]
struct ApprovalCodeSent {
    success: bool,
    approval_id: ApprovalId,
}

/// Sends an SMS code for a step-up approval to the approver's verified phone (30 s apart, at most five).
async fn send_approval_code(
    State(state): State<AppState>,
    Require(p, ..): Require<ChatUse>,
    Path(id): Path<ApprovalId>,
) -> AppResult<axum::Json<ApprovalCodeSent>> {
    state.mfa.send_approval_code(&p.account.id, &id).await?;
    Ok(axum::Json(ApprovalCodeSent {
        success: true,
        approval_id: id,
    }))
}
