//! What the mfa service answers when it does not do what was asked: outcomes, mapped to statuses once in
//! `http/error.rs`.

use crate::{auth::AuthError, sms::SmsError};

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    /// The password step, the session or the mfa token failed (the auth service's own outcome).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Sending a code, or checking a number, failed.
    #[error(transparent)]
    Sms(#[from] SmsError),
    /// A login challenge's code is wrong, expired, used, or the challenge took too many wrong codes.
    #[error("Invalid or expired code")]
    InvalidCode,
    /// An enrolment's confirmation code is wrong, expired or used up.
    #[error("Invalid or expired code")]
    WrongEnrolmentCode,
    /// The number's risk assessment recommends blocking it.
    #[error(
        "This phone number cannot be used for sign-in codes; use another number or an authenticator app"
    )]
    NumberBlocked,
    /// A code was sent moments ago, or the challenge has sent all it may.
    #[error("A code was sent recently; try again later")]
    ResendTooSoon { retry_after_secs: u64 },
    /// The method asked for is not one the user has (or not one of `sms`, `totp`, `recovery`).
    #[error("{0}")]
    MethodUnavailable(String),
    /// The factor is already enrolled (remove it first).
    #[error("{0}")]
    AlreadyEnrolled(String),
    /// There is nothing pending or enrolled to act on.
    #[error("{0}")]
    NotEnrolled(String),
    /// No pending tool-call approval with that id awaits this user.
    #[error("No such pending approval")]
    NoSuchApproval,
    /// Approving this call needs a fresh second-factor code (`code` and `method`).
    #[error("Approving this call needs a second-factor code")]
    StepUpRequired,
    /// A step-up code is wrong, expired, used, issued for another approval, or the approval took too many.
    #[error("Invalid or expired code")]
    StepUpFailed,
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<sqlx::Error> for MfaError {
    fn from(e: sqlx::Error) -> Self {
        MfaError::Auth(AuthError::from(e))
    }
}

/// `.context()` for the service's database steps: an unreachable database stays `Unavailable`.
pub(super) trait StoreContext<T> {
    fn context(self, step: &'static str) -> Result<T, MfaError>;
}

impl<T> StoreContext<T> for sqlx::Result<T> {
    fn context(self, step: &'static str) -> Result<T, MfaError> {
        self.map_err(|e| {
            if crate::store::is_unavailable(&e) {
                MfaError::Auth(AuthError::Unavailable)
            } else {
                MfaError::Internal(anyhow::Error::new(e).context(step))
            }
        })
    }
}
