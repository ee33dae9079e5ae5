//! Telesign: the REST client Warden uses ([`Client`]), the request signing both ways ([`sign`]) and the local
//! mock that speaks the same wire format ([`mock`], served by `warden telesign-mock` and used by the tests).
//!
//! Protocol decisions are recorded in `src/sms/README.md`. In short: requests are digest-signed (HMAC-SHA256,
//! the `Date` form); only requests that cannot be delivered twice are retried (GETs, and a POST whose
//! connection was refused before anything was sent); Telesign's answers become [`TelesignError`] outcomes.

mod client;
pub mod mock;
pub mod replies;
pub mod sign;

pub use client::{Client, SendSms};
pub use replies::*;

use super::SmsError;

/// What went wrong talking to Telesign, as outcomes a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum TelesignError {
    /// Telesign refused the request itself (an invalid number, a missing field): retrying will not help.
    #[error("Telesign refused the request: {description} ({code})")]
    Rejected { code: i64, description: String },
    /// Telesign refused our credentials or signature (401): a configuration problem on our side.
    #[error("Telesign refused our credentials ({code})")]
    Unauthorized { code: i64 },
    #[error("Telesign asks to slow down; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Telesign answered 5xx or could not be reached.
    #[error("Telesign is unavailable")]
    Unavailable,
    /// No answer within the configured timeout; a POST may or may not have been carried out.
    #[error("Telesign did not answer in time")]
    Timeout,
    /// An answer we cannot read.
    #[error("Telesign's reply was not understood: {0}")]
    Malformed(String),
}

impl From<TelesignError> for SmsError {
    fn from(e: TelesignError) -> SmsError {
        match e {
            TelesignError::Rejected { code, description } => {
                SmsError::Rejected { code, description }
            }
            TelesignError::RateLimited { retry_after_secs } => {
                SmsError::RateLimited { retry_after_secs }
            }
            TelesignError::Unavailable | TelesignError::Timeout => SmsError::Unavailable,
            // Our credentials or an unreadable reply: the operator must look, so it is logged as internal.
            e @ (TelesignError::Unauthorized { .. } | TelesignError::Malformed(_)) => {
                SmsError::Internal(anyhow::Error::new(e))
            }
        }
    }
}
