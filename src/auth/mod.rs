//! Accounts, roles, permissions, passwords, tokens, sessions, CSRF and login throttling.
//!
//! Invariants:
//! - Every login creates a server-side session row; every credential (cookie, bearer, service token) names
//!   its session, and revoking the session ends the credential at once.
//! - The authenticated hot path (`authenticate`) makes no database round trip once the account is cached: a
//!   signature check, a lookup in the in-memory set of revoked sessions and in the account cache. Both are kept
//!   exact on this instance: every revocation and every account change goes through this service.
//! - The role and permissions come from server state (the cached account), never from the token.
//! - Login failures get one answer whatever the cause (unknown, wrong, locked, disabled), after the same work.

pub mod activity;
pub mod csrf;
pub mod error;
pub mod jwks;
pub mod password;
pub mod permissions;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod username;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use parking_lot::RwLock;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{
    audit::{Audit, Event},
    clock::SharedClock,
    store::Db,
};
use password::{Hasher, Password, Verdict};
use tokens::{TokenKeys, TokenKind};
use username::Username;

pub use error::AuthError;
pub use permissions::permission_matches;

/// Role given to new users unless another is named.
pub const DEFAULT_ROLE: &str = "user";
pub const ADMIN_ROLE: &str = "admin";
/// A used refresh token shown again within this window is refused without revoking its family.
pub const REFRESH_REUSE_GRACE_MS: i64 = 2_000;
/// Issuer name under which Django simplejwt subjects are mapped to local users.
pub const DJANGO_ISSUER: &str = "django";

/// An account as the hot path sees it.
#[derive(Debug)]
pub struct Account {
    pub id: String,
    pub username: String,
    pub role: String,
    pub permissions: Vec<String>,
    pub active: bool,
}

