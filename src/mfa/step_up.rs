//! Step-up approvals: approving a tool call under an `ask` rule with `step_up` needs a fresh second-factor code
//! from the approver, bound to that approval (`tools::approval::StepUpBinding`: approver, approval id, tool,
//! SHA-256 of the canonical arguments). The flow "verify the code, then decide" lives here, above both the
//! pending approvals (`tools`) and the factors; `POST /chat/approvals/{id}` calls [`Mfa::decide_approval`].
//!
//! - SMS: [`Mfa::send_approval_code`] sends a code to the approver's verified phone; it is stored only as an
//!   HMAC over the binding's key, on the approval's challenge row, and lives two minutes by the injected clock
//!   (a resend, 30 s apart and at most five, replaces it).
//! - TOTP: the current code; a step is accepted once per user, the same rule as at login.
//! - Either way the approval's challenge takes five wrong codes, after which even the right one fails, and a
//!   code is spent by one conditional UPDATE (the login's).
//! - A refused attempt (no code, a wrong, expired or used code, another approval's code) leaves the call
//!   pending: it does not run, and it is refused when its wait ends or when the approver says no (which needs
//!   no code). Every refused attempt is a `tool.step_up_failure` audit event; no code is ever recorded.

use serde_json::json;

use super::{Method, Mfa, MfaError, codes, error::StoreContext, retry_secs, store};
use crate::{
    audit::Event,
    ids::{ApprovalId, UserId},
    sms::MessageKind,
    tools::approval::{ApproverFactors, Awaiting, StepUpBinding},
};

fn approval_code_text(code: &str, tool: &str) -> String {
    format!(
        "Your Warden code to approve the tool call {tool} is {code}. It expires in 2 minutes. Never share it."
    )
}

impl Mfa {
    /// The binding of `approval_id` if it is a step-up approval pending for `user_id` (on any instance).
    async fn step_up_binding(
        &self,
        user_id: &UserId,
        approval_id: &ApprovalId,
    ) -> Result<Option<StepUpBinding>, MfaError> {
        let awaiting = self
            .approvals
            .awaiting(approval_id, user_id)
            .await
            .context("approvals: awaiting")?;
        match awaiting {
            None => Err(MfaError::NoSuchApproval),
            Some(Awaiting::Plain) => Ok(None),
            Some(Awaiting::StepUp(b)) => Ok(Some(b)),
        }
    }

    /// Sends an SMS code for a pending step-up approval to the approver's verified phone.
    pub async fn send_approval_code(
        &self,
        user_id: &UserId,
        approval_id: &ApprovalId,
    ) -> Result<(), MfaError> {
        let binding = self
            .step_up_binding(user_id, approval_id)
            .await?
            .ok_or_else(|| {
                MfaError::MethodUnavailable("This approval needs no second-factor code".into())
            })?;
        let number = self
            .verified_number(user_id)
            .await?
            .ok_or_else(|| MfaError::MethodUnavailable("No verified phone for SMS codes".into()))?;
        let now = self.now();
        let code = codes::new_code();
        let id = uuid::Uuid::new_v4().to_string();
        let digest = binding.digest();
        let new = store::NewStepUp {
            id: &id,
            user_id: user_id.as_str(),
            approval_id: approval_id.as_str(),
            binding: &digest,
            now,
            expires_at: StepUpBinding::expires_at(now),
        };
        let stored = store::upsert_step_up_code(
            self.db.writer(),
            &new,
            &self.keys.code_hmac(&binding.key(), &code),
        )
        .await
        .context("mfa store: upsert_step_up_code")?;
        if !stored {
            let row = store::find_step_up_challenge(
                &self.db.pool,
                approval_id.as_str(),
                user_id.as_str(),
                &digest,
            )
            .await
            .context("mfa store: find_step_up_challenge")?;
            let retry_after_ms = row.map_or(store::RESEND_MS, |r| {
                r.last_sent_at.unwrap_or(now) + store::RESEND_MS - now
            });
            self.audit.record(
                Event::new("tool.step_up_resend_throttled", "denied")
                    .actor(user_id)
                    .subject(approval_id.as_str()),
            );
            return Err(MfaError::ResendTooSoon {
                retry_after_secs: retry_secs(retry_after_ms),
            });
        }
        self.sms
            .send(
                user_id,
                &number,
                &approval_code_text(&code, &binding.tool),
                MessageKind::Otp,
            )
            .await?;
        self.audit.record(
            Event::new("tool.step_up_code_sent", "ok")
                .actor(user_id)
                .subject(approval_id.as_str())
                .detail(json!({"tool": binding.tool, "number": number.masked()})),
        );
        Ok(())
    }

