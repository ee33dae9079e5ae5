//! What production refuses to start with (`Config::findings`), and the checks on secrets shared with loading.

use secrecy::{ExposeSecret, SecretString};

use super::Config;

/// One thing production would refuse: which variable, and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub variable: &'static str,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

/// Known default or sample secrets from the seeds and common tutorials: never accepted in production.
const KNOWN_DEFAULT_SECRETS: &[&str] = &[
    "secret",
    "changeme",
    "change-me",
    "your-secret-key",
    "your-secret-key-here",
    "your-secret-key-change-in-production",
    "your-super-secret-key",
    "supersecret",
    "jwt-secret",
    "jwt_secret_key",
    "dev-secret",
    "development-secret",
    "test-secret",
    "bench-secret-key-bench-secret-key",
    "mysecretkey",
];

/// Admin passwords that production refuses.
const DEFAULT_ADMIN_PASSWORDS: &[&str] = &[
    "admin",
    "root",
    "password",
    "changeme",
    "admin123",
    "password123",
    "12345678",
    "123456",
    "letmein",
    "secret",
];

impl Config {
    /// What production refuses to start with. Empty means production may start.
    pub fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        // A key that is set was checked at load (`strong_jwt_secret`); production also needs one set.
        if self.jwt_secret.is_none() {
            out.push(Finding {
                variable: "JWT_SECRET_KEY",
                message: "is not set; set it to a random value of at least 32 bytes (e.g. `openssl rand -base64 48`)".into(),
            });
        }
        if let (Some(ours), Some(django)) = (&self.jwt_secret, &self.django_secret_key)
            && ours.expose_secret() == django.expose_secret()
        {
            out.push(Finding {
                variable: "DJANGO_SECRET_KEY",
                message: "equals JWT_SECRET_KEY; the two must differ so neither side's tokens pass as the other's".into(),
            });
        }
        // Always, not only once sealed data exists: a generated key kept beside the data it seals protects little.
        if self.encryption_key.is_none() {
            out.push(Finding {
                variable: "WARDEN_ENCRYPTION_KEY",
                message: "is not set; set it to 32 random bytes in base64 (e.g. `openssl rand -base64 32`)".into(),
            });
        }
        if self.cookie_secure == Some(false) {
            out.push(Finding {
                variable: "COOKIE_SECURE",
                message: "is false; production cookies must be Secure (remove it or set COOKIE_SECURE=true)".into(),
            });
        }
        if let Some(p) = &self.admin_password {
            let p = p.expose_secret();
            if DEFAULT_ADMIN_PASSWORDS
                .iter()
                .any(|d| d.eq_ignore_ascii_case(p))
            {
                out.push(Finding {
                    variable: "ADMIN_PASSWORD",
                    message: "is a default password; choose one of at least 12 characters, or unset it to get a random one".into(),
                });
            } else if p.chars().count() < 12 {
                out.push(Finding {
                    variable: "ADMIN_PASSWORD",
                    message: "is shorter than 12 characters; choose a longer one, or unset it to get a random one".into(),
                });
            }
        }
        if !self.public_url.starts_with("https://") {
            out.push(Finding {
                variable: "WARDEN_PUBLIC_URL",
                message: format!(
                    "is {:?}; production needs the https:// address clients use",
                    self.public_url
                ),
            });
        }
        self.sms.findings(&mut out);
        out
    }
}

/// Minimum length of a signing key that is set explicitly, in bytes (HS256 wants at least its output size).
const MIN_JWT_SECRET_BYTES: usize = 32;

/// An explicitly set signing key, refused when short or a known sample value whatever the environment.
/// The error completes "JWT_SECRET_KEY ..." and never repeats the key.
pub(super) fn strong_jwt_secret(key: SecretString) -> Result<SecretString, String> {
    let advice = format!(
        "set it to a fresh random value of at least {MIN_JWT_SECRET_BYTES} bytes (e.g. `openssl rand -base64 48`), \
         or unset it in development to use a generated key"
    );
    let len = key.expose_secret().len();
    if len < MIN_JWT_SECRET_BYTES {
        Err(format!("is {len} bytes long; {advice}"))
    } else if is_known_default(key.expose_secret()) {
        Err(format!("is a known default value; {advice}"))
    } else {
        Ok(key)
    }
}

fn is_known_default(secret: &str) -> bool {
    let lower = secret.to_ascii_lowercase();
    KNOWN_DEFAULT_SECRETS.contains(&lower.as_str())
        || lower.starts_with("django-insecure-")
        || lower.starts_with("your-")
}
