//! Conversations owned by users, their messages, usage accounting, and one chat turn: store the user's message,
//! run the agent over a window of the history, store what it did and said.
//!
//! Invariants: a conversation is only ever read or written with its owner; the user's message is stored
//! before the model is asked, so a failed model call loses nothing; the history sent to the model is the last
//! `history_window` messages, so a long conversation costs the same per turn as a short one; that window comes
//! from the conversation's committed messages kept in memory (`recent`) when every message of it is there, else
//! from the database.

mod recent;
pub mod store;
mod transcript;

use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc;

use crate::{
    agent::{
        Agent, AgentEvent, ToolRecord,
        llm::{LlmError, Message, Usage},
    },
    auth::Principal,
    clock::SharedClock,
    ids::{ConversationId, UserId},
    store::Db,
    telemetry::tally::{EventKind, Tally},
    tools::{Caller, ToolContext},
};
use recent::RecentMessages;
use store::{MessageRow, NewMessage, SessionRow};
use transcript::{
    assistant_message, from_first_user, history_message, stored_message, user_message,
};

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_MESSAGE_CHARS: usize = 10_000;
/// Memory for the recent messages of active conversations (`recent`), in all.
const RECENT_MESSAGES_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("Session not found or access denied")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("Daily token quota exceeded")]
    /// Until the next UTC day, on the application clock.
    QuotaExceeded { retry_after_secs: u64 },
    /// The model failed; the user's message is stored.
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ChatError {
    fn from(e: sqlx::Error) -> Self {
        // Kept as the cause: the HTTP answer asks `store::is_unavailable` of it (503, not 500).
        ChatError::Internal(e.into())
    }
}

pub struct Settings {
    pub history_window: usize,
    /// Tokens per user per UTC day; 0 is no limit.
    pub daily_token_quota: i64,
}

pub struct Chat {
    db: Db,
    clock: SharedClock,
    agent: Agent,
    settings: Settings,
    /// Tokens per user and model, for the dashboards.
    tally: Tally,
    /// Committed messages of active conversations, so a window is rarely read back from the database.
    recent: Arc<RecentMessages>,
}

/// A finished turn: the stored assistant message and what it cost.
pub struct Turn {
    pub session_id: ConversationId,
    pub message: MessageRow,
    pub tool_calls: Vec<ToolRecord>,
    pub usage: Usage,
}

impl Chat {
    pub fn new(db: Db, clock: SharedClock, agent: Agent, settings: Settings, tally: Tally) -> Chat {
        let recent = Arc::new(RecentMessages::new(
            settings.history_window.max(1),
            RECENT_MESSAGES_BYTES,
        ));
        Chat {
            db,
            clock,
            agent,
            settings,
            tally,
            recent,
        }
    }

    fn day(&self) -> String {
        crate::clock::rfc3339(self.clock.now_ms())
            .chars()
            .take(10)
            .collect()
    }

    /// Creates a conversation; its title defaults from the first message.
    pub async fn create_session(
        &self,
        user_id: &UserId,
        title: Option<String>,
        initial_message: Option<String>,
    ) -> Result<SessionRow, ChatError> {
        let title = match title
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
        {
            Some(t) => validate_title(t)?,
            None => initial_message
                .as_deref()
                .map(default_title)
                .unwrap_or_else(|| "New Chat".into()),
        };
        let initial = initial_message.map(validate_message).transpose()?;
        let id = ConversationId::from(uuid::Uuid::new_v4().to_string());
        // One piece of the group commit: the conversation and its first message.
        let conversation = store::NewConversation {
            title,
            first: store::Append {
                user_id: user_id.to_string(),
                session_id: id.to_string(),
                day: self.day(),
                messages: initial
                    .map(|text| vec![user_message(text)])
                    .unwrap_or_default(),
                now: self.clock.now_ms(),
            },
            id,
        };
        Ok(self.db.group().run(conversation).await?)
    }

    pub async fn find_session(
        &self,
        user_id: &UserId,
        id: &ConversationId,
    ) -> Result<SessionRow, ChatError> {
        store::find_session(&self.db.pool, user_id.as_str(), id.as_str())
            .await?
            .ok_or(ChatError::NotFound)
    }

