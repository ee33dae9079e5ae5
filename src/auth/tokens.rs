//! Signed tokens (RFC 8725): HS256 only, the header pinned byte for byte; `iss`, `aud`, `sub`, `sid`, `jti`, `iat`, `nbf`,
//! `exp` and `typ` all required; times checked against the application `Clock` with a fixed leeway.
//!
//! Token kinds never pass for each other: a bearer `access` token is not a browser `session` cookie, and
//! refresh tokens are opaque random values that are not JWTs at all. Django simplejwt tokens are verified with
//! their own key and accepted only as `token_type == "access"`.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Clock skew tolerated on `iat`, `nbf` and `exp`, seconds.
pub const LEEWAY_SECS: i64 = 30;
/// Longer tokens are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Bearer access token for programs.
    Access,
    /// The browser's HttpOnly cookie; lives as long as its session.
    Session,
    /// Proof of a checked password while a second factor is awaited: names its challenge (in `sid`), lives
    /// minutes, and is accepted only by the second-factor routes, never as an access or session token.
    Mfa,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Session => "session",
            TokenKind::Mfa => "mfa",
        }
    }
}

/// The claims as signed and read. Borrowed from the decoded payload, so reading a token allocates only what
/// the caller keeps (`Verified`); a string with JSON escapes fails to borrow and the token is refused.
#[derive(Debug, Serialize, Deserialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    sid: &'a str,
    jti: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    typ: &'a str,
}

/// What a valid token says: the user and the session.
#[derive(Debug)]
pub struct Verified {
    pub sub: String,
    pub sid: String,
}

/// Any reason a token is not accepted; callers answer all of them with one generic 401.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejected;

pub struct TokenKeys {
    issuer: String,
    /// Keyed once; cloned per token (saves hashing the key on every request).
    mac: Hmac<Sha256>,
    django: Option<(DecodingKey, Validation)>,
    /// Tokens this key verified, by their exact text: the signature and claims are checked on a token's first
    /// use; later uses find it here and face the kind and time rules again. Only valid tokens enter (junk cannot
    /// fill it), and it is emptied when full.
    known: Mutex<HashMap<Box<str>, Known>>,
}

/// How many verified tokens are remembered (a few hundred bytes each).
const MAX_KNOWN: usize = 4096;

/// What a verified token said, for its next uses.
struct Known {
    kind: TokenKind,
    sub: String,
    sid: String,
    iat: i64,
    nbf: i64,
    exp: i64,
}

/// The one header this server signs and accepts, byte for byte: `{"typ":"JWT","alg":"HS256"}`. Comparing
/// the encoded header pins the algorithm and leaves no `kid`, `jku` or `x5u` to interpret.
const HEADER_B64: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9";

