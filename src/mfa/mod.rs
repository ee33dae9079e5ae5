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
//! - `auth` knows nothing of this module: it exposes the two halves of a login, the `mfa` token, and a flag
//!   on the account saying whether a factor is confirmed (which this service keeps current).

pub mod codes;
pub mod error;
pub mod step_up;
pub mod store;
pub mod totp;

use std::{net::IpAddr, sync::Arc};

use serde::Serialize;
use serde_json::json;

use crate::{
    audit::{Audit, Event},
    auth::{Account, Auth, AuthError, Issued, SessionMode},
    clock::SharedClock,
    ids::UserId,
    sms::{MessageKind, PhoneNumber, Recommendation, Sms},
    store::Db,
    tools::approval::Approvals,
};
pub use codes::Keys;
pub use error::MfaError;
use error::StoreContext;

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

    // ---- Login ----

    /// Checks the password; opens the session, or (with a factor confirmed) starts a challenge and sends the
    /// SMS code if the user has a verified phone.
    pub async fn login(
        &self,
        raw_username: &str,
        raw_password: String,
        mode: SessionMode,
        ip: IpAddr,
        user_agent: Option<&str>,
        replaces: Option<&str>,
    ) -> Result<LoginOutcome, MfaError> {
        let account = self
            .auth
            .check_password(raw_username, raw_password, ip)
            .await?;
        let methods = if account.mfa_enrolled {
            self.methods_of(&account.id).await?
        } else {
            Vec::new()
        };
        if methods.is_empty() {
            let issued = self
                .auth
                .open_login_session(account, mode, ip, user_agent, replaces, "password")
                .await?;
            return Ok(LoginOutcome::Session(issued));
        }
        let now = self.now();
        let challenge_id = uuid::Uuid::new_v4().to_string();
        let phone = if methods.contains(&Method::Sms) {
            self.verified_number(&account.id).await?
        } else {
            None
        };
        let code = phone.as_ref().map(|_| codes::new_code());
        let code_hmac = code.as_ref().map(|c| self.keys.code_hmac(&challenge_id, c));
        store::insert_challenge(
            self.db.writer(),
            &store::NewChallenge {
                id: &challenge_id,
                user_id: account.id.as_str(),
                mode: match mode {
                    SessionMode::Bearer => "bearer",
                    SessionMode::Cookie => "cookie",
                },
                now,
                expires_at: now + CODE_MS,
                code: code_hmac.as_deref().map(|h| (h, now + CODE_MS)),
            },
        )
        .await
        .context("mfa store: insert_challenge")?;
        self.audit.record(
            Event::new("mfa.challenge", "ok")
                .actor(&account.id)
                .ip(ip)
                .detail(json!({"challenge_id": challenge_id, "methods": methods})),
        );
        if let (Some(number), Some(code)) = (&phone, &code) {
            match self
                .sms
                .send(&account.id, number, &code_text(code), MessageKind::Otp)
                .await
            {
                Ok(_) => {}
                // Another method can still complete the login; the user can also ask for a resend.
                Err(e) if methods.iter().any(|m| *m != Method::Sms) => {
                    self.audit.record(
                        Event::new("mfa.send_failed", "error")
                            .actor(&account.id)
                            .detail(json!({"challenge_id": challenge_id, "number": number.masked(), "error": e.to_string()})),
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(LoginOutcome::Challenge {
            mfa_token: self.auth.issue_mfa_token(&account.id, &challenge_id),
            methods,
        })
    }

    /// The challenge an `mfa` token names, if it is the token's user's.
    async fn challenge(
        &self,
        mfa_token: &str,
    ) -> Result<(UserId, String, store::ChallengeRow), MfaError> {
        let (user_id, challenge_id) = self.auth.verify_mfa_token(mfa_token)?;
        let row = store::find_challenge(&self.db.pool, &challenge_id)
            .await
            .context("mfa store: find_challenge")?
            .filter(|c| c.user_id == user_id.as_str())
            .ok_or(AuthError::Unauthorized)?;
        Ok((user_id, challenge_id, row))
    }

    /// Sends a new SMS code for a challenge; the older one stops working.
    pub async fn send_login_code(&self, mfa_token: &str) -> Result<(), MfaError> {
        let (user_id, challenge_id, row) = self.challenge(mfa_token).await?;
        let now = self.now();
        if row.used_at.is_some() || row.expires_at <= now {
            return Err(AuthError::Unauthorized.into());
        }
        let number = self
            .verified_number(&user_id)
            .await?
            .ok_or_else(|| MfaError::MethodUnavailable("No verified phone for SMS codes".into()))?;
        let code = codes::new_code();
        let replaced = store::replace_challenge_code(
            self.db.writer(),
            &challenge_id,
            &self.keys.code_hmac(&challenge_id, &code),
            now + CODE_MS,
            now,
        )
        .await
        .context("mfa store: replace_challenge_code")?;
        if !replaced {
            let retry_after_ms =
                if row.sends >= store::MAX_SENDS || row.attempts >= store::MAX_ATTEMPTS {
                    row.expires_at - now
                } else {
                    row.last_sent_at.unwrap_or(now) + store::RESEND_MS - now
                };
            self.audit.record(
                Event::new("mfa.resend_throttled", "denied")
                    .actor(&user_id)
                    .detail(json!({"challenge_id": challenge_id})),
            );
            return Err(MfaError::ResendTooSoon {
                retry_after_secs: retry_secs(retry_after_ms),
            });
        }
        self.sms
            .send(&user_id, &number, &code_text(&code), MessageKind::Otp)
            .await?;
        self.audit.record(
            Event::new("mfa.code_sent", "ok")
                .actor(&user_id)
                .detail(json!({"challenge_id": challenge_id, "number": number.masked()})),
        );
        Ok(())
    }

    /// Completes a challenge with a code of `method` and opens the session as a plain login would.
    pub async fn verify_login(
        &self,
        mfa_token: &str,
        code: &str,
        method: &str,
        ip: IpAddr,
        user_agent: Option<&str>,
        replaces: Option<&str>,
    ) -> Result<Issued, MfaError> {
        let (user_id, challenge_id, row) = self.challenge(mfa_token).await?;
        let method = Method::parse(method)?;
        let now = self.now();
        let won = match method {
            Method::Sms => {
                codes::is_six_digits(code)
                    && store::consume_challenge_code(
                        self.db.writer(),
                        &challenge_id,
                        &self.keys.code_hmac(&challenge_id, code),
                        now,
                    )
                    .await
                    .context("mfa store: consume_challenge_code")?
            }
            Method::Totp => match self.totp_step(&user_id, code).await? {
                Some(step) => store::consume_challenge_with_totp(
                    self.db.writer(),
                    &challenge_id,
                    user_id.as_str(),
                    step,
                    now,
                )
                .await
                .context("mfa store: consume_challenge_with_totp")?,
                None => false,
            },
            Method::Recovery => match codes::normalise_recovery_code(code) {
                Some(plain) => store::consume_challenge_with_recovery_code(
                    self.db.writer(),
                    &challenge_id,
                    user_id.as_str(),
                    &self.keys.code_hmac(&recovery_binding(&user_id), &plain),
                    now,
                )
                .await
                .context("mfa store: consume_challenge_with_recovery_code")?,
                None => false,
            },
        };
        if !won {
            store::record_challenge_failure(self.db.writer(), &challenge_id)
                .await
                .context("mfa store: record_challenge_failure")?;
            let reason = if row.used_at.is_some() {
                "used"
            } else if row.expires_at <= now
                || (method == Method::Sms && row.code_expires_at.is_some_and(|e| e <= now))
            {
                "expired"
            } else if row.attempts >= store::MAX_ATTEMPTS {
                "too_many_attempts"
            } else {
                "wrong_code"
            };
            self.audit.record(
                Event::new("mfa.failure", "denied")
                    .actor(&user_id)
                    .ip(ip)
                    .detail(
                        json!({"challenge_id": challenge_id, "method": method, "reason": reason}),
                    ),
            );
            return Err(MfaError::InvalidCode);
        }
        self.audit.record(
            Event::new("mfa.success", "ok")
                .actor(&user_id)
                .ip(ip)
                .detail(json!({"challenge_id": challenge_id, "method": method})),
        );
        if method == Method::Recovery {
            let left = store::count_recovery_codes_left(&self.db.pool, user_id.as_str())
                .await
                .context("mfa store: count_recovery_codes_left")?;
            self.audit.record(
                Event::new("mfa.recovery_used", "ok")
                    .actor(&user_id)
                    .detail(json!({"remaining": left})),
            );
        }
        let account = self.active_account(&user_id).await?;
        let mode = if row.mode == "cookie" {
            SessionMode::Cookie
        } else {
            SessionMode::Bearer
        };
        Ok(self
            .auth
            .open_login_session(account, mode, ip, user_agent, replaces, method.as_str())
            .await?)
    }

    async fn active_account(&self, user_id: &UserId) -> Result<Arc<Account>, MfaError> {
        match self.auth.account(user_id.as_str()).await? {
            Some(a) if a.active => Ok(a),
            _ => Err(AuthError::Unauthorized.into()),
        }
    }

    /// The step of the user's confirmed TOTP secret that `code` belongs to (now, or one step either way).
    async fn totp_step(&self, user_id: &UserId, code: &str) -> Result<Option<i64>, MfaError> {
        if !codes::is_six_digits(code) {
            return Ok(None);
        }
        let Some(row) = store::find_totp(&self.db.pool, user_id.as_str())
            .await
            .context("mfa store: find_totp")?
            .filter(|t| t.confirmed_at.is_some())
        else {
            return Ok(None);
        };
        let secret = self.open_totp_secret(user_id, &row.secret_sealed)?;
        Ok(totp::matching_step(
            &secret,
            code,
            totp::step_at(self.clock.now_secs()),
        ))
    }

    fn open_totp_secret(&self, user_id: &UserId, sealed: &str) -> Result<Vec<u8>, MfaError> {
        self.keys
            .open("totp", user_id.as_str(), sealed)
            .ok_or_else(|| {
                MfaError::Internal(anyhow::anyhow!(
                    "a sealed TOTP secret does not open (signing key changed?)"
                ))
            })
    }

    /// The methods that can complete a challenge for this user.
    async fn methods_of(&self, user_id: &UserId) -> Result<Vec<Method>, MfaError> {
        let f = self.find_factors(user_id).await?;
        let mut methods = Vec::new();
        if f.phone.as_ref().is_some_and(|p| p.verified) {
            methods.push(Method::Sms);
        }
        if f.totp {
            methods.push(Method::Totp);
        }
        if !methods.is_empty() && f.recovery_codes_remaining > 0 {
            methods.push(Method::Recovery);
        }
        Ok(methods)
    }

    async fn verified_number(&self, user_id: &UserId) -> Result<Option<PhoneNumber>, MfaError> {
        let Some(row) = store::find_phone(&self.db.pool, user_id.as_str())
            .await
            .context("mfa store: find_phone")?
            .filter(|p| p.verified_at.is_some())
        else {
            return Ok(None);
        };
        self.open_number(user_id, &row.number_sealed).map(Some)
    }

    fn open_number(&self, user_id: &UserId, sealed: &str) -> Result<PhoneNumber, MfaError> {
        let digits = self
            .keys
            .open("phone", user_id.as_str(), sealed)
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| {
                MfaError::Internal(anyhow::anyhow!("a sealed phone number does not open"))
            })?;
        PhoneNumber::parse(&digits)
            .map_err(|e| MfaError::Internal(anyhow::anyhow!("stored number: {e}")))
    }

    // ---- Enrolment ----

    /// The user's factors, for `GET /api/me/mfa` (never a secret; the number masked).
    pub async fn find_factors(&self, user_id: &UserId) -> Result<Factors, MfaError> {
        let phone = store::find_phone(&self.db.pool, user_id.as_str())
            .await
            .context("mfa store: find_phone")?;
        let totp = store::find_totp(&self.db.pool, user_id.as_str())
            .await
            .context("mfa store: find_totp")?
            .is_some_and(|t| t.confirmed_at.is_some());
        let recovery_codes_remaining = if totp {
            store::count_recovery_codes_left(&self.db.pool, user_id.as_str())
                .await
                .context("mfa store: count_recovery_codes_left")?
        } else {
            0
        };
        let required = self
            .auth
            .account(user_id.as_str())
            .await?
            .is_some_and(|a| a.mfa_required);
        let phone = phone.map(|p| PhoneFactor {
            number: p.number_masked,
            verified: p.verified_at.is_some(),
        });
        let enrolled = totp || phone.as_ref().is_some_and(|p| p.verified);
        Ok(Factors {
            phone,
            totp,
            recovery_codes_remaining,
            required,
            enrolled,
        })
    }

    /// Keeps the account's "has a confirmed factor" flag in step with the tables.
    async fn sync_enrolled(&self, user_id: &UserId) -> Result<bool, MfaError> {
        let enrolled = self.find_factors(user_id).await?.enrolled;
        self.auth
            .set_second_factor_enrolled(user_id, enrolled)
            .await?;
        Ok(enrolled)
    }

    /// Starts a phone enrolment: the number's risk is assessed (a `block` refuses it, a `flag` is recorded),
    /// then a code goes to it. Returns the masked number.
    pub async fn enrol_phone(
        &self,
        user_id: &UserId,
        raw_number: &str,
    ) -> Result<String, MfaError> {
        let number = PhoneNumber::parse(raw_number).map_err(crate::sms::SmsError::from)?;
        let masked = number.masked();
        if store::find_phone(&self.db.pool, user_id.as_str())
            .await
            .context("mfa store: find_phone")?
            .is_some_and(|p| p.verified_at.is_some())
        {
            return Err(MfaError::AlreadyEnrolled(
                "A verified phone is enrolled; remove it first".into(),
            ));
        }
        let risk = self.sms.assess_risk(user_id, &number, "create").await?;
        let risk_detail = json!({"number": masked, "level": risk.level, "score": risk.score, "recommendation": risk.recommendation});
        match risk.recommendation {
            Recommendation::Block => {
                self.audit.record(
                    Event::new("mfa.phone_blocked", "denied")
                        .actor(user_id)
                        .detail(risk_detail),
                );
                return Err(MfaError::NumberBlocked);
            }
            Recommendation::Flag => self.audit.record(
                Event::new("mfa.phone_flagged", "ok")
                    .actor(user_id)
                    .detail(risk_detail),
            ),
            Recommendation::Allow => {}
        }
        let now = self.now();
        let code = codes::new_code();
        let stored = store::upsert_unverified_phone(
            self.db.writer(),
            &store::NewPhoneCode {
                user_id: user_id.as_str(),
                number_sealed: &self.keys.seal(
                    "phone",
                    user_id.as_str(),
                    number.digits().as_bytes(),
                ),
                number_masked: &masked,
                code_hmac: &self.keys.code_hmac(&phone_binding(user_id), &code),
                now,
                code_expires_at: now + CODE_MS,
            },
        )
        .await
        .context("mfa store: upsert_unverified_phone")?;
        if !stored {
            let row = store::find_phone(&self.db.pool, user_id.as_str())
                .await
                .context("mfa store: find_phone")?;
            return Err(match row {
                Some(p) if p.verified_at.is_some() => MfaError::AlreadyEnrolled(
                    "A verified phone is enrolled; remove it first".into(),
                ),
                Some(p) => MfaError::ResendTooSoon {
                    retry_after_secs: retry_secs(
                        p.last_sent_at.unwrap_or(now) + store::RESEND_MS - now,
                    ),
                },
                None => MfaError::Internal(anyhow::anyhow!("phone enrolment row vanished")),
            });
        }
        if let Err(e) = self
            .sms
            .send(user_id, &number, &code_text(&code), MessageKind::Otp)
            .await
        {
            // Nothing was sent (a refused destination, a provider down): the enrolment is not pending.
            store::delete_unverified_phone(self.db.writer(), user_id.as_str())
                .await
                .context("mfa store: delete_unverified_phone")?;
            return Err(e.into());
        }
        self.audit.record(
            Event::new("mfa.phone_code_sent", "ok")
                .actor(user_id)
                .detail(json!({"number": masked})),
        );
        Ok(masked)
    }

    /// Confirms the pending phone with the code sent to it; it then counts as a factor.
    pub async fn confirm_phone(&self, user_id: &UserId, code: &str) -> Result<(), MfaError> {
        let now = self.now();
        let verified = codes::is_six_digits(code)
            && store::verify_phone(
                self.db.writer(),
                user_id.as_str(),
                &self.keys.code_hmac(&phone_binding(user_id), code),
                now,
            )
            .await
            .context("mfa store: verify_phone")?;
        if !verified {
            store::record_phone_failure(self.db.writer(), user_id.as_str())
                .await
                .context("mfa store: record_phone_failure")?;
            self.audit.record(
                Event::new("mfa.failure", "denied")
                    .actor(user_id)
                    .detail(json!({"method": "sms", "during": "enrolment"})),
            );
            return Err(MfaError::WrongEnrolmentCode);
        }
        self.sync_enrolled(user_id).await?;
        self.audit.record(
            Event::new("mfa.enrolled", "ok")
                .actor(user_id)
                .detail(json!({"method": "sms"})),
        );
        Ok(())
    }

    /// Removes the phone (verified or pending).
    pub async fn remove_phone(&self, user_id: &UserId) -> Result<(), MfaError> {
        if !store::delete_phone(self.db.writer(), user_id.as_str())
            .await
            .context("mfa store: delete_phone")?
        {
            return Err(MfaError::NotEnrolled("No phone is enrolled".into()));
        }
        self.sync_enrolled(user_id).await?;
        self.audit.record(
            Event::new("mfa.removed", "ok")
                .actor(user_id)
                .detail(json!({"method": "sms"})),
        );
        Ok(())
    }

    /// Starts a TOTP enrolment: a new secret, sealed at rest, shown once.
    pub async fn start_totp(&self, account: &Account) -> Result<TotpEnrolment, MfaError> {
        let secret: [u8; totp::SECRET_BYTES] = rand::random();
        let stored = store::upsert_unconfirmed_totp(
            self.db.writer(),
            account.id.as_str(),
            &self.keys.seal("totp", account.id.as_str(), &secret),
            self.now(),
        )
        .await
        .context("mfa store: upsert_unconfirmed_totp")?;
        if !stored {
            return Err(MfaError::AlreadyEnrolled(
                "An authenticator is enrolled; remove it first".into(),
            ));
        }
        self.audit
            .record(Event::new("mfa.totp_started", "ok").actor(&account.id));
        let secret = totp::base32(&secret);
        Ok(TotpEnrolment {
            otpauth_uri: totp::otpauth_uri(&account.username, &secret),
            secret,
        })
    }

    /// Confirms the pending TOTP secret with a current code; returns ten recovery codes, shown only now.
    pub async fn confirm_totp(
        &self,
        user_id: &UserId,
        code: &str,
    ) -> Result<Vec<String>, MfaError> {
        let row = store::find_totp(&self.db.pool, user_id.as_str())
            .await
            .context("mfa store: find_totp")?
            .filter(|t| t.confirmed_at.is_none())
            .ok_or_else(|| MfaError::NotEnrolled("No authenticator enrolment is pending".into()))?;
        let secret = self.open_totp_secret(user_id, &row.secret_sealed)?;
        let Some(step) = codes::is_six_digits(code)
            .then(|| totp::matching_step(&secret, code, totp::step_at(self.clock.now_secs())))
            .flatten()
        else {
            self.audit.record(
                Event::new("mfa.failure", "denied")
                    .actor(user_id)
                    .detail(json!({"method": "totp", "during": "enrolment"})),
            );
            return Err(MfaError::WrongEnrolmentCode);
        };
        let recovery: Vec<String> = (0..codes::RECOVERY_CODES)
            .map(|_| codes::new_recovery_code())
            .collect();
        let hmacs: Vec<String> = recovery
            .iter()
            .filter_map(|c| codes::normalise_recovery_code(c))
            .map(|plain| self.keys.code_hmac(&recovery_binding(user_id), &plain))
            .collect();
        if !store::confirm_totp(self.db.writer(), user_id.as_str(), step, &hmacs, self.now())
            .await
            .context("mfa store: confirm_totp")?
        {
            return Err(MfaError::NotEnrolled(
                "No authenticator enrolment is pending".into(),
            ));
        }
        self.sync_enrolled(user_id).await?;
        self.audit.record(
            Event::new("mfa.enrolled", "ok")
                .actor(user_id)
                .detail(json!({"method": "totp", "recovery_codes": recovery.len()})),
        );
        Ok(recovery)
    }

    /// Removes the authenticator and its recovery codes; needs a current, unused code.
    pub async fn remove_totp(&self, user_id: &UserId, code: &str) -> Result<(), MfaError> {
        let confirmed = store::find_totp(&self.db.pool, user_id.as_str())
            .await
            .context("mfa store: find_totp")?
            .is_some_and(|t| t.confirmed_at.is_some());
        if !confirmed {
            return Err(MfaError::NotEnrolled("No authenticator is enrolled".into()));
        }
        let removed = match self.totp_step(user_id, code).await? {
            Some(step) => store::delete_totp_with_step(self.db.writer(), user_id.as_str(), step)
                .await
                .context("mfa store: delete_totp_with_step")?,
            None => false,
        };
        if !removed {
            self.audit.record(
                Event::new("mfa.failure", "denied")
                    .actor(user_id)
                    .detail(json!({"method": "totp", "during": "removal"})),
            );
            return Err(MfaError::WrongEnrolmentCode);
        }
        self.sync_enrolled(user_id).await?;
        self.audit.record(
            Event::new("mfa.removed", "ok")
                .actor(user_id)
                .detail(json!({"method": "totp"})),
        );
        Ok(())
    }
}
