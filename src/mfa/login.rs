//! A login's second step: the challenge after the password, resending its code, and completing it.

use std::{net::IpAddr, sync::Arc};

use serde_json::json;

use super::{
    CODE_MS, LoginOutcome, Method, Mfa, MfaError, code_text, codes, error::StoreContext,
    recovery_binding, retry_secs, store, totp,
};
use crate::{
    audit::Event,
    auth::{Account, AuthError, Issued, SessionMode},
    ids::UserId,
    sms::{MessageKind, PhoneNumber},
};

impl Mfa {
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
    pub(super) async fn challenge(
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

    pub(super) async fn active_account(&self, user_id: &UserId) -> Result<Arc<Account>, MfaError> {
        match self.auth.account(user_id.as_str()).await? {
            Some(a) if a.active => Ok(a),
            _ => Err(AuthError::Unauthorized.into()),
        }
    }

    /// The step of the user's confirmed TOTP secret that `code` belongs to (now, or one step either way).
    pub(super) async fn totp_step(
        &self,
        user_id: &UserId,
        code: &str,
    ) -> Result<Option<i64>, MfaError> {
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

    pub(super) fn open_totp_secret(
        &self,
        user_id: &UserId,
        sealed: &str,
    ) -> Result<Vec<u8>, MfaError> {
        self.keys
            .open("totp", user_id.as_str(), sealed)
            .ok_or_else(|| {
                MfaError::Internal(anyhow::anyhow!(
                    "a sealed TOTP secret does not open (signing key changed?)"
                ))
            })
    }

    /// The methods that can complete a challenge for this user.
    pub(super) async fn methods_of(&self, user_id: &UserId) -> Result<Vec<Method>, MfaError> {
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

    pub(super) async fn verified_number(
        &self,
        user_id: &UserId,
    ) -> Result<Option<PhoneNumber>, MfaError> {
        let Some(row) = store::find_phone(&self.db.pool, user_id.as_str())
            .await
            .context("mfa store: find_phone")?
            .filter(|p| p.verified_at.is_some())
        else {
            return Ok(None);
        };
        self.open_number(user_id, &row.number_sealed).map(Some)
    }

    pub(super) fn open_number(
        &self,
        user_id: &UserId,
        sealed: &str,
    ) -> Result<PhoneNumber, MfaError> {
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
}
