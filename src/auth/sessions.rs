//! Sessions: password login (with lock escalation), refresh-token rotation, logout, and the OAuth2 client
//! credentials grant for service accounts.
//!
//! Invariants:
//! - Every login creates a server-side session row before any credential naming it is handed out.
//! - Login failures get one answer whatever the cause (unknown, wrong, locked, disabled), after the same
//!   hashing work; attempts during a lock are refused without counting, so the lock lifts on time.
//! - A refresh token is stored only as its SHA-256; exactly one of several concurrent uses wins, and a used
//!   token shown again after the grace window revokes its whole family.
//! - Every way of ending a session writes an audit event.

use std::{net::IpAddr, sync::Arc};

use serde_json::json;

use super::{
    Account, AccountKind, Auth, AuthError, Credential, Issued, Principal, REFRESH_REUSE_GRACE_MS,
    SessionKind, SessionMode, Tokens,
    error::StoreContext,
    password::{Password, Verdict},
    random_token, store,
    tokens::TokenKind,
    username,
};
use crate::{audit::Event, ids::SessionId};
use sha2::{Digest, Sha256};

impl Auth {
    /// Checks a username and password and opens a session: [`Auth::check_password`] then
    /// [`Auth::open_login_session`]. Callers that may ask for a second factor call the two steps themselves.
    pub async fn login(
        &self,
        raw_username: &str,
        raw_password: String,
        mode: SessionMode,
        ip: IpAddr,
        user_agent: Option<&str>,
        replaces: Option<&str>,
    ) -> Result<Issued, AuthError> {
        let account = self.check_password(raw_username, raw_password, ip).await?;
        self.open_login_session(account, mode, ip, user_agent, replaces, "password")
            .await
    }

    /// Checks a username and password; the account on success. Every failure answers `InvalidCredentials`
    /// after the same hashing work; a flood from one address answers `RateLimited`. Opens no session.
    pub async fn check_password(
        &self,
        raw_username: &str,
        raw_password: String,
        ip: IpAddr,
    ) -> Result<Arc<Account>, AuthError> {
        let now = self.now();
        self.limiter
            .check(ip, now)
            .await
            .map_err(|retry_after_secs| {
                self.audit
                    .record(Event::new("login.rate_limited", "denied").ip(ip));
                AuthError::RateLimited { retry_after_secs }
            })?;
        let password = Password::parse(raw_password).map_err(AuthError::Malformed)?;
        let canonical = username::canonical(raw_username);
        // Control characters (NUL above all, which PostgreSQL refuses in text) never name an account.
        if canonical.is_empty()
            || canonical.chars().count() > username::MAX_USERNAME_CHARS * 4
            || canonical.chars().any(char::is_control)
        {
            return Err(AuthError::Malformed(
                "username must be 1 to 64 characters, without control characters".into(),
            ));
        }
        let locked = store::find_lock(&self.db.pool, &canonical)
            .await
            .context("auth store: find_lock")?
            > now;
        let user = store::find_user_by_canonical(&self.db.pool, &canonical)
            .await
            .context("auth store: find_user_by_canonical")?;
        let verdict = self
            .hasher
            .verify(&password, user.as_ref().map(|u| u.password_hash.as_str()))
            .await?;
        let user = match (verdict, user) {
            (Verdict::Match { needs_rehash }, Some(u))
                if !locked && u.is_active && u.kind == AccountKind::Person =>
            {
                if needs_rehash {
                    let hash = self.hasher.hash(&password).await?;
                    store::update_password_hash(self.db.writer(), u.id.as_str(), &hash, now)
                        .await
                        .context("auth store: update_password_hash")?;
                }
                u
            }
            (_, user) => {
                // Attempts during a lock are refused without counting, so the lock lifts on time even
                // under attack; each failure after it locks again for twice as long.
                if !locked {
                    let failures = store::record_failure(self.db.writer(), &canonical, now)
                        .await
                        .context("auth store: record_failure")?;
                    let over = failures - self.settings.max_failures;
                    if over >= 0 {
                        let lock = self.settings.lock_ms.saturating_mul(1 << over.min(6));
                        store::update_lock(self.db.writer(), &canonical, now + lock)
                            .await
                            .context("auth store: update_lock")?;
                        self.audit.record(
                            Event::new("login.locked", "denied")
                                .subject(&canonical)
                                .ip(ip),
                        );
                    }
                }
                let reason = match &user {
                    None => "unknown_user",
                    Some(_) if locked => "locked",
                    Some(u) if !u.is_active => "disabled",
                    Some(_) => "wrong_password",
                };
                let mut event = Event::new("login.failure", "denied")
                    .subject(&canonical)
                    .ip(ip)
                    .detail(json!({"reason": reason}));
                if let Some(u) = &user {
                    event = event.actor(&u.id);
                }
                self.audit.record(event);
                return Err(AuthError::InvalidCredentials);
            }
        };
        store::delete_throttle(self.db.writer(), &canonical)
            .await
            .context("auth store: delete_throttle")?;
        store::update_login_success(self.db.writer(), user.id.as_str(), now)
            .await
            .context("auth store: update_login_success")?;
        self.active_account(user.id.as_str()).await
    }