    pub async fn list_sessions(
        &self,
        user_id: &UserId,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<SessionRow>, i64), ChatError> {
        let rows = store::find_sessions(&self.db.pool, user_id.as_str(), limit, offset).await?;
        Ok((
            rows,
            store::count_sessions(&self.db.pool, user_id.as_str()).await?,
        ))
    }

    /// Deletes a conversation and (by cascade) its messages.
    pub async fn delete_session(
        &self,
        user_id: &UserId,
        id: &ConversationId,
    ) -> Result<(), ChatError> {
        if store::delete_session(self.db.writer(), user_id.as_str(), id.as_str()).await? {
            self.recent.forget(id);
            Ok(())
        } else {
            Err(ChatError::NotFound)
        }
    }

    /// The last `limit` messages of a conversation, with the conversation.
    pub async fn history(
        &self,
        user_id: &UserId,
        id: &ConversationId,
        limit: i64,
    ) -> Result<(SessionRow, Vec<MessageRow>), ChatError> {
        let session = self.find_session(user_id, id).await?;
        let messages = store::find_last_messages(&self.db.pool, id.as_str(), limit).await?;
        Ok((session, messages))
    }

    /// Tokens used today by the user, and the quota (0: none).
    pub async fn usage_today(&self, user_id: &UserId) -> Result<(i64, i64), ChatError> {
        Ok((
            store::find_day_usage(&self.db.pool, user_id.as_str(), &self.day()).await?,
            self.settings.daily_token_quota,
        ))
    }

    pub async fn user_totals(&self, user_id: &UserId) -> Result<(i64, i64, i64, i64), ChatError> {
        Ok(store::find_user_totals(&self.db.pool, user_id.as_str()).await?)
    }

    /// One turn in a conversation the caller owns.
    pub async fn send(
        &self,
        caller: &Principal,
        session_id: &ConversationId,
        text: String,
        events: Option<mpsc::UnboundedSender<AgentEvent>>,
    ) -> Result<Turn, ChatError> {
        let text = validate_message(text)?;
        self.check_quota(&caller.account.id).await?;
        let stored = self
            .append(&caller.account.id, session_id, vec![user_message(text)])
            .await?;
        let history = self.window(session_id, &stored).await?;
        self.run_turn(caller, session_id, history, events).await
    }

    /// Seed 000's stateless chat: the client's messages (user and assistant only; never a system prompt)
    /// become a new conversation, recorded like any other.
    pub async fn send_stateless(
        &self,
        caller: &Principal,
        messages: Vec<(String, String)>,
    ) -> Result<Turn, ChatError> {
        let messages: Vec<(String, String)> = messages
            .into_iter()
            .filter(|(role, _)| role == "user" || role == "assistant")
            .collect();
        if !messages.iter().any(|(r, _)| r == "user") {
            return Err(ChatError::Invalid(
                "messages must contain a user message".into(),
            ));
        }
        if messages.last().is_none_or(|(r, _)| r != "user") {
            return Err(ChatError::Invalid(
                "the last message must be the user's".into(),
            ));
        }
        let account = &caller.account;
        self.check_quota(&account.id).await?;
        let session = self.create_session(&account.id, None, None).await?;
        let mut rows = Vec::new();
        for (role, content) in messages {
            let content = validate_message(content)?;
            rows.push(if role == "user" {
                user_message(content)
            } else {
                assistant_message(content, Usage::default(), &[], None)
            });
        }
        let stored = self.append(&account.id, &session.id, rows).await?;
        let history = self.window(&session.id, &stored).await?;
        self.run_turn(caller, &session.id, history, None).await
    }