    /// The approver's decision on a pending call: a refusal, or a plain approval, goes straight through; the
    /// approval of a step-up call needs `code` of `method` (`sms` or `totp`) verified against its binding.
    pub async fn decide_approval(
        &self,
        user_id: &UserId,
        approval_id: &ApprovalId,
        approve: bool,
        code: Option<&str>,
        method: Option<&str>,
    ) -> Result<(), MfaError> {
        let binding = self.step_up_binding(user_id, approval_id).await?;
        let Some(binding) = binding.filter(|_| approve) else {
            // The pending service records the decision in the audit trail.
            let decided = self
                .approvals
                .decide(approval_id, user_id, approve)
                .await
                .context("approvals: decide")?;
            return if decided {
                Ok(())
            } else {
                Err(MfaError::NoSuchApproval)
            };
        };
        let refuse = |method: Option<Method>, reason: &str| {
            self.audit.record(
                Event::new("tool.step_up_failure", "denied")
                    .actor(user_id)
                    .subject(approval_id.as_str())
                    .detail(json!({"tool": binding.tool, "method": method, "reason": reason})),
            );
        };
        let (Some(code), Some(method)) = (code, method) else {
            refuse(None, "no_code");
            return Err(MfaError::StepUpRequired);
        };
        let method = match Method::parse(method) {
            Ok(m @ (Method::Sms | Method::Totp)) => m,
            _ => {
                return Err(MfaError::MethodUnavailable(
                    "method must be \"sms\" or \"totp\"".into(),
                ));
            }
        };
        let now = self.now();
        let digest = binding.digest();
        if method == Method::Totp {
            let id = uuid::Uuid::new_v4().to_string();
            store::insert_step_up_challenge(
                self.db.writer(),
                &store::NewStepUp {
                    id: &id,
                    user_id: user_id.as_str(),
                    approval_id: approval_id.as_str(),
                    binding: &digest,
                    now,
                    expires_at: StepUpBinding::expires_at(now),
                },
            )
            .await
            .context("mfa store: insert_step_up_challenge")?;
        }
        let row = store::find_step_up_challenge(
            &self.db.pool,
            approval_id.as_str(),
            user_id.as_str(),
            &digest,
        )
        .await
        .context("mfa store: find_step_up_challenge")?;
        let Some(row) = row else {
            // No code was ever sent for this approval: whatever was typed belongs to something else.
            refuse(Some(method), "no_code_sent");
            return Err(MfaError::StepUpFailed);
        };
        let won = match method {
            Method::Sms => {
                codes::is_six_digits(code)
                    && store::consume_challenge_code(
                        self.db.writer(),
                        &row.id,
                        &self.keys.code_hmac(&binding.key(), code),
                        now,
                    )
                    .await
                    .context("mfa store: consume_challenge_code")?
            }
            _ => match self.totp_step(user_id, code).await? {
                Some(step) => store::consume_challenge_with_totp(
                    self.db.writer(),
                    &row.id,
                    user_id.as_str(),
                    step,
                    now,
                )
                .await
                .context("mfa store: consume_challenge_with_totp")?,
                None => false,
            },
        };
        if !won {
            store::record_challenge_failure(self.db.writer(), &row.id)
                .await
                .context("mfa store: record_challenge_failure")?;
            let reason = if row.used_at.is_some() {
                "used"
            } else if StepUpBinding::is_expired(row.expires_at, now)
                || (method == Method::Sms
                    && row
                        .code_expires_at
                        .is_none_or(|e| StepUpBinding::is_expired(e, now)))
            {
                "expired"
            } else if row.attempts >= store::MAX_ATTEMPTS {
                "too_many_attempts"
            } else {
                "wrong_code"
            };
            refuse(Some(method), reason);
            return Err(MfaError::StepUpFailed);
        }
        // The code is spent; the call may have been withdrawn meanwhile (its wait ended).
        let approved = self
            .approvals
            .approve_step_up(&binding)
            .await
            .context("approvals: approve_step_up")?;
        if !approved {
            return Err(MfaError::NoSuchApproval);
        }
        self.audit.record(
            Event::new("tool.step_up_verified", "ok")
                .actor(user_id)
                .subject(approval_id.as_str())
                .detail(json!({"tool": binding.tool, "method": method})),
        );
        Ok(())
    }
}

impl ApproverFactors for Mfa {
    fn step_up_methods<'a>(
        &'a self,
        user_id: &'a UserId,
    ) -> futures::future::BoxFuture<'a, Vec<&'static str>> {
        Box::pin(async move {
            match self.methods_of(user_id).await {
                Ok(methods) => methods
                    .into_iter()
                    .filter(|m| *m != Method::Recovery)
                    .map(Method::as_str)
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "reading an approver's second factors");
                    Vec::new()
                }
            }
        })
    }
}