    /// Opens the session of a login whose every factor is checked (`method`: `password`, or the second
    /// factor that completed it), records `login.success`, and ends the session the browser's old cookie
    /// (`replaces`) names: a browser that logs in again gets a new session, and the old one does not linger.
    pub async fn open_login_session(
        &self,
        account: Arc<Account>,
        mode: SessionMode,
        ip: IpAddr,
        user_agent: Option<&str>,
        replaces: Option<&str>,
        method: &str,
    ) -> Result<Issued, AuthError> {
        let user_id = account.id.clone();
        let issued = self
            .open_session(account, mode, SessionKind::Password, ip, user_agent)
            .await?;
        self.audit.record(
            Event::new("login.success", "ok")
                .actor(&user_id)
                .ip(ip)
                .detail(json!({"session_id": issued.session_id, "method": method})),
        );
        if mode == SessionMode::Cookie
            && let Some(old_token) = replaces
        {
            self.end_replaced_session(old_token, issued.session_id.as_str())
                .await?;
        }
        Ok(issued)
    }

    /// Ends the session a browser's old cookie names, once its new session is open. An old cookie that no
    /// longer authenticates (expired, revoked, tampered) names nothing to end.
    async fn end_replaced_session(
        &self,
        old_token: &str,
        new_session_id: &str,
    ) -> Result<(), AuthError> {
        let Ok(old) = self.authenticate(old_token, Credential::Cookie).await else {
            return Ok(());
        };
        self.revoke_session(old.session_id.as_str(), "relogin")
            .await?;
        self.audit.record(
            Event::new("session.replaced", "ok")
                .actor(&old.account.id)
                .detail(json!({"session_id": old.session_id, "replaced_by": new_session_id})),
        );
        Ok(())
    }

    async fn open_session(
        &self,
        account: Arc<Account>,
        mode: SessionMode,
        kind: SessionKind,
        ip: IpAddr,
        user_agent: Option<&str>,
    ) -> Result<Issued, AuthError> {
        let now = self.now();
        let session_id = uuid::Uuid::new_v4().to_string();
        let session_ms = if kind == SessionKind::Service {
            self.settings.access_secs * 1000
        } else {
            self.settings.session_ms
        };
        let expires_at = now + session_ms;
        let ip_text = ip.to_string();
        let user_agent: Option<String> = user_agent.map(|ua| ua.chars().take(256).collect());
        store::insert_session(
            self.db.writer(),
            &store::NewSession {
                id: &session_id,
                user_id: account.id.as_str(),
                kind: kind.as_str(),
                now,
                expires_at,
                client_ip: Some(&ip_text),
                user_agent: user_agent.as_deref(),
            },
        )
        .await
        .context("auth store: insert_session")?;
        self.activity.learn_stored(&session_id, now);
        let tokens = match mode {
            SessionMode::Bearer => {
                let refresh = (kind != SessionKind::Service).then(random_token);
                if let Some(r) = &refresh {
                    store::insert_refresh_token(
                        self.db.writer(),
                        &token_hash(r),
                        &session_id,
                        now,
                        expires_at,
                    )
                    .await
                    .context("auth store: insert_refresh_token")?;
                }
                self.bearer_tokens(account.id.as_str(), &session_id, expires_at, refresh)
            }
            SessionMode::Cookie => Tokens::Cookie {
                cookie_token: self.keys.issue(
                    TokenKind::Session,
                    account.id.as_str(),
                    &session_id,
                    now / 1000,
                    expires_at / 1000,
                ),
                csrf_token: self.csrf.issue(&session_id),
            },
        };
        Ok(Issued {
            account,
            session_id: SessionId::from(session_id),
            session_expires_at: expires_at,
            tokens,
        })
    }

    fn bearer_tokens(
        &self,
        user_id: &str,
        session_id: &str,
        session_expires_at: i64,
        refresh: Option<String>,
    ) -> Tokens {
        let now_secs = self.clock.now_secs();
        let exp = (now_secs + self.settings.access_secs).min(session_expires_at / 1000);
        Tokens::Bearer {
            access_token: self
                .keys
                .issue(TokenKind::Access, user_id, session_id, now_secs, exp),
            access_expires_at: exp * 1000,
            refresh_token: refresh,
        }
    }

