//! Passwords: Argon2id (OWASP: m=7168 KiB, t=5, p=1, an equivalent row of m=19 MiB, t=2) for new hashes; seed bcrypt hashes verified once and
//! then rehashed; SHA-256 for service-client secrets (256-bit random, so a slow hash adds nothing).
//!
//! Hashing runs on blocking threads behind a semaphore, with a bounded queue in front of it, so a login flood
//! can neither starve the async workers nor grow memory without limit.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher as _, PasswordVerifier as _, phc::PasswordHash},
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use unicode_normalization::UnicodeNormalization;

/// Longest password accepted, in characters (ASVS 6.2 asks for at least 64).
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Shortest password accepted when one is set (logins accept any length up to the maximum).
pub const MIN_NEW_PASSWORD_CHARS: usize = 8;

/// A password as offered, checked for length before any hashing; never printed. Hashed and verified in
/// Unicode NFKC (NIST 800-63B §5.1.1.2), so the same password typed as composed or decomposed characters
/// matches; the form as typed is kept, when it differs, to verify hashes made before normalisation.
pub struct Password {
    normalized: SecretString,
    as_typed: Option<SecretString>,
}

impl Password {
    /// For a login attempt: any non-empty password up to the maximum, byte for byte (no trimming, no case change).
    pub fn parse(raw: String) -> Result<Password, String> {
        let chars = raw.chars().count();
        if chars == 0 {
            return Err("password must not be empty".into());
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(format!(
                "password must be at most {MAX_PASSWORD_CHARS} characters"
            ));
        }
        let normalized: String = raw.nfkc().collect();
        let as_typed = (normalized != raw).then(|| raw.into());
        Ok(Password {
            normalized: normalized.into(),
            as_typed,
        })
    }

    /// For a new password: also at least the minimum length.
    pub fn parse_new(raw: String) -> Result<Password, String> {
        if raw.chars().count() < MIN_NEW_PASSWORD_CHARS {
            return Err(format!(
                "password must be at least {MIN_NEW_PASSWORD_CHARS} characters"
            ));
        }
        Password::parse(raw)
    }