impl Account {
    /// Permission patterns: exact, `*` for everything, or a prefix ending in `*` (`tools:call:*`).
    pub fn has_permission(&self, wanted: &str) -> bool {
        self.permissions
            .iter()
            .any(|p| permission_matches(p, wanted))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    Bearer,
    Cookie,
    /// A Django simplejwt access token mapped to a local user; no local session to revoke.
    External,
}

/// Who is calling: the account (from server state), the session and how the caller proved it.
#[derive(Clone, Debug)]
pub struct Principal {
    pub account: Arc<Account>,
    pub session_id: String,
    pub credential: Credential,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionMode {
    Bearer,
    Cookie,
}

pub enum Tokens {
    Bearer {
        access_token: String,
        access_expires_at: i64,
        refresh_token: Option<String>,
    },
    Cookie {
        cookie_token: String,
        csrf_token: String,
    },
}

/// A session just created or refreshed, with the credentials to hand to the client.
pub struct Issued {
    pub account: Arc<Account>,
    pub session_id: String,
    pub session_expires_at: i64,
    pub tokens: Tokens,
}

pub struct Client {
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Clone, Copy)]
pub struct Settings {
    pub session_ms: i64,
    /// A cookie session or refresh family unused this long ends (ASVS 7.3).
    pub idle_ms: i64,
    pub access_secs: i64,
    pub max_failures: i64,
    pub lock_ms: i64,
}

pub struct Auth {
    db: Db,
    clock: SharedClock,
    keys: TokenKeys,
    jwks: Option<jwks::JwksVerifier>,
    csrf: csrf::CsrfKey,
    hasher: Arc<Hasher>,
    limiter: throttle::AddressLimiter,
    settings: Settings,
    audit: Audit,
    /// Revoked, unexpired sessions: id → expiry (ms).
    revoked: RwLock<HashMap<String, i64>>,
    activity: activity::Activity,
    accounts: RwLock<HashMap<String, Arc<Account>>>,
    /// Bumped on every account change, so a load that raced a change is not cached.
    accounts_generation: AtomicU64,
    /// How far `sync_changes` has read: newest session revocation, user change and role change seen.
    watermarks: parking_lot::Mutex<Watermarks>,
}

#[derive(Clone, Copy, Default)]
struct Watermarks {
    revoked_at: i64,
    user_updated_at: i64,
    role_updated_at: i64,
}

impl Settings {
    pub fn from_config(config: &crate::config::Config) -> Settings {
        let minutes = |m: u64| i64::try_from(m).unwrap_or(i64::MAX / 60_000) * 60_000;
        Settings {
            session_ms: minutes(config.session_hours.saturating_mul(60)),
            idle_ms: minutes(config.session_idle_minutes),
            access_secs: minutes(config.access_token_minutes) / 1000,
            max_failures: i64::from(config.login_max_failures.max(1)),
            lock_ms: i64::try_from(config.login_lock.as_millis()).unwrap_or(300_000),
        }
    }
}

pub struct AuthParts {
    pub db: Db,
    pub clock: SharedClock,
    pub secret: Vec<u8>,
    pub issuer: String,
    pub django_secret: Option<Vec<u8>>,
    pub jwks: Option<jwks::JwksVerifier>,
    pub hash_concurrency: usize,
    pub ip_per_minute: u32,
    pub settings: Settings,
    pub audit: Audit,
}

impl Auth {
    /// Builds the service, gives older accounts their username skeleton, and loads the revoked sessions that
    /// are still unexpired.
    pub async fn new(p: AuthParts) -> anyhow::Result<Auth> {
        backfill_username_skeletons(&p.db).await?;
        let now = p.clock.now_ms();
        let revoked = store::find_revoked_sessions(&p.db.pool, now)
            .await?
            .into_iter()
            .collect();
        let (revoked_at, user_updated_at) = store::find_watermarks(&p.db.pool).await?;
        let role_updated_at = store::find_roles_updated_max(&p.db.pool).await?;
        let watermarks = Watermarks {
            revoked_at,
            user_updated_at,
            role_updated_at,
        };
        Ok(Auth {
            keys: TokenKeys::new(&p.secret, &p.issuer, p.django_secret.as_deref()),
            jwks: p.jwks,
            csrf: csrf::CsrfKey::derive(&p.secret),
            hasher: Hasher::new(p.hash_concurrency),
            limiter: throttle::AddressLimiter::new(p.ip_per_minute),
            db: p.db,
            clock: p.clock,
            settings: p.settings,
            audit: p.audit,
            revoked: RwLock::new(revoked),
            activity: activity::Activity::default(),
            accounts: RwLock::new(HashMap::new()),
            accounts_generation: AtomicU64::new(0),
            watermarks: parking_lot::Mutex::new(watermarks),
        })
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    // ---- The hot path ----

    /// Checks a presented token and returns the caller. Any failure is `Unauthorized`.
    pub async fn authenticate(
        &self,
        token: &str,
        credential: Credential,
    ) -> Result<Principal, AuthError> {
        let now_secs = self.clock.now_secs();
        let kind = if credential == Credential::Cookie {
            TokenKind::Session
        } else {
            TokenKind::Access
        };
        match self.keys.verify(token, kind, now_secs) {
            Ok(claims) => {
                if self.is_revoked(&claims.sid) {
                    return Err(AuthError::Unauthorized);
                }
                if credential == Credential::Cookie {
                    self.check_idle(&claims.sid).await?;
                }
                self.activity.touch(&claims.sid, self.now());
                let account = self.active_account(&claims.sub).await?;
                Ok(Principal {
                    account,
                    session_id: claims.sid,
                    credential,
                })
            }
            Err(_) if credential == Credential::Bearer => {
                self.authenticate_external(token, now_secs).await
            }
            Err(_) => Err(AuthError::Unauthorized),
        }
    }

    /// A token of an external issuer (a JWKS issuer's asymmetric token, or a Django simplejwt token), mapped to
    /// the local user linked to its subject. Access tokens only; the role is the local user's.
    async fn authenticate_external(
        &self,
        token: &str,
        now_secs: i64,
    ) -> Result<Principal, AuthError> {
        let (issuer, subject, session_id) = match &self.jwks {
            Some(jwks) if jwks::JwksVerifier::handles(token) => {
                let subject = jwks
                    .verify(token, now_secs)
                    .await
                    .map_err(|_| AuthError::Unauthorized)?;
                (jwks.issuer().to_string(), subject, "external".to_string())
            }
            _ => {
                let (subject, jti) = self
                    .keys
                    .verify_django(token, now_secs)
                    .map_err(|_| AuthError::Unauthorized)?;
                (DJANGO_ISSUER.to_string(), subject, format!("django:{jti}"))
            }
        };
        let user_id = store::find_external_user(&self.db.pool, &issuer, &subject)
            .await?
            .ok_or(AuthError::Unauthorized)?;
        let account = self.active_account(&user_id).await?;
        Ok(Principal {
            account,
            session_id,
            credential: Credential::External,
        })
    }

    /// Work worth doing before the first request: fetching an external issuer's keys.
    pub async fn warm_up(&self) {
        if let Some(jwks) = &self.jwks {
            jwks.refresh(self.now()).await;
        }
    }

    /// Ends a session unused for longer than the idle timeout. What this instance saw is checked first; the
    /// database (other instances' activity, written within about a minute) only for a session new here or
    /// one that looks idle, so an active session costs no round trip.
    async fn check_idle(&self, session_id: &str) -> Result<(), AuthError> {
        let now = self.now();
        let fresh = |last: i64| now.saturating_sub(last) <= self.settings.idle_ms;
        if self.activity.last_seen(session_id).is_some_and(fresh) {
            return Ok(());
        }
        let session = store::find_session(&self.db.pool, session_id)
            .await?
            .ok_or(AuthError::Unauthorized)?;
        let stored = session.last_seen_at.unwrap_or(session.created_at);
        self.activity.learn_stored(session_id, stored);
        if self.activity.last_seen(session_id).is_some_and(fresh) {
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

    fn is_revoked(&self, session_id: &str) -> bool {
        self.revoked.read().contains_key(session_id)
    }

    async fn active_account(&self, user_id: &str) -> Result<Arc<Account>, AuthError> {
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
        let Some(row) = store::find_user(&self.db.pool, user_id).await? else {
            return Ok(None);
        };
        let permissions = store::find_role_permissions(&self.db.pool, &row.role).await?;
        let account = Arc::new(Account {
            id: row.id,
            username: row.username,
            role: row.role,
            permissions,
            active: row.is_active == 1,
        });
        let mut cache = self.accounts.write();
        if self.accounts_generation.load(Ordering::SeqCst) == generation {
            cache.insert(account.id.clone(), account.clone());
        }
        Ok(Some(account))
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

    pub fn issue_csrf(&self, session_id: &str) -> String {
        self.csrf.issue(session_id)
    }

    pub fn verify_csrf(&self, session_id: &str, token: &str) -> bool {
        self.csrf.verify(session_id, token)
    }

    // ---- Login, refresh, logout ----

    /// Checks a username and password and opens a session. Every failure answers `InvalidCredentials`
    /// after the same hashing work; a flood from one address answers `RateLimited`.
    pub async fn login(
        &self,
        raw_username: &str,
        raw_password: String,
        mode: SessionMode,
        ip: IpAddr,
        user_agent: Option<&str>,
    ) -> Result<Issued, AuthError> {
        let now = self.now();
        self.limiter.check(ip, now).map_err(|retry_after_secs| {
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
        let locked = store::find_lock(&self.db.pool, &canonical).await? > now;
        let user = store::find_user_by_canonical(&self.db.pool, &canonical).await?;
        let verdict = self
            .hasher
            .verify(&password, user.as_ref().map(|u| u.password_hash.as_str()))
            .await?;
        let user = match (verdict, user) {
            (Verdict::Match { needs_rehash }, Some(u))
                if !locked && u.is_active == 1 && u.kind == "person" =>
            {
                if needs_rehash {
                    let hash = self.hasher.hash(&password).await?;
                    store::update_password_hash(self.db.writer(), &u.id, &hash, now).await?;
                }
                u
            }
            (_, user) => {
                // Attempts during a lock are refused without counting, so the lock lifts on time even
                // under attack; each failure after it locks again for twice as long.
                if !locked {
                    let failures = store::record_failure(self.db.writer(), &canonical, now).await?;
                    let over = failures - self.settings.max_failures;
                    if over >= 0 {
                        let lock = self.settings.lock_ms.saturating_mul(1 << over.min(6));
                        store::update_lock(self.db.writer(), &canonical, now + lock).await?;
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
                    Some(u) if u.is_active != 1 => "disabled",
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
        store::delete_throttle(self.db.writer(), &canonical).await?;
        store::update_login_success(self.db.writer(), &user.id, now).await?;
        let account = self.active_account(&user.id).await?;
        let issued = self
            .open_session(account, mode, "password", ip, user_agent)
            .await?;
        self.audit.record(
            Event::new("login.success", "ok")
                .actor(&user.id)
                .ip(ip)
                .detail(json!({"session_id": issued.session_id})),
        );
        Ok(issued)
    }

    async fn open_session(
        &self,
        account: Arc<Account>,
        mode: SessionMode,
        kind: &str,
        ip: IpAddr,
        user_agent: Option<&str>,
    ) -> Result<Issued, AuthError> {
        let now = self.now();
        let session_id = uuid::Uuid::new_v4().to_string();
        let session_ms = if kind == "service" {
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
                user_id: &account.id,
                kind,
                now,
                expires_at,
                client_ip: Some(&ip_text),
                user_agent: user_agent.as_deref(),
            },
        )
        .await?;
        self.activity.learn_stored(&session_id, now);
        let tokens = match mode {
            SessionMode::Bearer => {
                let refresh = (kind != "service").then(random_token);
                if let Some(r) = &refresh {
                    store::insert_refresh_token(
                        self.db.writer(),
                        &token_hash(r),
                        &session_id,
                        now,
                        expires_at,
                    )
                    .await?;
                }
                self.bearer_tokens(&account.id, &session_id, expires_at, refresh)
            }
            SessionMode::Cookie => Tokens::Cookie {
                cookie_token: self.keys.issue(
                    TokenKind::Session,
                    &account.id,
                    &session_id,
                    now / 1000,
                    expires_at / 1000,
                ),
                csrf_token: self.csrf.issue(&session_id),
            },
        };
        Ok(Issued {
            account,
            session_id,
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
        let Some(session_id) = store::consume_refresh_token(self.db.writer(), &hash, now).await?
        else {
            // A used token shown again is theft (RFC 9700 §4.14.2), unless it is a concurrent retry of the
            // same rotation (two tabs, a retried request) within a short grace window: that one only fails.
            if let Some((session_id, used_at)) =
                store::find_refresh_token(&self.db.pool, &hash).await?
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
            .await?
            .ok_or(AuthError::Unauthorized)?;
        if session.revoked_at.is_some() || session.expires_at <= now || self.is_revoked(&session_id)
        {
            return Err(AuthError::Unauthorized);
        }
        // The family is as idle as its session: no refresh and no use of its access tokens.
        self.check_idle(&session_id).await?;
        self.activity.touch(&session_id, now);
        let account = self.active_account(&session.user_id).await?;
        let refresh = random_token();
        store::insert_refresh_token(
            self.db.writer(),
            &token_hash(&refresh),
            &session_id,
            now,
            session.expires_at,
        )
        .await?;
        let tokens =
            self.bearer_tokens(&account.id, &session_id, session.expires_at, Some(refresh));
        Ok(Issued {
            account,
            session_id,
            session_expires_at: session.expires_at,
            tokens,
        })
    }

    /// The session a refresh token belongs to, if the token is live (for logout by refresh token).
    pub async fn refresh_token_session(
        &self,
        refresh_token: &str,
    ) -> Result<Option<String>, AuthError> {
        let found = store::find_refresh_token(&self.db.pool, &token_hash(refresh_token)).await?;
        Ok(found.map(|(session_id, _)| session_id))
    }

    pub async fn revoke_session(&self, session_id: &str, reason: &str) -> Result<(), AuthError> {
        if let Some(expires_at) =
            store::revoke_session(self.db.writer(), session_id, reason, self.now()).await?
        {
            self.revoked
                .write()
                .insert(session_id.to_string(), expires_at);
        }
        Ok(())
    }

    /// Ends every session of a user except `keep`.
    pub async fn revoke_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        reason: &str,
    ) -> Result<usize, AuthError> {
        let revoked =
            store::revoke_user_sessions(self.db.writer(), user_id, keep, reason, self.now())
                .await?;
        let n = revoked.len();
        self.revoked.write().extend(revoked);
        Ok(n)
    }

    /// Logs out the caller's session.
    pub async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
        self.revoke_session(&principal.session_id, "logout").await?;
        self.audit
            .record(Event::new("logout", "ok").actor(&principal.account.id));
        Ok(())
    }

    pub async fn logout_all(&self, principal: &Principal) -> Result<usize, AuthError> {
        let n = self
            .revoke_user_sessions(&principal.account.id, None, "logout_all")
            .await?;
        self.audit.record(
            Event::new("logout_all", "ok")
                .actor(&principal.account.id)
                .detail(json!({"sessions": n})),
        );
        Ok(n)
    }

    /// Picks up revocations and account changes made by other processes sharing the database (another
    /// instance, the CLI). Changes made here are applied at once; this closes the gap for the others.
    pub async fn sync_changes(&self) -> Result<(), AuthError> {
        for (session_id, last_seen) in self.activity.due() {
            store::update_session_seen(self.db.writer(), &session_id, last_seen).await?;
            self.activity.mark_stored(&session_id, last_seen);
        }
        let seen = *self.watermarks.lock();
        let mut next = seen;
        let revoked = store::find_sessions_revoked_since(&self.db.pool, seen.revoked_at).await?;
        if !revoked.is_empty() {
            let mut set = self.revoked.write();
            for (id, expires_at, revoked_at) in revoked {
                next.revoked_at = next.revoked_at.max(revoked_at);
                set.insert(id, expires_at);
            }
        }
        for (id, updated_at) in
            store::find_users_updated_since(&self.db.pool, seen.user_updated_at).await?
        {
            next.user_updated_at = next.user_updated_at.max(updated_at);
            self.forget_accounts(Some(&id));
        }
        let role_updated_at = store::find_roles_updated_max(&self.db.pool).await?;
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

    // ---- Service clients (OAuth2 client credentials) ----

    pub async fn create_client(&self, name: &str, role: &str) -> Result<Client, AuthError> {
        let secret = random_token();
        let user = self
            .insert_account(
                name,
                &password::sha256_hash(&secret),
                role,
                "service",
                None,
                None,
            )
            .await?;
        self.audit
            .record(Event::new("client.create", "ok").subject(&user.id));
        Ok(Client {
            client_id: user.id,
            client_secret: secret,
        })
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
            .map_err(|retry_after_secs| AuthError::RateLimited { retry_after_secs })?;
        let plausible_id = client_id.len() <= 64
            && client_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        let row = if plausible_id {
            store::find_user(&self.db.pool, client_id).await?
        } else {
            None
        };
        let secret = Password::parse(secret.to_string()).map_err(|_| AuthError::Unauthorized)?;
        let ok = self
            .hasher
            .verify(&secret, row.as_ref().map(|r| r.password_hash.as_str()))
            .await?;
        match (ok, row) {
            (Verdict::Match { .. }, Some(r)) if r.kind == "service" && r.is_active == 1 => {
                let account = self.active_account(&r.id).await?;
                let issued = self
                    .open_session(account, SessionMode::Bearer, "service", ip, None)
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

    // ---- Accounts ----

    async fn insert_account(
        &self,
        raw_username: &str,
        password_hash: &str,
        role: &str,
        kind: &str,
        email: Option<&str>,
        full_name: Option<&str>,
    ) -> Result<store::UserRow, AuthError> {
        let username = Username::parse(raw_username).map_err(AuthError::InvalidInput)?;
        if !store::is_role(&self.db.pool, role).await? {
            return Err(AuthError::InvalidInput(format!("unknown role {role:?}")));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let new = store::NewUser {
            id: &id,
            username: username.display(),
            username_canonical: username.canonical(),
            username_skeleton: &username.skeleton(),
            kind,
            password_hash,
            role,
            email,
            full_name,
            now: self.now(),
        };
        match store::insert_user(self.db.writer(), &new).await {
            // The same name or a lookalike of one (its skeleton): one answer, so neither can be told apart.
            Err(e) if Db::is_unique_violation(&e) => {
                return Err(AuthError::AlreadyExists("username already exists".into()));
            }
            other => other?,
        }
        store::find_user(&self.db.pool, &id)
            .await?
            .ok_or(AuthError::NotFound)
    }

    pub async fn create_user(
        &self,
        raw_username: &str,
        raw_password: String,
        role: &str,
        email: Option<&str>,
        full_name: Option<&str>,
    ) -> Result<store::UserRow, AuthError> {
        Username::parse(raw_username).map_err(AuthError::InvalidInput)?;
        let password = Password::parse_new(raw_password).map_err(AuthError::InvalidInput)?;
        let hash = self.hasher.hash(&password).await?;
        let row = self
            .insert_account(raw_username, &hash, role, "person", email, full_name)
            .await?;
        self.audit.record(
            Event::new("user.create", "ok")
                .subject(&row.id)
                .detail(json!({"role": role})),
        );
        Ok(row)
    }

    pub async fn find_user(&self, id: &str) -> Result<store::UserRow, AuthError> {
        store::find_user(&self.db.pool, id)
            .await?
            .ok_or(AuthError::NotFound)
    }

    pub async fn find_user_by_name(&self, raw_username: &str) -> Result<store::UserRow, AuthError> {
        store::find_user_by_canonical(&self.db.pool, &username::canonical(raw_username))
            .await?
            .ok_or(AuthError::NotFound)
    }

    pub async fn list_users(&self) -> Result<Vec<store::UserRow>, AuthError> {
        Ok(store::find_all_users(&self.db.pool).await?)
    }

    /// Changes profile fields, role or active flag. A role change or disabling ends every session of the user.
    pub async fn update_user(
        &self,
        actor: &str,
        id: &str,
        change: UserChange,
    ) -> Result<store::UserRow, AuthError> {
        let current = self.find_user(id).await?;
        let role = change.role.unwrap_or_else(|| current.role.clone());
        if role != current.role && !store::is_role(&self.db.pool, &role).await? {
            return Err(AuthError::InvalidInput(format!("unknown role {role:?}")));
        }
        let active = change.is_active.unwrap_or(current.is_active == 1);
        if actor == id && (!active || role != current.role) {
            return Err(AuthError::NotAllowed(
                "you cannot change your own role or disable yourself".into(),
            ));
        }
        let email = change.email.or(current.email.clone());
        let full_name = change.full_name.or(current.full_name.clone());
        store::update_profile(
            self.db.writer(),
            id,
            email.as_deref(),
            full_name.as_deref(),
            &role,
            active,
            self.now(),
        )
        .await?;
        self.forget_accounts(Some(id));
        if role != current.role || (!active && current.is_active == 1) {
            let reason = if role != current.role {
                "role_change"
            } else {
                "disabled"
            };
            self.revoke_user_sessions(id, None, reason).await?;
            self.audit.record(
                Event::new(format!("user.{reason}"), "ok")
                    .actor(actor)
                    .subject(id)
                    .detail(json!({"role": role})),
            );
        }
        self.find_user(id).await
    }

    /// Sets a password (admin or the CLI). Ends every session of the user except `keep`.
    pub async fn set_password(
        &self,
        actor: Option<&str>,
        id: &str,
        raw_password: String,
        keep: Option<&str>,
    ) -> Result<(), AuthError> {
        let password = Password::parse_new(raw_password).map_err(AuthError::InvalidInput)?;
        let hash = self.hasher.hash(&password).await?;
        if !store::update_password_hash(self.db.writer(), id, &hash, self.now()).await? {
            return Err(AuthError::NotFound);
        }
        self.revoke_user_sessions(id, keep, "password_change")
            .await?;
        let mut event = Event::new("user.password_change", "ok").subject(id);
        if let Some(a) = actor {
            event = event.actor(a);
        }
        self.audit.record(event);
        Ok(())
    }

    /// The caller changes their own password: the current one must match; other sessions end.
    pub async fn change_own_password(
        &self,
        principal: &Principal,
        current: String,
        new: String,
    ) -> Result<(), AuthError> {
        let row = self.find_user(&principal.account.id).await?;
        let current = Password::parse(current).map_err(|_| AuthError::InvalidCredentials)?;
        match self
            .hasher
            .verify(&current, Some(&row.password_hash))
            .await?
        {
            Verdict::Match { .. } => {}
            Verdict::Mismatch => return Err(AuthError::InvalidCredentials),
        }
        self.set_password(Some(&row.id), &row.id, new, Some(&principal.session_id))
            .await
    }

    /// Deletes a user; refuses admins and oneself.
    pub async fn delete_user(&self, actor: &str, id: &str) -> Result<(), AuthError> {
        let row = self.find_user(id).await?;
        if row.id == actor {
            return Err(AuthError::NotAllowed("you cannot delete yourself".into()));
        }
        if row.role == ADMIN_ROLE {
            return Err(AuthError::NotAllowed(
                "admin users cannot be deleted".into(),
            ));
        }
        self.revoke_user_sessions(id, None, "deleted").await?;
        store::delete_user(self.db.writer(), id).await?;
        self.forget_accounts(Some(id));
        self.audit
            .record(Event::new("user.delete", "ok").actor(actor).subject(id));
        Ok(())
    }

    pub async fn roles(&self) -> Result<Vec<RolePermissions>, AuthError> {
        let mut out = Vec::new();
        for (name, description) in store::find_all_roles(&self.db.pool).await? {
            let permissions = store::find_role_permissions(&self.db.pool, &name).await?;
            out.push(RolePermissions {
                name,
                description,
                permissions,
            });
        }
        Ok(out)
    }

    /// Creates a role or replaces its permissions; cached accounts pick the change up at once.
    pub async fn set_role_permissions(
        &self,
        actor: &str,
        role: &str,
        description: &str,
        permissions: Vec<String>,
    ) -> Result<(), AuthError> {
        let valid_name = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        };
        let valid_permission = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":_-*.".contains(c))
        };
        if !valid_name(role) {
            return Err(AuthError::InvalidInput(
                "role must be 1 to 64 letters, digits, '-' or '_'".into(),
            ));
        }
        if let Some(bad) = permissions.iter().find(|p| !valid_permission(p)) {
            return Err(AuthError::InvalidInput(format!(
                "invalid permission {bad:?}"
            )));
        }
        if role == ADMIN_ROLE && !permissions.iter().any(|p| p == permissions::ALL) {
            return Err(AuthError::NotAllowed(
                "the admin role keeps the '*' permission".into(),
            ));
        }
        store::replace_role_permissions(
            self.db.writer(),
            role,
            description,
            &permissions,
            self.now(),
        )
        .await?;
        self.forget_accounts(None);
        self.audit.record(
            Event::new("role.permissions", "ok")
                .actor(actor)
                .subject(role)
                .detail(json!({"permissions": permissions})),
        );
        Ok(())
    }

    /// Links an external issuer's subject to a local user.
    pub async fn link_external(
        &self,
        issuer: &str,
        subject: &str,
        user_id: &str,
    ) -> Result<(), AuthError> {
        match store::insert_external_identity(self.db.writer(), issuer, subject, user_id).await {
            Err(e) if Db::is_unique_violation(&e) => Err(AuthError::AlreadyExists(
                "that external identity is already linked".into(),
            )),
            other => Ok(other?),
        }
    }

    /// Creates the `admin` account on first start. Returns the generated password when none was configured.
    pub async fn bootstrap_admin(
        &self,
        configured: Option<String>,
    ) -> Result<Option<String>, AuthError> {
        if store::count_active_admins(&self.db.pool).await? > 0 {
            return Ok(None);
        }
        let (password, generated) = match configured {
            Some(p) => (p, false),
            None => (random_token()[..24].to_string(), true),
        };
        match self
            .create_user(
                "admin",
                password.clone(),
                ADMIN_ROLE,
                None,
                Some("Administrator"),
            )
            .await
        {
            Ok(_) => {}
            // An `admin` user exists but is not an active admin: leave it to the operator.
            Err(AuthError::AlreadyExists(_)) => return Ok(None),
            Err(e) => return Err(e),
        }
        Ok(generated.then_some(password))
    }
}

/// Gives accounts made before usernames had skeletons (migration 0006) theirs. Where an older account already
/// holds the skeleton, the newer one keeps none and can still sign in: logged for the operator to resolve.
async fn backfill_username_skeletons(db: &Db) -> anyhow::Result<()> {
    for (id, canonical) in store::find_users_without_skeleton(&db.pool).await? {
        match store::update_skeleton(db.writer(), &id, &username::skeleton(&canonical)).await {
            Ok(()) => {}
            Err(e) if Db::is_unique_violation(&e) => tracing::warn!(
                user = %id,
                "username looks like an older account's (same confusable skeleton); rename or remove one of them"
            ),
            Err(e) => return Err(anyhow::Error::new(e).context("setting a username skeleton")),
        }
    }
    Ok(())
}

#[derive(Default)]
pub struct UserChange {
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub role: Option<String>,
    pub is_active: Option<bool>,
}

pub struct RolePermissions {
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
}

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    B64.encode(rand::random::<[u8; 32]>())
}

/// Stored form of a refresh token.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
