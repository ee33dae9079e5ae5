//! Stateless CSRF tokens (OWASP signed double-submit): `random.HMAC(key, session_id.random)`. Nothing is stored,
//! so any instance can check a token, and a token of one session never passes for another.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Keyed once; cloned per token.
pub struct CsrfKey(Hmac<Sha256>);

impl CsrfKey {
    /// Derived from the signing secret under its own label, so the two uses never share a key.
    pub fn derive(secret: &[u8]) -> CsrfKey {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"warden csrf key v1");
        CsrfKey(
            Hmac::<Sha256>::new_from_slice(&mac.finalize().into_bytes())
                .expect("HMAC takes any key length"),
        )
    }

    fn mac(&self, session_id: &str, nonce: &str) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(session_id.as_bytes());
        mac.update(b".");
        mac.update(nonce.as_bytes());
        mac
    }

    pub fn issue(&self, session_id: &str) -> String {
        let nonce = B64.encode(rand::random::<[u8; 16]>());
        let tag = B64.encode(self.mac(session_id, &nonce).finalize().into_bytes());
        format!("{nonce}.{tag}")
    }

    pub fn verify(&self, session_id: &str, token: &str) -> bool {
        if token.len() > 128 {
            return false;
        }
        let Some((nonce, tag)) = token.split_once('.') else {
            return false;
        };
        let Ok(tag) = B64.decode(tag) else {
            return false;
        };
        self.mac(session_id, nonce).verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_passes_only_for_its_own_session() {
        let key = CsrfKey::derive(b"k");
        let t = key.issue("s1");
        assert!(key.verify("s1", &t));
        assert!(!key.verify("s2", &t));
        assert!(!key.verify("s1", ""));
        assert!(!key.verify("s1", "a.b"));
        let mut tampered = t.clone();
        tampered.replace_range(0..1, if t.starts_with('A') { "B" } else { "A" });
        assert!(!key.verify("s1", &tampered));
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics_or_passes(token in ".{0,300}", session in ".{0,64}") {
            proptest::prop_assert!(!CsrfKey::derive(b"k").verify(&session, &token));
        }
    }

    #[test]
    fn another_key_does_not_verify() {
        let t = CsrfKey::derive(b"k1").issue("s1");
        assert!(!CsrfKey::derive(b"k2").verify("s1", &t));
    }
}