    /// The normalised form: what is hashed and checked first.
    pub fn expose(&self) -> &str {
        self.normalized.expose_secret()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Match { needs_rehash: bool },
    Mismatch,
}

/// Hashing was refused because too many requests already wait for it.
#[derive(Debug)]
pub struct Busy;

pub struct Hasher {
    permits: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    /// Verified against for unknown users, so they cost the same as known ones.
    dummy_hash: String,
}

fn argon2() -> Argon2<'static> {
    // OWASP's table row m=7 MiB, t=5, p=1: as costly to attack as m=19 MiB, t=2, with a third of the memory
    // per hash, so a login flood cannot balloon the process.
    let params = Params::new(7 * 1024, 5, 1, None).expect("OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl Hasher {
    pub fn new(concurrency: usize) -> Arc<Hasher> {
        let dummy_hash = argon2()
            .hash_password(b"warden-dummy-password")
            .expect("hashing works")
            .to_string();
        Arc::new(Hasher {
            permits: Semaphore::new(concurrency.max(1)),
            waiting: AtomicUsize::new(0),
            max_waiting: 64 * concurrency.max(1),
            dummy_hash,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Busy);
        }
        let permit = self.permits.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let _permit = permit.map_err(|_| Busy)?;
        tokio::task::spawn_blocking(work).await.map_err(|_| Busy)
    }

    pub async fn hash(&self, password: &Password) -> Result<String, Busy> {
        let pw = password.expose().to_string();
        self.run(move || {
            argon2()
                .hash_password(pw.as_bytes())
                .map(|h| h.to_string())
                .map_err(|_| Busy)
        })
        .await?
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is none.
    /// A hash made before passwords were normalised matches the form as typed; it then asks for a rehash.
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> Result<Verdict, Busy> {
        let pw = password.expose().to_string();
        let as_typed = password
            .as_typed
            .as_ref()
            .map(|p| p.expose_secret().to_string());
        let (stored, real) = match stored {
            Some(s) => (s.to_string(), true),
            None => (self.dummy_hash.clone(), false),
        };
        if let Some(hex_digest) = stored.strip_prefix("sha256$") {
            return Ok(if real && sha256_matches(&pw, hex_digest) {
                Verdict::Match {
                    needs_rehash: false,
                }
            } else {
                Verdict::Mismatch
            });
        }
        self.run(move || {
            let matches = |pw: &str| {
                if stored.starts_with("$2a$")
                    || stored.starts_with("$2b$")
                    || stored.starts_with("$2y$")
                {
                    // bcrypt reads at most 72 bytes; longer passwords never match an imported hash.
                    pw.len() <= 72 && bcrypt::verify(pw, &stored).unwrap_or(false)
                } else {
                    PasswordHash::new(&stored)
                        .is_ok_and(|h| argon2().verify_password(pw.as_bytes(), &h).is_ok())
                }
            };
            let is_argon = stored.starts_with("$argon2id$");
            if matches(&pw) {
                Verdict::Match {
                    needs_rehash: !is_argon,
                }
            } else if as_typed.as_deref().is_some_and(matches) {
                Verdict::Match { needs_rehash: true }
            } else {
                Verdict::Mismatch
            }
        })
        .await
        .map(|verdict| if real { verdict } else { Verdict::Mismatch })
    }
}

/// Stored form of a high-entropy secret (service-client secrets).
pub fn sha256_hash(secret: &str) -> String {
    format!("sha256${}", hex::encode(Sha256::digest(secret.as_bytes())))
}

fn sha256_matches(secret: &str, hex_digest: &str) -> bool {
    let actual = hex::encode(Sha256::digest(secret.as_bytes()));
    actual.as_bytes().ct_eq(hex_digest.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn argon2_round_trip_and_mismatch() {
        let h = Hasher::new(1);
        let pw = Password::parse("correct horse".into()).unwrap();
        let stored = h.hash(&pw).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"));
        assert_eq!(
            h.verify(&pw, Some(&stored)).await.unwrap(),
            Verdict::Match {
                needs_rehash: false
            }
        );
        let wrong = Password::parse("Correct horse".into()).unwrap();
        assert_eq!(
            h.verify(&wrong, Some(&stored)).await.unwrap(),
            Verdict::Mismatch
        );
    }

    #[tokio::test]
    async fn seed_bcrypt_hashes_match_and_ask_for_rehash() {
        let h = Hasher::new(1);
        let stored = bcrypt::hash("root", 4).unwrap();
        let pw = Password::parse("root".into()).unwrap();
        assert_eq!(
            h.verify(&pw, Some(&stored)).await.unwrap(),
            Verdict::Match { needs_rehash: true }
        );
    }

    #[tokio::test]
    async fn unknown_users_never_match_even_the_dummy_password() {
        let h = Hasher::new(1);
        let pw = Password::parse("warden-dummy-password".into()).unwrap();
        assert_eq!(h.verify(&pw, None).await.unwrap(), Verdict::Mismatch);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_beyond_the_queue_is_refused_not_queued_without_bound() {
        let h = Hasher::new(1);
        let attempts = (0..200).map(|_| {
            let h = h.clone();
            tokio::spawn(async move {
                h.verify(&Password::parse("guess".into()).unwrap(), None)
                    .await
            })
        });
        let results = futures::future::join_all(attempts).await;
        let busy = results
            .iter()
            .filter(|r| matches!(r, Ok(Err(Busy))))
            .count();
        assert!(busy > 0, "a queue of 64 cannot hold 200 waiting hashes");
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Ok(Ok(Verdict::Mismatch)) | Ok(Err(Busy))))
        );
    }

    #[tokio::test]
    async fn composed_and_decomposed_forms_are_one_password_and_old_raw_hashes_still_match() {
        let h = Hasher::new(1);
        let composed = Password::parse("caf\u{e9} cr\u{e8}me".into()).unwrap();
        let decomposed = Password::parse("cafe\u{301} cre\u{300}me".into()).unwrap();
        let stored = h.hash(&composed).await.unwrap();
        assert_eq!(
            h.verify(&decomposed, Some(&stored)).await.unwrap(),
            Verdict::Match {
                needs_rehash: false
            }
        );
        // A hash of the decomposed form as typed, made before normalisation: matches once, asks for a rehash.
        let old = argon2()
            .hash_password("cafe\u{301} cre\u{300}me".as_bytes())
            .unwrap()
            .to_string();
        assert_eq!(
            h.verify(&decomposed, Some(&old)).await.unwrap(),
            Verdict::Match { needs_rehash: true }
        );
        let other = Password::parse("cafe cre\u{300}me".into()).unwrap();
        assert_eq!(
            h.verify(&other, Some(&old)).await.unwrap(),
            Verdict::Mismatch
        );
    }

    #[test]
    fn long_passwords_are_kept_whole_and_too_long_ones_refused() {
        let long = "p".repeat(MAX_PASSWORD_CHARS);
        assert_eq!(Password::parse(long.clone()).unwrap().expose(), long);
        assert!(Password::parse("p".repeat(MAX_PASSWORD_CHARS + 1)).is_err());
        assert!(Password::parse_new("short".into()).is_err());
        assert!(format!("{:?}", Password::parse("hunter22".into()).unwrap()).contains("redacted"));
    }
}