impl TokenKeys {
    pub fn new(secret: &[u8], issuer: &str, django_secret: Option<&[u8]>) -> TokenKeys {
        let django = django_secret.map(|s| {
            let mut v = Validation::new(Algorithm::HS256);
            // Time is checked by us against the application clock; the library would read the system clock.
            v.validate_exp = false;
            v.validate_nbf = false;
            v.validate_aud = false;
            v.leeway = 0;
            v.set_required_spec_claims(&["exp"]);
            (DecodingKey::from_secret(s), v)
        });
        TokenKeys {
            issuer: issuer.to_string(),
            mac: Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length"),
            django,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Signs a token of `kind` for a user's session, valid from `now_secs` until `exp_secs`.
    pub fn issue(
        &self,
        kind: TokenKind,
        user_id: &str,
        session_id: &str,
        now_secs: i64,
        exp_secs: i64,
    ) -> String {
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let claims = Claims {
            iss: &self.issuer,
            aud: &self.issuer,
            sub: user_id,
            sid: session_id,
            jti: &jti,
            iat: now_secs,
            nbf: now_secs,
            exp: exp_secs,
            typ: kind.as_str(),
        };
        let payload = serde_json::to_vec(&claims).expect("claims serialise");
        let signing_input = format!("{HEADER_B64}.{}", B64.encode(payload));
        let mut mac = self.mac.clone();
        mac.update(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            B64.encode(mac.finalize().into_bytes())
        )
    }

    /// Verifies header, signature, issuer, audience, kind and times.
    pub fn verify(
        &self,
        token: &str,
        kind: TokenKind,
        now_secs: i64,
    ) -> Result<Verified, Rejected> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejected);
        }
        if let Some(known) = self.known.lock().get(token) {
            let valid = known.kind == kind
                && times_ok(Some(known.iat), Some(known.nbf), known.exp, now_secs);
            return valid
                .then(|| Verified {
                    sub: known.sub.clone(),
                    sid: known.sid.clone(),
                })
                .ok_or(Rejected);
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(Rejected)?;
        let (header, payload) = signing_input.split_once('.').ok_or(Rejected)?;
        if header != HEADER_B64 || payload.contains('.') {
            return Err(Rejected);
        }
        let signature = B64.decode(signature).map_err(|_| Rejected)?;
        let mut mac = self.mac.clone();
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&signature).map_err(|_| Rejected)?;
        let payload = B64.decode(payload).map_err(|_| Rejected)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| Rejected)?;
        if claims.iss != self.issuer
            || claims.aud != self.issuer
            || claims.typ != kind.as_str()
            || claims.sub.is_empty()
            || !times_ok(Some(claims.iat), Some(claims.nbf), claims.exp, now_secs)
        {
            return Err(Rejected);
        }
        let known = Known {
            kind,
            sub: claims.sub.to_string(),
            sid: claims.sid.to_string(),
            iat: claims.iat,
            nbf: claims.nbf,
            exp: claims.exp,
        };
        let verified = Verified {
            sub: known.sub.clone(),
            sid: known.sid.clone(),
        };
        let mut remembered = self.known.lock();
        if remembered.len() >= MAX_KNOWN {
            remembered.clear();
        }
        remembered.insert(token.into(), known);
        Ok(verified)
    }

    /// Verifies a Django simplejwt access token; returns its `user_id` as text and its `jti`.
    pub fn verify_django(&self, token: &str, now_secs: i64) -> Result<(String, String), Rejected> {
        let (key, validation) = self.django.as_ref().ok_or(Rejected)?;
        if token.len() > MAX_TOKEN_BYTES || token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err(Rejected);
        }
        let data =
            jsonwebtoken::decode::<DjangoClaims>(token, key, validation).map_err(|_| Rejected)?;
        let c = data.claims;
        if c.token_type != "access" || !times_ok(c.iat, c.nbf, c.exp, now_secs) {
            return Err(Rejected);
        }
        let user_id = match c.user_id {
            serde_json::Value::Number(n) if n.is_i64() => n.to_string(),
            serde_json::Value::String(s) if !s.is_empty() && s.len() <= 128 => s,
            _ => return Err(Rejected),
        };
        Ok((user_id, c.jti.unwrap_or_default()))
    }
}

