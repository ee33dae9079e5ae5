//! The hot path's state: the set of revoked sessions, the account cache and the watermarks that keep both in
//! step with other processes sharing the database.
//!
//! Invariants:
//! - Every revocation made on this instance goes through `revoke_session`/`revoke_user_sessions`, which put
//!   the session in the revoked set at once; `sync_changes` adds those made elsewhere (another instance, the
//!   CLI) from the watermark on.
//! - Every account change calls `changed_accounts` (`forget_accounts`, then a message to the other instances),
//!   which bumps the generation first, so a load that raced a change is never cached (`account`).
//! - Revocations and account changes made here are published on the bus after they are stored; the receiving
//!   instances run `sync_changes` at once, which re-reads from their watermarks (so a lost message only waits
//!   for the next poll).
//! - An entry leaves the revoked set only once its session has expired (`prune_revoked`): its tokens then
//!   fail on `exp` anyway.
//! - Idle timeout: what this instance saw (`activity`) is trusted first; the database only for a session new
//!   here or one that looks idle.

use std::sync::{Arc, atomic::Ordering};

use serde_json::json;

use super::{Account, Auth, AuthError, error::StoreContext, store};
use crate::{audit::Event, cluster::Change};

#[derive(Clone, Copy, Default)]
pub(super) struct Watermarks {
    pub(super) revoked_at: i64,
    pub(super) user_updated_at: i64,
    pub(super) role_updated_at: i64,
}

impl Auth {
    /// Records a use of a session that is subject to the idle timeout, or ends it when it was unused for
    /// longer. What this instance saw is checked first; the database (other instances' activity, written
    /// within about a minute) only for a session new here or one that looks idle, so an active session costs
    /// no round trip.
    pub(super) async fn use_unless_idle(&self, session_id: &str) -> Result<(), AuthError> {
        let now = self.now();
        if self
            .activity
            .touch_if_seen_within(session_id, now, self.settings.idle_ms)
        {
            return Ok(());
        }
        let fresh = |last: i64| now.saturating_sub(last) <= self.settings.idle_ms;
        let session = store::find_session(&self.db.pool, session_id)
            .await
            .context("auth store: find_session")?
            .ok_or(AuthError::Unauthorized)?;
        let stored = session.last_seen_at.unwrap_or(session.created_at);
        self.activity.learn_stored(session_id, stored);
        if self.activity.last_seen(session_id).is_some_and(fresh) {
            self.activity.touch(session_id, now);
            return Ok(());
        }
        self.activity.forget(session_id);
        self.revoke_session(session_id, "idle_timeout").await?;
        self.audit.record(
            Event::new("session.idle_timeout", "denied")
                .actor(&session.user_id)
                .detail(json!({"session_id": session_id})),
        );
        Err(AuthError::Unauthorized)
    }

    pub(super) fn is_revoked(&self, session_id: &str) -> bool {
        self.revoked.read().contains_key(session_id)
    }

    pub(super) async fn active_account(&self, user_id: &str) -> Result<Arc<Account>, AuthError> {
        match self.account(user_id).await? {
            Some(a) if a.active => Ok(a),
            _ => Err(AuthError::Unauthorized),
        }
    }

    /// The account from the cache, or loaded from the database and cached.
    pub async fn account(&self, user_id: &str) -> Result<Option<Arc<Account>>, AuthError> {
        if let Some(a) = self.accounts.read().get(user_id) {
            return Ok(Some(a.clone()));
        }
        let generation = self.accounts_generation.load(Ordering::SeqCst);
        let Some(row) = store::find_user(&self.db.pool, user_id)
            .await
            .context("auth store: find_user")?
        else {
            return Ok(None);
        };
        let permissions = store::find_role_permissions(&self.db.pool, &row.role)
            .await
            .context("auth store: find_role_permissions")?;
        let (mfa_required, mfa_enrolled) = store::find_mfa_flags(&self.db.pool, user_id)
            .await
            .context("auth store: find_mfa_flags")?;
        let account = Arc::new(Account {
            id: row.id,
            username: row.username,
            role: row.role,
            permissions,
            active: row.is_active,
            mfa_required,
            mfa_enrolled,
        });
        let mut cache = self.accounts.write();
        if self.accounts_generation.load(Ordering::SeqCst) == generation {
            cache.insert(account.id.clone(), account.clone());
        }
        Ok(Some(account))
    }

