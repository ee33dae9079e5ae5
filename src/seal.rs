//! Secrets sealed at rest under `WARDEN_ENCRYPTION_KEY`: AES-256-GCM, a random 96-bit nonce per value, and as
//! associated data the table, row and field the value belongs to, so a sealed value copied to another row or
//! field no longer opens.
//!
//! Stored form: `v1:<key id>:<nonce b64>:<ciphertext b64>`. The key id (the first 8 hex digits of SHA-256 of the
//! key) says which key sealed a value, so a start with another key is told apart from a damaged value and
//! refused with a clear message instead of failing value by value. `warden keys rotate` re-seals every sealed
//! value under a new key (`SEALED` in `src/cli/keys.rs` lists what is sealed).

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Bytes of a key.
pub const KEY_BYTES: usize = 32;
const PREFIX: &str = "v1";
const NONCE_BYTES: usize = 12;

/// A key that seals and opens values; its `Debug` shows only the key id.
#[derive(Clone)]
pub struct SealKey {
    cipher: Aes256Gcm,
    id: String,
    /// The key as configured (base64), for printing once by `keys rotate`.
    encoded: secrecy::SecretString,
}

/// Where a sealed value lives: bound into it as associated data.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    pub table: &'a str,
    pub row: &'a str,
    pub field: &'a str,
}

/// Why a stored value did not open.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Sealed under another key (its id differs from this key's).
    #[error("sealed under key {stored}, not under the configured key {configured}")]
    WrongKey { stored: String, configured: String },
    /// The key id matches but the value does not authenticate: altered, or moved from another row or field.
    #[error("the sealed value was altered or belongs to another row")]
    Tampered,
    /// Not in the `v1:id:nonce:ciphertext` form.
    #[error("not a sealed value")]
    Malformed,
}

/// Why a configured key was refused; completes "WARDEN_ENCRYPTION_KEY ...", never repeating the key.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("is not base64; generate one with `openssl rand -base64 32`")]
    NotBase64,
    #[error("is {0} bytes once decoded, not 32; generate one with `openssl rand -base64 32`")]
    WrongLength(usize),
}

impl SealKey {
    /// A key from its base64 form (32 bytes once decoded).
    pub fn parse(encoded: &str) -> Result<SealKey, KeyError> {
        let bytes = B64
            .decode(encoded.trim())
            .map_err(|_| KeyError::NotBase64)?;
        if bytes.len() != KEY_BYTES {
            return Err(KeyError::WrongLength(bytes.len()));
        }
        Ok(SealKey {
            cipher: Aes256Gcm::new_from_slice(&bytes).expect("32 bytes is an AES-256 key"),
            id: hex::encode(&Sha256::digest(&bytes)[..4]),
            encoded: B64.encode(&bytes).into(),
        })
    }

    /// A fresh random key from the OS CSPRNG.
    pub fn generate() -> SealKey {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        SealKey::parse(&B64.encode(bytes)).expect("a generated key is valid")
    }

    /// The key id stored with each value: 8 hex digits of SHA-256 of the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key in base64, the form WARDEN_ENCRYPTION_KEY takes. Only for showing it once to an operator.
    pub fn encoded(&self) -> &secrecy::SecretString {
        &self.encoded
    }

    /// Seals `plain` for `at`.
    pub fn seal(&self, at: Binding<'_>, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(at);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("AES-GCM seals any message of this size");
        format!(
            "{PREFIX}:{}:{}:{}",
            self.id,
            B64.encode(nonce),
            B64.encode(sealed)
        )
    }

    /// Opens a value sealed for `at`.
    pub fn open(&self, at: Binding<'_>, sealed: &str) -> Result<String, OpenError> {
        let mut parts = sealed.split(':');
        let (Some(PREFIX), Some(id), Some(nonce), Some(ciphertext), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(OpenError::Malformed);
        };
        if id != self.id {
            return Err(OpenError::WrongKey {
                stored: id.to_string(),
                configured: self.id.clone(),
            });
        }
        let nonce = B64.decode(nonce).map_err(|_| OpenError::Malformed)?;
        let ciphertext = B64.decode(ciphertext).map_err(|_| OpenError::Malformed)?;
        if nonce.len() != NONCE_BYTES {
            return Err(OpenError::Malformed);
        }
        let aad = associated_data(at);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::Tampered)?;
        String::from_utf8(plain).map_err(|_| OpenError::Tampered)
    }
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKey(id {}, <redacted>)", self.id)
    }
}

/// NUL-separated: names hold no NUL, so two bindings never give the same bytes.
fn associated_data(at: Binding<'_>) -> Vec<u8> {
    format!("warden seal v1\0{}\0{}\0{}", at.table, at.row, at.field).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Binding<'static> = Binding {
        table: "mcp_servers",
        row: "web",
        field: "headers.Authorization",
    };

    #[test]
    fn a_sealed_value_opens_with_its_key_and_binding() {
        let key = SealKey::generate();
        let sealed = key.seal(AT, "Bearer s3cr3t");
        assert!(!sealed.contains("s3cr3t"));
        assert!(sealed.starts_with(&format!("v1:{}:", key.id())));
        assert_eq!(key.open(AT, &sealed).unwrap(), "Bearer s3cr3t");
        // A fresh nonce each time.
        assert_ne!(key.seal(AT, "Bearer s3cr3t"), sealed);
    }

    #[test]
    fn a_value_moved_to_another_row_or_field_does_not_open() {
        let key = SealKey::generate();
        let sealed = key.seal(AT, "secret");
        let other_row = Binding { row: "other", ..AT };
        let other_field = Binding {
            field: "env.TOKEN",
            ..AT
        };
        assert_eq!(key.open(other_row, &sealed), Err(OpenError::Tampered));
        assert_eq!(key.open(other_field, &sealed), Err(OpenError::Tampered));
    }

    #[test]
    fn a_tampered_ciphertext_does_not_open() {
        let key = SealKey::generate();
        let sealed = key.seal(AT, "secret");
        let (head, ciphertext) = sealed.rsplit_once(':').unwrap();
        let mut bytes = B64.decode(ciphertext).unwrap();
        bytes[0] ^= 1;
        let tampered = format!("{head}:{}", B64.encode(bytes));
        assert_eq!(key.open(AT, &tampered), Err(OpenError::Tampered));
        assert_eq!(key.open(AT, "v1:zz"), Err(OpenError::Malformed));
        assert_eq!(key.open(AT, "plain text"), Err(OpenError::Malformed));
    }

    #[test]
    fn a_value_of_another_key_is_reported_as_a_wrong_key() {
        let (old, new) = (SealKey::generate(), SealKey::generate());
        let sealed = old.seal(AT, "secret");
        assert_eq!(
            new.open(AT, &sealed),
            Err(OpenError::WrongKey {
                stored: old.id().to_string(),
                configured: new.id().to_string(),
            })
        );
    }

    #[test]
    fn a_key_must_be_32_bytes_of_base64_and_its_debug_hides_it() {
        assert_eq!(
            SealKey::parse("not base64!").unwrap_err(),
            KeyError::NotBase64
        );
        assert_eq!(
            SealKey::parse(&B64.encode([1u8; 16])).unwrap_err(),
            KeyError::WrongLength(16)
        );
        let encoded = B64.encode([7u8; 32]);
        let key = SealKey::parse(&encoded).unwrap();
        assert_eq!(key.id().len(), 8);
        let debug = format!("{key:?}");
        assert!(!debug.contains(&encoded) && debug.contains(key.id()));
    }
}