    /// Rotates a refresh token. Exactly one of several concurrent uses wins; presenting a used token again
    /// (after the grace window) revokes its whole family (the session and every token issued for it).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Issued, AuthError> {
        if refresh_token.is_empty() || refresh_token.len() > 256 {
            return Err(AuthError::Unauthorized);
        }
        let now = self.now();
        let hash = token_hash(refresh_token);
        // The successor is stored in the same transaction that uses this token up: a crash in between would
        // otherwise leave the client with a used token and no successor.
        let refresh = random_token();
        let Some(session_id) =
            store::rotate_refresh_token(self.db.writer(), &hash, &token_hash(&refresh), now)
                .await
                .context("auth store: rotate_refresh_token")?
        else {
            // A used token shown again is theft (RFC 9700 §4.14.2), unless it is a concurrent retry of the
            // same rotation (two tabs, a retried request) within a short grace window: that one only fails.
            if let Some((session_id, used_at)) = store::find_refresh_token(&self.db.pool, &hash)
                .await
                .context("auth store: find_refresh_token")?
                && used_at.is_some_and(|used| now - used > REFRESH_REUSE_GRACE_MS)
            {
                self.revoke_session(&session_id, "refresh_token_reuse")
                    .await?;
                self.audit.record(
                    Event::new("refresh.reuse_detected", "denied")
                        .detail(json!({"session_id": session_id})),
                );
            }
            return Err(AuthError::Unauthorized);
        };
        let session = store::find_session(&self.db.pool, &session_id)
            .await
            .context("auth store: find_session")?
            .ok_or(AuthError::Unauthorized)?;
        if session.revoked_at.is_some() || session.expires_at <= now || self.is_revoked(&session_id)
        {
            return Err(AuthError::Unauthorized);
        }
        // The family is as idle as its session: no refresh and no use of its access tokens.
        self.use_unless_idle(&session_id).await?;
        let account = self.active_account(&session.user_id).await?;
        let tokens = self.bearer_tokens(
            account.id.as_str(),
            &session_id,
            session.expires_at,
            Some(refresh),
        );
        Ok(Issued {
            account,
            session_id: SessionId::from(session_id),
            session_expires_at: session.expires_at,
            tokens,
        })
    }

    /// Logs out the session a refresh token belongs to (a client that holds only its refresh token). An
    /// unknown token is `Unauthorized`; a used one still names its session, which ends.
    pub async fn logout_by_refresh_token(&self, refresh_token: &str) -> Result<(), AuthError> {
        let Some((session_id, _)) =
            store::find_refresh_token(&self.db.pool, &token_hash(refresh_token))
                .await
                .context("auth store: find_refresh_token")?
        else {
            return Err(AuthError::Unauthorized);
        };
        self.revoke_session(&session_id, "logout").await?;
        let mut event = Event::new("logout", "ok")
            .detail(json!({"session_id": session_id, "via": "refresh_token"}));
        if let Some(session) = store::find_session(&self.db.pool, &session_id)
            .await
            .context("auth store: find_session")?
        {
            event = event.actor(&session.user_id);
        }
        self.audit.record(event);
        Ok(())
    }

    /// Logs out the caller's session.
    pub async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
        self.revoke_session(principal.session_id.as_str(), "logout")
            .await?;
        self.audit
            .record(Event::new("logout", "ok").actor(&principal.account.id));
        Ok(())
    }

    pub async fn logout_all(&self, principal: &Principal) -> Result<usize, AuthError> {
        let n = self
            .revoke_user_sessions(principal.account.id.as_str(), None, "logout_all")
            .await?;
        self.audit.record(
            Event::new("logout_all", "ok")
                .actor(&principal.account.id)
                .detail(json!({"sessions": n})),
        );
        Ok(n)
    }

    /// Exchanges a client id and secret for a short-lived access token (its own session, revocable).
    pub async fn client_credentials(
        &self,
        client_id: &str,
        secret: &str,
        ip: IpAddr,
    ) -> Result<Issued, AuthError> {
        self.limiter
            .check(ip, self.now())
            .await
            .map_err(|retry_after_secs| AuthError::RateLimited { retry_after_secs })?;
        let plausible_id = client_id.len() <= 64
            && client_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        let row = if plausible_id {
            store::find_user(&self.db.pool, client_id)
                .await
                .context("auth store: find_user")?
        } else {
            None
        };
        let secret = Password::parse(secret.to_string()).map_err(|_| AuthError::Unauthorized)?;
        let ok = self
            .hasher
            .verify(&secret, row.as_ref().map(|r| r.password_hash.as_str()))
            .await?;
        match (ok, row) {
            (Verdict::Match { .. }, Some(r)) if r.kind == AccountKind::Service && r.is_active => {
                let account = self.active_account(r.id.as_str()).await?;
                let issued = self
                    .open_session(account, SessionMode::Bearer, SessionKind::Service, ip, None)
                    .await?;
                self.audit
                    .record(Event::new("client.token", "ok").actor(&r.id).ip(ip));
                Ok(issued)
            }
            _ => {
                self.audit
                    .record(Event::new("client.token", "denied").ip(ip));
                Err(AuthError::Unauthorized)
            }
        }
    }
}

/// Stored form of a refresh token.
pub(super) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
