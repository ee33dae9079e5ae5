//! What the auth service answers when it does not do what was asked.
//!
//! Variants name outcomes ("the input is invalid", "that name is taken"), never HTTP statuses: the web face
//! maps them once, in `From<AuthError> for AppError` (`http/error.rs`). A database that cannot be reached is
//! `Unavailable` (fail closed, recover when it is back), never `Internal`.

use super::password;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Login failed; one answer for unknown, wrong, locked and disabled.
    #[error("Invalid username or password")]
    InvalidCredentials,
    /// No valid credential: missing, expired, revoked, or naming a disabled account.
    #[error("Unauthorized - Invalid or missing token")]
    Unauthorized,
    #[error("Too many attempts; try again later")]
    RateLimited { retry_after_secs: u64 },
    /// Every password-hashing slot is taken and the queue is full.
    #[error("The server is busy; try again shortly")]
    Busy,
    /// The database cannot be reached: fail closed, and recover when it is back.
    #[error("Service unavailable")]
    Unavailable,
    /// The request cannot be a valid attempt at all and was refused before any work (a password over the
    /// maximum length, a username with control characters, credentials that contradict each other).
    #[error("{0}")]
    Malformed(String),
    /// Well-formed, but a value breaks a rule (a weak password, an unknown role, a bad role name).
    #[error("{0}")]
    InvalidInput(String),
    /// The name or identity is already taken.
    #[error("{0}")]
    AlreadyExists(String),
    #[error("Not found")]
    NotFound,
    /// The caller is known but the rule forbids the change (deleting oneself, an admin without `*`).
    #[error("{0}")]
    NotAllowed(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        if crate::store::is_unavailable(&e) {
            AuthError::Unavailable
        } else {
            AuthError::Internal(e.into())
        }
    }
}

impl From<password::Busy> for AuthError {
    fn from(_: password::Busy) -> Self {
        AuthError::Busy
    }
}

/// `.context()` for the service's database steps: the step's name goes into the log of an internal error,
/// while an unreachable database stays `Unavailable` (which `anyhow::Context` would hide).
pub(super) trait StoreContext<T> {
    fn context(self, step: &'static str) -> Result<T, AuthError>;
}

impl<T> StoreContext<T> for sqlx::Result<T> {
    fn context(self, step: &'static str) -> Result<T, AuthError> {
        self.map_err(|e| {
            if crate::store::is_unavailable(&e) {
                AuthError::Unavailable
            } else {
                AuthError::Internal(anyhow::Error::new(e).context(step))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_step_is_named_in_the_internal_error() {
        let r: sqlx::Result<()> = Err(sqlx::Error::RowNotFound);
        match r.context("finding the session") {
            Err(AuthError::Internal(e)) => assert_eq!(e.to_string(), "finding the session"),
            other => panic!("expected an internal error, got {other:?}"),
        }
    }
}