#[derive(Deserialize)]
struct DjangoClaims {
    token_type: String,
    user_id: serde_json::Value,
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

/// The one time rule for every token kind (ours, Django's, a JWKS issuer's): issued and valid no later than
/// `now` plus the leeway (a token from the future is forged or from a broken clock), and not yet expired.
pub fn times_ok(iat: Option<i64>, nbf: Option<i64>, exp: i64, now: i64) -> bool {
    let latest_start = now.saturating_add(LEEWAY_SECS);
    iat.is_none_or(|iat| iat <= latest_start)
        && nbf.is_none_or(|nbf| nbf <= latest_start)
        && now < exp.saturating_add(LEEWAY_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32], "http://warden.test", Some(&[9u8; 32]))
    }

    #[test]
    fn a_fresh_token_verifies_with_its_claims() {
        let k = keys();
        let t = k.issue(TokenKind::Access, "u1", "s1", NOW, NOW + 900);
        let c = k.verify(&t, TokenKind::Access, NOW).unwrap();
        assert_eq!((c.sub.as_str(), c.sid.as_str()), ("u1", "s1"));
    }

    #[test]
    fn kinds_do_not_pass_for_each_other() {
        let k = keys();
        let t = k.issue(TokenKind::Session, "u1", "s1", NOW, NOW + 900);
        assert_eq!(k.verify(&t, TokenKind::Access, NOW).unwrap_err(), Rejected);
    }

    #[test]
    fn an_mfa_token_is_neither_an_access_nor_a_session_token() {
        let k = keys();
        let t = k.issue(TokenKind::Mfa, "u1", "c1", NOW, NOW + 300);
        assert!(k.verify(&t, TokenKind::Mfa, NOW).is_ok());
        assert!(k.verify(&t, TokenKind::Access, NOW).is_err());
        assert!(k.verify(&t, TokenKind::Session, NOW).is_err());
        assert!(k.verify_django(&t, NOW).is_err());
        let access = k.issue(TokenKind::Access, "u1", "s1", NOW, NOW + 300);
        assert!(k.verify(&access, TokenKind::Mfa, NOW).is_err());
    }

    #[test]
    fn expiry_and_not_before_respect_the_leeway_exactly() {
        let k = keys();
        let t = k.issue(TokenKind::Access, "u1", "s1", NOW, NOW + 900);
        assert!(
            k.verify(&t, TokenKind::Access, NOW + 900 + LEEWAY_SECS - 1)
                .is_ok()
        );
        assert!(
            k.verify(&t, TokenKind::Access, NOW + 900 + LEEWAY_SECS)
                .is_err()
        );
        assert!(
            k.verify(&t, TokenKind::Access, NOW - LEEWAY_SECS - 1)
                .is_err()
        );
    }

    #[test]
    fn a_token_issued_in_the_future_fails_beyond_the_leeway() {
        let k = keys();
        let t = k.issue(TokenKind::Access, "u1", "s1", NOW + LEEWAY_SECS, NOW + 900);
        assert!(k.verify(&t, TokenKind::Access, NOW).is_ok());
        assert!(!times_ok(Some(NOW + LEEWAY_SECS + 1), None, NOW + 900, NOW));
        assert!(!times_ok(
            Some(NOW + 10 * 365 * 86_400),
            Some(NOW),
            NOW + 900,
            NOW
        ));
        assert!(times_ok(None, None, NOW + 900, NOW));
    }

    #[test]
    fn a_remembered_token_still_faces_every_rule_and_the_memory_stays_bounded() {
        let k = keys();
        let t = k.issue(TokenKind::Access, "u1", "s1", NOW, NOW + 900);
        assert!(k.verify(&t, TokenKind::Access, NOW).is_ok());
        assert_eq!(k.known.lock().len(), 1);
        // Its next uses are answered from memory: the same claims, and the kind and time rules again.
        let c = k.verify(&t, TokenKind::Access, NOW + 1).unwrap();
        assert_eq!((c.sub.as_str(), c.sid.as_str()), ("u1", "s1"));
        assert!(k.verify(&t, TokenKind::Session, NOW).is_err());
        assert!(k.verify(&t, TokenKind::Mfa, NOW).is_err());
        assert!(
            k.verify(&t, TokenKind::Access, NOW + 900 + LEEWAY_SECS)
                .is_err()
        );
        // A token one character away from a remembered one is checked, and refused.
        let middle = t.len() / 2;
        let swapped = if &t[middle..=middle] == "A" { "B" } else { "A" };
        let forged = format!("{}{swapped}{}", &t[..middle], &t[middle + 1..]);
        assert!(k.verify(&forged, TokenKind::Access, NOW).is_err());
        assert_eq!(k.known.lock().len(), 1, "refused tokens are not remembered");
        for i in 0..=MAX_KNOWN {
            let t = k.issue(TokenKind::Access, "u1", &format!("s{i}"), NOW, NOW + 900);
            assert!(k.verify(&t, TokenKind::Access, NOW).is_ok());
        }
        assert!(k.known.lock().len() <= MAX_KNOWN);
    }

    #[test]
    fn another_issuer_key_fails() {
        let other = TokenKeys::new(&[8u8; 32], "http://warden.test", None);
        let t = other.issue(TokenKind::Access, "u1", "s1", NOW, NOW + 900);
        assert!(keys().verify(&t, TokenKind::Access, NOW).is_err());
    }

    #[test]
    fn the_header_is_the_one_jsonwebtoken_writes_so_standard_libraries_read_our_tokens() {
        let t = keys().issue(TokenKind::Access, "u1", "s1", NOW, NOW + 900);
        let header = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.set_audience(&["http://warden.test"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &t,
            &DecodingKey::from_secret(&[7u8; 32]),
            &v,
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "u1");
        assert_eq!(data.claims["typ"], "access");
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics_or_passes(token in ".{0,600}") {
            let k = keys();
            proptest::prop_assert!(k.verify(&token, TokenKind::Access, NOW).is_err());
            proptest::prop_assert!(k.verify_django(&token, NOW).is_err());
        }

        #[test]
        fn flipping_any_character_of_a_real_token_breaks_it(pos in 0usize..300, c in proptest::char::any()) {
            let k = keys();
            let t = k.issue(TokenKind::Access, "u1", "s1", NOW, NOW + 900);
            let pos = pos % t.len();
            let mut chars: Vec<char> = t.chars().collect();
            proptest::prop_assume!(chars[pos] != c);
            chars[pos] = c;
            let changed: String = chars.into_iter().collect();
            // Base64url without padding: the last character of the signature carries spare bits, so only
            // changes the decoder reads can be required to fail.
            if let Ok(claims) = k.verify(&changed, TokenKind::Access, NOW) {
                proptest::prop_assert_eq!(claims.sub, "u1");
                proptest::prop_assert_eq!(pos, t.len() - 1);
            }
        }
    }

    #[test]
    fn our_tokens_are_not_django_tokens() {
        let k = keys();
        let t = k.issue(TokenKind::Access, "u1", "s1", NOW, NOW + 900);
        assert!(k.verify_django(&t, NOW).is_err());
    }
}
