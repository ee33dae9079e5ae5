//! An admin's view of another user's sessions: list them, end one, end them all.
//!
//! Invariants:
//! - A session is only ever reached through its user: a session id of another user answers `NotFound`, the
//!   same as an unknown one, so an admin cannot probe or end sessions through the wrong user.
//! - No token is ever shown: sessions hold none (refresh tokens are stored as hashes, in their own table).
//! - Ending goes through `revoke_session`/`revoke_user_sessions_listed`, so the credential fails on this
//!   instance at once and on others at their next `sync_changes`; each ended session is one
//!   `session.revoked_by_admin` audit event.

use serde_json::json;

use super::{Auth, AuthError, Principal, error::StoreContext, store};
use crate::audit::Event;

/// How many sessions of one user the list shows (newest first).
const MAX_LISTED_SESSIONS: i64 = 200;
/// `sessions.revoke_reason` of a session an admin ended.
const REVOKED_BY_ADMIN: &str = "admin_revoked";

/// One unexpired session of a user, as an admin sees it.
pub struct UserSession {
    pub id: String,
    /// `password` (a person's login) or `service` (a client-credentials grant).
    pub kind: String,
    pub created_at: i64,
    /// The latest activity this instance or the database knows of; `None` when none since the login.
    pub last_seen_at: Option<i64>,
    pub expires_at: i64,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The admin is using this very session.
    pub current: bool,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
}

impl Auth {
    /// The unexpired sessions (live or revoked) of a user, newest first. Audited: they show addresses.
    pub async fn user_sessions(
        &self,
        admin: &Principal,
        user_id: &str,
    ) -> Result<Vec<UserSession>, AuthError> {
        self.find_user(user_id).await?;
        let sessions = self.sessions_of(user_id, admin.session_id.as_str()).await?;
        self.audit.record(
            Event::new("session.listed_by_admin", "ok")
                .actor(&admin.account.id)
                .subject(user_id)
                .detail(json!({"sessions": sessions.len()})),
        );
        Ok(sessions)
    }

    /// The unexpired sessions (live or revoked) of a user, newest first; `current` marks `current_session`.
    pub(super) async fn sessions_of(
        &self,
        user_id: &str,
        current_session: &str,
    ) -> Result<Vec<UserSession>, AuthError> {
        let rows =
            store::find_user_sessions(&self.db.pool, user_id, self.now(), MAX_LISTED_SESSIONS)
                .await
                .context("auth store: find_user_sessions")?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let seen_here = self.activity.last_seen(&r.id);
                UserSession {
                    current: current_session == r.id.as_str(),
                    last_seen_at: r.last_seen_at.max(seen_here),
                    id: r.id,
                    kind: r.kind,
                    created_at: r.created_at,
                    expires_at: r.expires_at,
                    client_ip: r.client_ip,
                    user_agent: r.user_agent,
                    revoked_at: r.revoked_at,
                    revoke_reason: r.revoke_reason,
                }
            })
            .collect())
    }

    /// Ends one session of a user at once; `NotFound` when the user has no such session. True when it was
    /// live (ending an ended session again changes nothing, and is still audited).
    pub async fn revoke_user_session(
        &self,
        admin: &Principal,
        user_id: &str,
        session_id: &str,
    ) -> Result<bool, AuthError> {
        let session = store::find_session(&self.db.pool, session_id)
            .await
            .context("auth store: find_session")?;
        if session.is_none_or(|s| s.user_id != user_id) {
            return Err(AuthError::NotFound);
        }
        let was_live = self.revoke_session(session_id, REVOKED_BY_ADMIN).await?;
        self.audit.record(
            Event::new("session.revoked_by_admin", "ok")
                .actor(&admin.account.id)
                .subject(user_id)
                .detail(json!({"session_id": session_id, "was_live": was_live})),
        );
        Ok(was_live)
    }

    /// Ends every live session of a user at once (but the one the admin is using, when it is their own);
    /// how many ended. One audit event per ended session, or one saying none was live.
    pub async fn revoke_all_user_sessions(
        &self,
        admin: &Principal,
        user_id: &str,
    ) -> Result<usize, AuthError> {
        self.find_user(user_id).await?;
        let keep = (admin.account.id == user_id).then_some(admin.session_id.as_str());
        let ended = self
            .revoke_user_sessions_listed(user_id, keep, REVOKED_BY_ADMIN)
            .await?;
        let event = || {
            Event::new("session.revoked_by_admin", "ok")
                .actor(&admin.account.id)
                .subject(user_id)
        };
        if ended.is_empty() {
            self.audit
                .record(event().detail(json!({"all": true, "sessions": 0})));
        }
        for session_id in &ended {
            self.audit
                .record(event().detail(json!({"all": true, "session_id": session_id})));
        }
        Ok(ended.len())
    }
}
