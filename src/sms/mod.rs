//! SMS: sending messages and looking numbers up through a provider, for the SMS routes, second factors and
//! the agent's tools.
//!
//! Layout: `number.rs` normalises and masks phone numbers; `console.rs` is the development provider (prints
//! each message on standard output); `telesign/` is the Telesign client, its request signing and the local
//! mock that speaks the same wire format. [`Sms`] is the service every caller goes through: it picks the
//! provider, enforces the destination rules (allowed countries, per-user and per-number limits) and records
//! every provider call in the transaction log.
//!
//! Invariants:
//! - A number is normalised (and refused when it cannot be one) before any provider call.
//! - No code, API key or full phone number is logged, stored in clear or returned; logs and rows carry
//!   [`PhoneNumber::masked`].

pub mod console;
pub mod number;
pub mod telesign;

use std::sync::Arc;

pub use number::{InvalidNumber, PhoneNumber};

use crate::{
    config::{SmsConfig, SmsProviderKind},
    ids::UserId,
};

/// Telesign's message types: one-time passwords, alerts and reminders, marketing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Otp,
    Arn,
    Mkt,
}

impl MessageKind {
    /// The `message_type` value Telesign expects.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Otp => "OTP",
            MessageKind::Arn => "ARN",
            MessageKind::Mkt => "MKT",
        }
    }
}

/// What a provider answered to a send.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The provider's id of the message (32 hex characters at Telesign).
    pub reference_id: String,
    pub status_code: i64,
    pub status: String,
}

/// Telesign's recommendation from a risk score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Recommendation {
    Allow,
    Flag,
    Block,
}

/// A number's fraud risk.
#[derive(Clone, Debug)]
pub struct Risk {
    /// `low`, `medium-low`, `medium`, `medium-high` or `high`.
    pub level: String,
    /// 0 to 1000.
    pub score: i64,
    pub recommendation: Recommendation,
    pub phone_type: Option<String>,
    pub carrier: Option<String>,
}

/// Why an SMS operation did not happen. Outcomes, not statuses: `http/error.rs` maps them.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error("SMS is not configured on this server (SMS_PROVIDER=none)")]
    Disabled,
    #[error(transparent)]
    InvalidNumber(#[from] InvalidNumber),
    #[error("SMS to this country is not allowed here (SMS_ALLOWED_COUNTRIES)")]
    CountryNotAllowed,
    #[error("Too many messages; try again later")]
    RateLimited { retry_after_secs: u64 },
    /// The provider refused the request (an invalid number, a blocked destination): not worth retrying.
    #[error("The SMS provider refused the request: {description} ({code})")]
    Rejected { code: i64, description: String },
    /// The provider could not be reached, timed out or failed; what was sent may or may not have arrived.
    #[error("The SMS provider is unavailable; try again later")]
    Unavailable,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

enum Provider {
    Disabled,
    Console(console::Console),
}

/// The SMS service. Cheap to share behind an `Arc`.
pub struct Sms {
    provider: Provider,
    config: SmsConfig,
}

impl Sms {
    pub fn new(config: SmsConfig) -> anyhow::Result<Arc<Sms>> {
        let provider = match config.provider {
            SmsProviderKind::Disabled => Provider::Disabled,
            SmsProviderKind::Console => Provider::Console(console::Console::default()),
            SmsProviderKind::Telesign => {
                anyhow::bail!("SMS_PROVIDER=telesign is not wired yet")
            }
        };
        Ok(Arc::new(Sms { provider, config }))
    }

    /// The console provider's recent messages (development and tests); `None` with another provider.
    pub fn console(&self) -> Option<&console::Console> {
        match &self.provider {
            Provider::Console(c) => Some(c),
            _ => None,
        }
    }

    /// Sends `text` to `to` on behalf of `actor`, after the destination rules.
    pub async fn send(
        &self,
        actor: &UserId,
        to: &PhoneNumber,
        text: &str,
        kind: MessageKind,
    ) -> Result<Sent, SmsError> {
        self.check_destination(to)?;
        match &self.provider {
            Provider::Disabled => Err(SmsError::Disabled),
            Provider::Console(c) => Ok(c.send(actor, to, text, kind)),
        }
    }

    /// The fraud risk of a number, for `account_lifecycle_event` `event` (create, sign-in, transact, update,
    /// delete).
    pub async fn assess_risk(
        &self,
        _actor: &UserId,
        to: &PhoneNumber,
        _event: &str,
    ) -> Result<Risk, SmsError> {
        match &self.provider {
            Provider::Disabled => Err(SmsError::Disabled),
            // The console has no risk data: every number is low risk, and says so.
            Provider::Console(_) => Ok(Risk {
                level: "low".into(),
                score: 0,
                recommendation: Recommendation::Allow,
                phone_type: None,
                carrier: None,
            })
            .inspect(|_| tracing::debug!(number = %to.masked(), "console provider: no risk data")),
        }
    }

    fn check_destination(&self, to: &PhoneNumber) -> Result<(), SmsError> {
        if !to.in_countries(&self.config.allowed_countries) {
            return Err(SmsError::CountryNotAllowed);
        }
        Ok(())
    }
}
