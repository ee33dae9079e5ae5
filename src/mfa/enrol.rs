//! Enrolling and removing factors: a phone (risk-checked, confirmed by a code), a TOTP authenticator
//! (confirmed by a first code, with recovery codes shown once).

use serde_json::json;

use super::{
    CODE_MS, Factors, Mfa, MfaError, PhoneFactor, TotpEnrolment, code_text, codes,
    error::StoreContext, phone_binding, recovery_binding, retry_secs, store, totp,
};
use crate::{
    audit::Event,
    auth::Account,
    ids::UserId,
    sms::{MessageKind, PhoneNumber, Recommendation},
};

impl Mfa {
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
    pub(super) async fn sync_enrolled(&self, user_id: &UserId) -> Result<bool, MfaError> {
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

    /// The `otpauth://` URI of the caller's pending (started, unconfirmed) TOTP enrolment, for the settings
    /// page's QR code; `None` when none is pending (a confirmed secret is never shown again).
    pub async fn pending_totp_uri(&self, account: &Account) -> Result<Option<String>, MfaError> {
        let Some(row) = store::find_totp(&self.db.pool, account.id.as_str())
            .await
            .context("mfa store: find_totp")?
            .filter(|t| t.confirmed_at.is_none())
        else {
            return Ok(None);
        };
        let secret = self.open_totp_secret(&account.id, &row.secret_sealed)?;
        Ok(Some(totp::otpauth_uri(
            &account.username,
            &totp::base32(&secret),
        )))
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
