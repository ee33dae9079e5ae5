//! A user's view of their own sessions (`/api/me/sessions`): list the live ones, end one.
//!
//! Invariants:
//! - Only the caller's own sessions are ever reached: another user's session id answers `NotFound`, the same
//!   as an unknown one, so nobody can probe or end another user's sessions here.
//! - Ended and revoked sessions are not listed (they are not active); no token is ever shown.
//! - Ending goes through `revoke_session`, so the credential fails on this instance at once and on others at
//!   their next `sync_changes`; each ended session is one `session.revoked_by_user` audit event.

use serde_json::json;

use super::{Auth, AuthError, Principal, UserSession, error::StoreContext, store};
use crate::audit::Event;

/// `sessions.revoke_reason` of a session its own user ended from another one.
const REVOKED_BY_USER: &str = "user_revoked";

impl Auth {
    /// The caller's live sessions, newest first (`current` marks the one in use).
    pub async fn own_sessions(&self, principal: &Principal) -> Result<Vec<UserSession>, AuthError> {
        let mut sessions = self
            .sessions_of(principal.account.id.as_str(), principal.session_id.as_str())
            .await?;
        sessions.retain(|s| s.revoked_at.is_none());
        Ok(sessions)
    }

    /// Ends one of the caller's sessions at once; `NotFound` when the caller has no such session. True when it
    /// was live.
    pub async fn revoke_own_session(
        &self,
        principal: &Principal,
        session_id: &str,
    ) -> Result<bool, AuthError> {
        let user_id = principal.account.id.as_str();
        let session = store::find_session(&self.db.pool, session_id)
            .await
            .context("auth store: find_session")?;
        if session.is_none_or(|s| s.user_id != user_id) {
            return Err(AuthError::NotFound);
        }
        let was_live = self.revoke_session(session_id, REVOKED_BY_USER).await?;
        self.audit.record(
            Event::new("session.revoked_by_user", "ok")
                .actor(&principal.account.id)
                .detail(json!({"session_id": session_id, "was_live": was_live})),
        );
        Ok(was_live)
    }
}
