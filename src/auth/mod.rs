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
//!
//! Layout: this file is the public face (`Auth`, its types, `authenticate`); `cache.rs` holds the hot path's
//! state (revoked set, account cache, watermarks), `sessions.rs` login/refresh/logout and client credentials,
//! `accounts.rs` users, roles and passwords, `permissions.rs` every permission name, `error.rs` `AuthError`.

mod accounts;
pub mod activity;
mod admin_sessions;
mod cache;
pub mod csrf;
pub mod error;
pub mod jwks;
mod own_sessions;
pub mod password;
pub mod permissions;
mod sessions;
pub mod store;
pub mod tokens;
pub mod username;

use std::{
    collections::HashMap,
    sync::{Arc, atomic::AtomicU64},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use parking_lot::RwLock;

use crate::{
    audit::Audit,
    clock::SharedClock,
    ids::{SessionId, UserId},
    store::Db,
};
use password::Hasher;
use tokens::{TokenKeys, TokenKind};

pub use accounts::{MAX_USER_PAGE, RolePermissions, UserChange, UserPage, UserSearch};
pub use admin_sessions::UserSession;
use cache::Watermarks;
pub use error::AuthError;
pub use permissions::permission_matches;

/// Role given to new users unless another is named.
pub const DEFAULT_ROLE: &str = "user";
pub const ADMIN_ROLE: &str = "admin";
/// A used refresh token shown again within this window is refused without revoking its family.
pub const REFRESH_REUSE_GRACE_MS: i64 = 2_000;
/// Issuer name under which Django simplejwt subjects are mapped to local users.
pub const DJANGO_ISSUER: &str = "django";

/// What an account is for; stored as the text `person` or `service` in `users.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    /// Signs in with a username and password (browser or bearer).
    Person,
    /// A client with a secret (client-credentials grant); never signs in with a password.
    Service,
}

impl AccountKind {
    /// The text stored in `users.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Person => "person",
            AccountKind::Service => "service",
        }
    }
}

impl std::fmt::Display for AccountKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AccountKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "person" => Ok(AccountKind::Person),
            "service" => Ok(AccountKind::Service),
            other => Err(format!("unknown account kind {other:?}")),
        }
    }
}

/// How a session was opened; stored as the text `password` or `service` in `sessions.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// A person's login (password, and a second factor when enrolled): refresh tokens, the full lifetime.
    Password,
    /// A service client's client-credentials grant: one access token, no refresh, the access token's lifetime.
    Service,
}

impl SessionKind {
    /// The text stored in `sessions.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Password => "password",
            SessionKind::Service => "service",
        }
    }
}

/// An account as the hot path sees it.
#[derive(Debug)]
pub struct Account {
    pub id: UserId,
    pub username: String,
    pub role: String,
    pub permissions: Vec<String>,
    pub active: bool,
    /// The role requires a second factor (`roles.require_mfa`).
    pub mfa_required: bool,
    /// The user has a confirmed second factor (`users.mfa_enrolled`, kept by the mfa service).
    pub mfa_enrolled: bool,
}

impl Account {
    /// The role requires a second factor and none is confirmed yet: the session may only enrol one.
    pub fn must_enrol_second_factor(&self) -> bool {
        self.mfa_required && !self.mfa_enrolled
    }

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
    pub session_id: SessionId,
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
    pub session_id: SessionId,
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
    /// Login attempts per client address and minute (`LOGIN_IP_PER_MINUTE`).
    limiter: crate::limits::AddressLimit,
    settings: Settings,
    audit: Audit,
    /// Revoked, unexpired sessions: id → expiry (ms).
    revoked: RwLock<HashMap<String, i64>>,
    activity: activity::Activity,
    accounts: RwLock<HashMap<UserId, Arc<Account>>>,
    /// Bumped on every account change, so a load that raced a change is not cached.
    accounts_generation: AtomicU64,
    /// How far `sync_changes` has read: newest session revocation, user change and role change seen.
    watermarks: parking_lot::Mutex<Watermarks>,
    /// Tells the other instances about revocations and account changes made here (they re-read the watermarks).
    bus: crate::cluster::Bus,
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
    /// Where the per-address login limit is counted across instances (Redis), if anywhere.
    pub shared_limits: Option<Arc<crate::limits::SharedCounter>>,
    pub settings: Settings,
    pub audit: Audit,
    pub bus: crate::cluster::Bus,
}

