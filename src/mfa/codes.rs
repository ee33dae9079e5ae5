//! The secrets of second factors: one-time codes (6 digits from the OS CSPRNG, stored as an HMAC keyed by the
//! server and bound to what they were sent for), recovery codes (stored the same way), and the AEAD that
//! seals a TOTP secret or a phone number at rest (ChaCha20-Poly1305, a random nonce per value, the row's
//! purpose and user as associated data so a sealed value cannot be moved to another row).

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use hmac::{Hmac, Mac};
use rand::{Rng, RngCore};
use sha2::Sha256;

/// Recovery codes handed out at TOTP confirmation.
pub const RECOVERY_CODES: usize = 10;

/// The keys of the mfa service, derived from the server's signing secret.
pub struct Keys {
    code: Hmac<Sha256>,
    aead: ChaCha20Poly1305,
}

/// HMAC-SHA256 of `label` under `key`: a subkey for one purpose.
fn subkey(key: &[u8], label: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

impl Keys {
    /// The mfa keys from the signing secret (each purpose its own HMAC-derived key, none equal to the secret).
    pub fn derive(signing_secret: &[u8]) -> Keys {
        let root = subkey(signing_secret, "warden mfa v1");
        Keys {
            code: <Hmac<Sha256> as Mac>::new_from_slice(&subkey(&root, "codes"))
                .expect("HMAC takes any key length"),
            aead: ChaCha20Poly1305::new(&subkey(&root, "sealed secrets").into()),
        }
    }

    /// The stored form of a code sent for `binding` (a challenge id, or the phone enrolment of a user).
    pub fn code_hmac(&self, binding: &str, code: &str) -> String {
        let mut mac = self.code.clone();
        mac.update(binding.as_bytes());
        mac.update(b"\0");
        mac.update(code.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Seals `plain` for `purpose` of `user_id`: base64 of nonce and ciphertext.
    pub fn seal(&self, purpose: &str, user_id: &str, plain: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let aad = format!("{purpose}\0{user_id}");
        let sealed = self
            .aead
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: aad.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 seals any message of this size");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        B64.encode(out)
    }

    /// Opens a value sealed by [`Keys::seal`] for the same purpose and user; `None` if it was altered, moved
    /// or sealed under another key.
    pub fn open(&self, purpose: &str, user_id: &str, sealed: &str) -> Option<Vec<u8>> {
        let bytes = B64.decode(sealed).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let aad = format!("{purpose}\0{user_id}");
        self.aead
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .ok()
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

/// A one-time code: six digits, uniform, from the OS CSPRNG (about 20 bits).
pub fn new_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// Whether `code` is six ASCII digits (anything else is wrong without looking further).
pub fn is_six_digits(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A recovery code: ten characters of an unambiguous alphabet (about 50 bits), shown as `xxxxx-xxxxx`.
pub fn new_recovery_code() -> String {
    let mut rng = rand::rng();
    let chars: String = (0..10)
        .map(|_| char::from(RECOVERY_ALPHABET[rng.random_range(0..RECOVERY_ALPHABET.len())]))
        .collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

/// A recovery code as typed, reduced to its characters (case, dashes and spaces do not matter); `None` when it
/// cannot be one.
pub fn normalise_recovery_code(typed: &str) -> Option<String> {
    let plain: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (plain.len() == 10 && plain.bytes().all(|b| RECOVERY_ALPHABET.contains(&b))).then_some(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_for_its_purpose_user_and_key() {
        let keys = Keys::derive(&[7u8; 32]);
        let sealed = keys.seal("totp", "u1", b"secret bytes");
        assert_eq!(keys.open("totp", "u1", &sealed).unwrap(), b"secret bytes");
        assert!(keys.open("totp", "u2", &sealed).is_none());
        assert!(keys.open("phone", "u1", &sealed).is_none());
        assert!(
            Keys::derive(&[8u8; 32])
                .open("totp", "u1", &sealed)
                .is_none()
        );
        assert_ne!(
            keys.seal("totp", "u1", b"secret bytes"),
            sealed,
            "a fresh nonce each time"
        );
        assert!(keys.open("totp", "u1", "not base64!").is_none());
    }

    #[test]
    fn a_code_hmac_is_bound_to_its_binding_and_keyed() {
        let keys = Keys::derive(&[7u8; 32]);
        let h = keys.code_hmac("c1", "123456");
        assert_eq!(h, keys.code_hmac("c1", "123456"));
        assert_ne!(h, keys.code_hmac("c2", "123456"));
        assert_ne!(h, Keys::derive(&[8u8; 32]).code_hmac("c1", "123456"));
        assert!(!h.contains("123456"));
    }

    #[test]
    fn codes_have_their_shape() {
        for _ in 0..100 {
            assert!(is_six_digits(&new_code()));
            let r = new_recovery_code();
            assert_eq!(normalise_recovery_code(&r).unwrap(), r.replace('-', ""));
            assert_eq!(
                normalise_recovery_code(&r.to_uppercase()),
                normalise_recovery_code(&r)
            );
        }
        assert!(!is_six_digits("12345"));
        assert!(!is_six_digits("12345a"));
        assert!(normalise_recovery_code("short").is_none());
    }
}