    /// An account (`Some`) or every account (`None`: a role's permissions) changed here: drops the cached
    /// copies and tells the other instances. Call it after the change is stored.
    pub(super) fn changed_accounts(&self, user_id: Option<&str>) {
        self.forget_accounts(user_id);
        self.bus.publish(match user_id {
            Some(_) => Change::Accounts,
            None => Change::Roles,
        });
    }

    fn forget_accounts(&self, user_id: Option<&str>) {
        self.accounts_generation.fetch_add(1, Ordering::SeqCst);
        let mut cache = self.accounts.write();
        match user_id {
            Some(id) => {
                cache.remove(id);
            }
            None => cache.clear(),
        }
    }

    /// Ends one session; true when it was live (a second revocation changes nothing).
    pub async fn revoke_session(&self, session_id: &str, reason: &str) -> Result<bool, AuthError> {
        let Some(expires_at) =
            store::revoke_session(self.db.writer(), session_id, reason, self.now())
                .await
                .context("auth store: revoke_session")?
        else {
            return Ok(false);
        };
        self.revoked
            .write()
            .insert(session_id.to_string(), expires_at);
        self.bus.publish(Change::Sessions);
        Ok(true)
    }

    /// Ends every session of a user except `keep`; how many were live.
    pub async fn revoke_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        reason: &str,
    ) -> Result<usize, AuthError> {
        Ok(self
            .revoke_user_sessions_listed(user_id, keep, reason)
            .await?
            .len())
    }

    /// Ends every session of a user except `keep`; the ids of those that were live.
    pub(super) async fn revoke_user_sessions_listed(
        &self,
        user_id: &str,
        keep: Option<&str>,
        reason: &str,
    ) -> Result<Vec<String>, AuthError> {
        let revoked =
            store::revoke_user_sessions(self.db.writer(), user_id, keep, reason, self.now())
                .await
                .context("auth store: revoke_user_sessions")?;
        let ids: Vec<String> = revoked.iter().map(|(id, _)| id.clone()).collect();
        self.revoked.write().extend(revoked);
        if !ids.is_empty() {
            self.bus.publish(Change::Sessions);
        }
        Ok(ids)
    }

    /// Picks up revocations and account changes made by other processes sharing the database (another
    /// instance, the CLI). Changes made here are applied at once; this closes the gap for the others.
    pub async fn sync_changes(&self) -> Result<(), AuthError> {
        for (session_id, last_seen) in self.activity.due() {
            store::update_session_seen(self.db.writer(), &session_id, last_seen)
                .await
                .context("auth store: update_session_seen")?;
            self.activity.mark_stored(&session_id, last_seen);
        }
        let seen = *self.watermarks.lock();
        let mut next = seen;
        let revoked = store::find_sessions_revoked_since(&self.db.pool, seen.revoked_at)
            .await
            .context("auth store: find_sessions_revoked_since")?;
        if !revoked.is_empty() {
            let mut set = self.revoked.write();
            for (id, expires_at, revoked_at) in revoked {
                next.revoked_at = next.revoked_at.max(revoked_at);
                set.insert(id, expires_at);
            }
        }
        for (id, updated_at) in store::find_users_updated_since(&self.db.pool, seen.user_updated_at)
            .await
            .context("auth store: find_users_updated_since")?
        {
            next.user_updated_at = next.user_updated_at.max(updated_at);
            self.forget_accounts(Some(&id));
        }
        let role_updated_at = store::find_roles_updated_max(&self.db.pool)
            .await
            .context("auth store: find_roles_updated_max")?;
        if role_updated_at > seen.role_updated_at {
            next.role_updated_at = role_updated_at;
            self.forget_accounts(None);
        }
        *self.watermarks.lock() = next;
        Ok(())
    }

    /// Drops expired entries from the revoked set (they fail on `exp` anyway).
    pub fn prune_revoked(&self) {
        let now = self.now();
        self.activity
            .prune(now.saturating_sub(self.settings.idle_ms));
        self.revoked
            .write()
            .retain(|_, expires_at| *expires_at > now);
    }
}