impl Auth {
    /// Builds the service, gives older accounts their username skeleton, and loads the revoked sessions that
    /// are still unexpired.
    pub async fn new(p: AuthParts) -> anyhow::Result<Auth> {
        accounts::backfill_username_skeletons(&p.db).await?;
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
            limiter: crate::limits::AddressLimit::new(
                "login",
                p.ip_per_minute,
                60_000,
                p.shared_limits,
            ),
            db: p.db,
            clock: p.clock,
            settings: p.settings,
            audit: p.audit,
            revoked: RwLock::new(revoked),
            activity: activity::Activity::default(),
            accounts: RwLock::new(HashMap::new()),
            accounts_generation: AtomicU64::new(0),
            watermarks: parking_lot::Mutex::new(watermarks),
            bus: p.bus,
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
                // Cookie sessions are subject to the idle timeout; a bearer token's use counts as its
                // family's activity (checked when it refreshes).
                if credential == Credential::Cookie {
                    self.use_unless_idle(&claims.sid).await?;
                } else {
                    self.activity.touch(&claims.sid, self.now());
                }
                let account = self.active_account(&claims.sub).await?;
                Ok(Principal {
                    account,
                    session_id: SessionId::from(claims.sid),
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
            session_id: SessionId::from(session_id),
            credential: Credential::External,
        })
    }

    /// Work worth doing before the first request: fetching an external issuer's keys.
    pub async fn warm_up(&self) {
        if let Some(jwks) = &self.jwks {
            jwks.refresh(self.now()).await;
        }
    }

    /// Login sessions neither revoked nor expired now (a count query: for periodic sampling, not requests).
    pub async fn count_active_sessions(&self) -> sqlx::Result<i64> {
        store::count_active_sessions(&self.db.pool, self.now()).await
    }

    pub fn issue_csrf(&self, session_id: &SessionId) -> String {
        self.csrf.issue(session_id.as_str())
    }

    pub fn verify_csrf(&self, session_id: &SessionId, token: &str) -> bool {
        self.csrf.verify(session_id.as_str(), token)
    }
}

/// How long an `mfa` token (a checked password awaiting its second factor) lives.
pub const MFA_TOKEN_SECS: i64 = 300;

impl Auth {
    /// A short-lived token naming a second-factor challenge of `user_id`; useless anywhere else.
    pub fn issue_mfa_token(&self, user_id: &UserId, challenge_id: &str) -> String {
        let now = self.clock.now_secs();
        self.keys.issue(
            TokenKind::Mfa,
            user_id.as_str(),
            challenge_id,
            now,
            now + MFA_TOKEN_SECS,
        )
    }

    /// The user and challenge an `mfa` token names; any other token, or an expired one, is `Unauthorized`.
    pub fn verify_mfa_token(&self, token: &str) -> Result<(UserId, String), AuthError> {
        let v = self
            .keys
            .verify(token, TokenKind::Mfa, self.clock.now_secs())
            .map_err(|_| AuthError::Unauthorized)?;
        Ok((UserId::from(v.sub), v.sid))
    }
}

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    B64.encode(rand::random::<[u8; 32]>())
}

#[cfg(test)]
mod tests {
    use super::AccountKind;

    #[test]
    fn account_kinds_keep_their_stored_text() {
        for kind in [AccountKind::Person, AccountKind::Service] {
            assert_eq!(kind.as_str().parse::<AccountKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        assert_eq!(AccountKind::Person.as_str(), "person");
        assert_eq!(AccountKind::Service.as_str(), "service");
        assert!("admin".parse::<AccountKind>().is_err());
    }
}
