//! Second factors at login: a phone that receives SMS codes, a TOTP authenticator (RFC 6238), and single-use
//! recovery codes; and the per-role requirement to enrol one.
//!
//! Flow: [`Mfa::login`] checks the password through `auth`; an account with a confirmed factor gets no
//! session but a challenge (a row, and a short-lived `mfa` token naming it), and for SMS the code is sent at
//! once. [`Mfa::verify_login`] completes the challenge and opens the session exactly as a plain login does.
//!
//! Invariants:
//! - Codes come from the OS CSPRNG, are stored only as an HMAC keyed by the server and bound to their
//!   challenge (or enrolment), live five minutes by the injected clock, and are spent by one conditional
//!   UPDATE: of concurrent submissions exactly one wins. A challenge takes five wrong codes (SMS, TOTP or
//!   recovery alike), after which even the right one fails; a resend replaces the code (30 s apart, at most
//!   five per challenge).
//! - A TOTP step is accepted once per user (the last used step is stored and only a newer one passes); the
//!   secret and the phone number are sealed with an AEAD under a key derived from the signing secret.
//! - No code, secret or full number reaches the audit trail or the log (numbers appear masked).
//! - Step-up approvals of tool calls (`step_up.rs`) reuse the same codes, challenges and TOTP steps, bound to
//!   one pending approval instead of a login.
//! - Layout: this file holds the service and its types; `login.rs` the challenge and its completion,
//!   `enrol.rs` adding and removing factors, `step_up.rs` approvals, `codes.rs` and `totp.rs` the codes, `store.rs`
//!   the SQL.
//! - `auth` knows nothing of this module: it exposes the two halves of a login, the `mfa` token, and a flag
//!   on the account saying whether a factor is confirmed (which this service keeps current).

pub mod codes;
mod enrol;
pub mod error;
mod login;
pub mod step_up;
pub mod store;
pub mod totp;

use std::sync::Arc;

use serde::Serialize;

use crate::{
    audit::Audit,
    auth::{Auth, Issued},
    clock::SharedClock,
    ids::UserId,
    sms::Sms,
    store::Db,
    tools::approval::Approvals,
};
pub use codes::Keys;
pub use error::MfaError;

/// How long a sent code and a login challenge live, ms.
pub const CODE_MS: i64 = 5 * 60_000;

/// A way to complete a login challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Sms,
    Totp,
    Recovery,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Sms => "sms",
            Method::Totp => "totp",
            Method::Recovery => "recovery",
        }
    }

    pub fn parse(text: &str) -> Result<Method, MfaError> {
        match text {
            "sms" => Ok(Method::Sms),
            "totp" => Ok(Method::Totp),
            "recovery" => Ok(Method::Recovery),
            _ => Err(MfaError::MethodUnavailable(
                "method must be \"sms\", \"totp\" or \"recovery\"".into(),
            )),
        }
    }
}

/// What a login with a correct password leads to.
pub enum LoginOutcome {
    /// No second factor: the session is open.
    Session(Issued),
    /// A second factor is awaited: present `mfa_token` with a code of one of `methods`.
    Challenge {
        mfa_token: String,
        methods: Vec<Method>,
    },
}

/// A new, unconfirmed TOTP secret, to show the user once.
pub struct TotpEnrolment {
    pub secret: String,
    pub otpauth_uri: String,
}

/// The factors a user has (never a secret).
#[derive(Serialize)]
pub struct Factors {
    /// The phone, masked, and whether it is verified.
    pub phone: Option<PhoneFactor>,
    pub totp: bool,
    pub recovery_codes_remaining: i64,
    /// The user's role requires a second factor.
    pub required: bool,
    /// At least one factor is confirmed.
    pub enrolled: bool,
}

#[derive(Serialize)]
pub struct PhoneFactor {
    pub number: String,
    pub verified: bool,
}

/// What the service is built from.
pub struct MfaParts {
    pub db: Db,
    pub clock: SharedClock,
    pub audit: Audit,
    pub auth: Arc<Auth>,
    pub sms: Arc<Sms>,
    /// Derived from the signing secret ([`Keys::derive`]).
    pub keys: Keys,
    /// The pending tool-call approvals a step-up code decides ([`step_up`]).
    pub approvals: Arc<Approvals>,
}

pub struct Mfa {
    db: Db,
    clock: SharedClock,
    audit: Audit,
    auth: Arc<Auth>,
    sms: Arc<Sms>,
    keys: Keys,
    approvals: Arc<Approvals>,
}

/// The binding of a phone enrolment's code.
fn phone_binding(user_id: &UserId) -> String {
    format!("phone:{user_id}")
}

/// The binding of a user's recovery codes.
fn recovery_binding(user_id: &UserId) -> String {
    format!("recovery:{user_id}")
}

/// Whole seconds to wait (at least one) for `ms` milliseconds.
fn retry_secs(ms: i64) -> u64 {
    u64::try_from(ms.max(1000)).unwrap_or(1000).div_ceil(1000)
}

fn code_text(code: &str) -> String {
    format!("Your Warden sign-in code is {code}. It expires in 5 minutes. Never share it.")
}

impl Mfa {
    pub fn new(p: MfaParts) -> Mfa {
        Mfa {
            db: p.db,
            clock: p.clock,
            audit: p.audit,
            auth: p.auth,
            sms: p.sms,
            keys: p.keys,
            approvals: p.approvals,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}