    /// Appends messages to a conversation `user_id` owns, as one piece of the group commit: the rows once stored.
    /// Once committed, they are remembered in `recent` (in commit order, by the group commit's writer).
    async fn append(
        &self,
        user_id: &UserId,
        session_id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<MessageRow>, ChatError> {
        let append = store::Append {
            user_id: user_id.to_string(),
            session_id: session_id.to_string(),
            day: self.day(),
            messages,
            now: self.clock.now_ms(),
        };
        let (recent, conversation) = (self.recent.clone(), session_id.clone());
        let stored = self
            .db
            .group()
            .run_then(append, move |stored: &Option<Vec<MessageRow>>| {
                if let Some(rows @ [first, ..]) = stored.as_deref() {
                    let messages = rows.iter().map(stored_message).collect();
                    recent.remember(&conversation, first.seq, messages);
                }
            })
            .await?;
        stored.ok_or(ChatError::NotFound)
    }

    /// The model's history after `stored` was appended: the window of messages up to the last of them, from
    /// `recent` when it holds all of it, else from the database (and then remembered).
    async fn window(
        &self,
        session_id: &ConversationId,
        stored: &[MessageRow],
    ) -> Result<Vec<Message>, ChatError> {
        let upto = stored.last().map_or(0, |m| m.seq);
        let len = self.settings.history_window.max(1);
        if let Some(window) = self.recent.window(session_id, upto, len) {
            return Ok(from_first_user(window));
        }
        let rows =
            store::find_history_window(&self.db.pool, session_id.as_str(), upto, len).await?;
        let first = rows.first().map_or(upto, |r| r.seq);
        let window: Vec<Message> = rows.into_iter().map(history_message).collect();
        self.recent.remember(session_id, first, window.clone());
        Ok(from_first_user(window))
    }

    async fn check_quota(&self, user_id: &UserId) -> Result<(), ChatError> {
        if self.settings.daily_token_quota > 0 {
            let used = store::find_day_usage(&self.db.pool, user_id.as_str(), &self.day()).await?;
            if used >= self.settings.daily_token_quota {
                let seconds_into_day = self.clock.now_ms().div_euclid(1000).rem_euclid(86_400);
                let retry_after_secs = u64::try_from(86_400 - seconds_into_day).unwrap_or(60);
                return Err(ChatError::QuotaExceeded { retry_after_secs });
            }
        }
        Ok(())
    }

    async fn run_turn(
        &self,
        caller: &Principal,
        session_id: &ConversationId,
        history: Vec<Message>,
        events: Option<mpsc::UnboundedSender<AgentEvent>>,
    ) -> Result<Turn, ChatError> {
        let account = &caller.account;
        let tool_caller = Caller::from(caller);
        let ctx = ToolContext::new(&tool_caller, Some(session_id));
        let outcome = self.agent.run(&tool_caller, &ctx, history, events).await?;
        // The steps (assistant tool calls and tool results) are stored before the answer, in order.
        self.tally.add(
            EventKind::Llm,
            account.id.as_str(),
            self.agent.provider.model(),
            outcome.usage.input_tokens + outcome.usage.output_tokens,
        );
        let mut rows = transcript::step_messages(&outcome.steps, &outcome.tool_calls);
        let model = json!({ "model": self.agent.provider.model(), "api": self.agent.provider.name(), "capped": outcome.capped });
        rows.push(assistant_message(
            outcome.content,
            outcome.usage,
            &outcome.tool_calls,
            Some(model),
        ));
        let mut stored = self.append(&account.id, session_id, rows).await?;
        let message = stored
            .pop()
            .ok_or_else(|| ChatError::Internal(anyhow::anyhow!("no message stored")))?;
        Ok(Turn {
            session_id: session_id.clone(),
            message,
            tool_calls: outcome.tool_calls,
            usage: outcome.usage,
        })
    }
}

pub fn validate_message(text: String) -> Result<String, ChatError> {
    let n = text.chars().count();
    if text.trim().is_empty() {
        return Err(ChatError::Invalid("message must not be empty".into()));
    }
    if n > MAX_MESSAGE_CHARS {
        return Err(ChatError::Invalid(format!(
            "message must be at most {MAX_MESSAGE_CHARS} characters"
        )));
    }
    if text.contains('\0') {
        return Err(ChatError::Invalid(
            "message must not contain NUL characters".into(),
        ));
    }
    Ok(text)
}

fn validate_title(title: String) -> Result<String, ChatError> {
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ChatError::Invalid(format!(
            "title must be at most {MAX_TITLE_CHARS} characters"
        )));
    }
    if title.chars().any(char::is_control) {
        return Err(ChatError::Invalid(
            "title must not contain control characters".into(),
        ));
    }
    Ok(title)
}

fn default_title(message: &str) -> String {
    let line = message.lines().next().unwrap_or("").trim();
    let mut title: String = line.chars().filter(|c| !c.is_control()).take(60).collect();
    if line.chars().count() > 60 {
        title.push('…');
    }
    if title.is_empty() {
        "New Chat".into()
    } else {
        title
    }
}
