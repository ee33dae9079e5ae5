//! SMS: sending messages and looking numbers up through a provider, for the SMS routes, second factors and
//! the agent's tools.
//!
//! Layout: `service.rs` is [`Sms`], the service every caller goes through: it picks the provider, enforces the
//! destination rules (allowed countries, per-user and per-number limits counted from the transaction log) and
//! records every provider call in that log (`store.rs`, its SQL); `tools.rs` holds the agent's SMS tools;
//! `number.rs` normalises and masks phone numbers; `console.rs` is the development provider (prints each message
//! on standard output); `telesign/` is the Telesign client, its request signing and the local mock that speaks
//! the same wire format.
//!
//! Invariants:
//! - A number is normalised (and refused when it cannot be one) before any provider call.
//! - No code, API key or full phone number is logged, stored in clear or returned; logs and rows carry
//!   [`PhoneNumber::masked`].

pub mod console;
pub mod number;
mod service;
mod store;
pub mod telesign;
pub mod tools;

pub use number::{InvalidNumber, PhoneNumber};
pub use service::{
    PhoneInfo, Receipt, Sms, SmsParts, Summary, Transaction, TransactionKind, TransactionPage,
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
    /// No transaction of the caller has this reference id.
    #[error("No such SMS transaction")]
    NotFound,
    /// A verification code that is wrong, expired, used up, or was never sent.
    #[error("The verification code is wrong or expired")]
    WrongCode,
    /// A delivery receipt whose signature did not hold (or no Telesign account to check it against).
    #[error("Delivery receipt refused: {0}")]
    ReceiptRefused(String),
    /// A signed delivery receipt we cannot read.
    #[error("Delivery receipt not understood: {0}")]
    BadReceipt(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}
