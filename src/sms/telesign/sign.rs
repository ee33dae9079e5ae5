//! Telesign request authentication, both ways: signing what the client sends, and verifying what the mock
//! (and the delivery-receipt route) receives.
//!
//! Digest authentication signs a string built from the request (see [`string_to_sign`]) with HMAC-SHA256 under
//! the base64-decoded API key. Two forms exist: the current one carries the time in `Date`; the older one leaves
//! the Date line empty and signs `x-ts-date` among the sorted `x-ts-` headers. Delivery receipts sign only the
//! body. Every vector of /work/shared/reference/telesign.md is a unit test below.
//!
//! Invariants of the [`Verifier`]: the string is rebuilt from the raw body bytes and the Content-Type actually
//! received; signatures compare in constant time; a nonce is remembered only once its request proved
//! authentic (so forgeries cannot burn nonces), for as long as its date could still be accepted, and the
//! memory for them is bounded.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::{OffsetDateTime, PrimitiveDateTime, format_description::BorrowedFormatItem};

/// The only digest method Telesign defines.
pub const AUTH_METHOD: &str = "HMAC-SHA256";

/// RFC 1123 dates, always in GMT: `Wed, 14 Dec 2016 18:20:12 GMT`.
const RFC1123: &[BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// How far a request's date may be from the verifier's clock, either way.
pub const DATE_WINDOW_SECS: i64 = 15 * 60;

/// Nonces remembered at most; past it, requests are refused (rate limited) rather than replayable.
const MAX_NONCES: usize = 100_000;

/// An API key is base64 once the characters outside the base64 alphabet are dropped (Telesign's example key
/// holds dashes).
pub fn decode_api_key(api_key: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let cleaned: String = api_key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        .collect();
    STANDARD.decode(cleaned)
}

/// `Basic base64(customer_id:api_key)`, the key as given (not decoded).
pub fn basic_authorization(customer_id: &str, api_key: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{customer_id}:{api_key}"))
    )
}

/// The date in the form Telesign signs and sends.
pub fn rfc1123(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(RFC1123)
        .unwrap_or_default()
}

/// Parses an RFC 1123 GMT date, as unix seconds.
pub fn parse_rfc1123(text: &str) -> Option<i64> {
    PrimitiveDateTime::parse(text.trim(), RFC1123)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// Where the request's time is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateForm {
    /// In the `Date` header (what current SDKs send).
    Date,
    /// In an `x-ts-date` header, with an empty Date line (older SDKs).
    XTsDate,
}

/// What a digest signature covers.
#[derive(Clone, Copy, Debug)]
pub struct Signed<'a> {
    pub method: &'a str,
    /// Empty for a request without a body (GET, DELETE).
    pub content_type: &'a str,
    pub date: &'a str,
    pub date_form: DateForm,
    pub nonce: &'a str,
    /// The exact bytes sent.
    pub body: &'a [u8],
    /// The path only: no host, no query string.
    pub resource: &'a str,
}

/// The parts joined by `\n`, no trailing newline; the body only when there is both a content type and a body.
pub fn string_to_sign(s: &Signed<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + s.body.len());
    let line = |part: &[u8], out: &mut Vec<u8>| {
        if !out.is_empty() {
            out.push(b'\n');
        }
        out.extend_from_slice(part);
    };
    line(s.method.as_bytes(), &mut out);
    line(s.content_type.as_bytes(), &mut out);
    match s.date_form {
        DateForm::Date => {
            line(s.date.as_bytes(), &mut out);
            line(
                format!("x-ts-auth-method:{AUTH_METHOD}").as_bytes(),
                &mut out,
            );
        }
        DateForm::XTsDate => {
            line(b"", &mut out);
            line(
                format!("x-ts-auth-method:{AUTH_METHOD}").as_bytes(),
                &mut out,
            );
            line(format!("x-ts-date:{}", s.date).as_bytes(), &mut out);
        }
    }
    line(format!("x-ts-nonce:{}", s.nonce).as_bytes(), &mut out);
    if !s.content_type.is_empty() && !s.body.is_empty() {
        line(s.body, &mut out);
    }
    line(s.resource.as_bytes(), &mut out);
    out
}

/// base64(HMAC-SHA256(key, message)).
pub fn hmac_base64(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The signature of a request.
pub fn signature(key: &[u8], signed: &Signed<'_>) -> String {
    hmac_base64(key, &string_to_sign(signed))
}

/// The `Authorization` of a delivery receipt: only the raw body is signed.
pub fn callback_authorization(customer_id: &str, key: &[u8], body: &[u8]) -> String {
    format!("TSA {customer_id}:{}", hmac_base64(key, body))
}

/// The headers a digest-signed request carries, for `signed` (whose date form must be [`DateForm::Date`]
/// for current servers).
pub fn digest_headers(
    customer_id: &str,
    key: &[u8],
    signed: &Signed<'_>,
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (
            "Authorization",
            format!("TSA {customer_id}:{}", signature(key, signed)),
        ),
        ("x-ts-auth-method", AUTH_METHOD.to_string()),
        ("x-ts-nonce", signed.nonce.to_string()),
    ];
    match signed.date_form {
        DateForm::Date => headers.push(("Date", signed.date.to_string())),
        DateForm::XTsDate => headers.push(("x-ts-date", signed.date.to_string())),
    }
    if !signed.content_type.is_empty() {
        headers.push(("Content-Type", signed.content_type.to_string()));
    }
    headers
}

/// Why a request was refused, with Telesign's code (all answered with 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("Nonce has already been used.")]
    NonceReused,
    #[error("Nonce is missing or has an invalid length.")]
    NonceLength,
    #[error("Date is out of the allowed range.")]
    DateOutOfRange,
    #[error("Date header is not in RFC 1123 format.")]
    DateFormat,
    #[error("Authorization method is not supported.")]
    AuthMethod,
    #[error("Date header is missing.")]
    MissingDate,
    #[error("Invalid signature.")]
    InvalidSignature,
    #[error("Authorization header is missing.")]
    MissingAuthorization,
    #[error("Invalid customer ID.")]
    InvalidCustomerId,
    #[error("Authorization header is malformed.")]
    MalformedAuthorization,
    /// The nonce memory is full: refusing is safer than forgetting nonces still inside the window.
    #[error("Too many requests.")]
    TooManyRequests,
}

impl Refused {
    /// Telesign's `status.code` for this refusal.
    pub fn code(self) -> i64 {
        match self {
            Refused::NonceReused => 10002,
            Refused::NonceLength => 10003,
            Refused::DateOutOfRange => 10004,
            Refused::DateFormat => 10005,
            Refused::AuthMethod => 10006,
            Refused::MissingDate => 10007,
            Refused::InvalidSignature => 10008,
            Refused::MissingAuthorization => 10009,
            Refused::InvalidCustomerId => 10015,
            Refused::MalformedAuthorization => 10028,
            Refused::TooManyRequests => 10019,
        }
    }
}

/// A received request, as the verifier needs it.
#[derive(Clone, Copy, Debug)]
pub struct Received<'a> {
    pub method: &'a str,
    /// The path only.
    pub resource: &'a str,
    /// Every header, names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

impl Received<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// How a request proved itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authenticated {
    Basic,
    Digest(DateForm),
}

/// Checks requests signed with one account's credentials, remembering nonces.
pub struct Verifier {
    customer_id: String,
    api_key: String,
    key: Vec<u8>,
    /// nonce → the unix second after which its request's date could no longer be accepted.
    nonces: Mutex<HashMap<String, i64>>,
    max_nonces: usize,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("customer_id", &self.customer_id)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

impl Verifier {
    pub fn new(customer_id: &str, api_key: &str) -> Result<Verifier, base64::DecodeError> {
        Ok(Verifier {
            customer_id: customer_id.to_string(),
            api_key: api_key.to_string(),
            key: decode_api_key(api_key)?,
            nonces: Mutex::new(HashMap::new()),
            max_nonces: MAX_NONCES,
        })
    }

    /// Verifies `req` as Telesign would at unix second `now`: Basic or digest, either date form.
    pub fn verify(&self, req: &Received<'_>, now: i64) -> Result<Authenticated, Refused> {
        let authorization = req
            .header("Authorization")
            .ok_or(Refused::MissingAuthorization)?
            .trim();
        let (scheme, credentials) = authorization
            .split_once(' ')
            .ok_or(Refused::MalformedAuthorization)?;
        if scheme.eq_ignore_ascii_case("Basic") {
            return self.verify_basic(credentials.trim());
        }
        if scheme != "TSA" {
            return Err(Refused::MalformedAuthorization);
        }
        let (customer_id, signature) = credentials
            .trim()
            .rsplit_once(':')
            .ok_or(Refused::MalformedAuthorization)?;
        if customer_id.is_empty() || signature.is_empty() {
            return Err(Refused::MalformedAuthorization);
        }
        if !bool::from(customer_id.as_bytes().ct_eq(self.customer_id.as_bytes())) {
            return Err(Refused::InvalidCustomerId);
        }
        if req.header("x-ts-auth-method") != Some(AUTH_METHOD) {
            return Err(Refused::AuthMethod);
        }
        let (date, date_form) = match (req.header("x-ts-date"), req.header("Date")) {
            (Some(d), _) => (d, DateForm::XTsDate),
            (None, Some(d)) => (d, DateForm::Date),
            (None, None) => return Err(Refused::MissingDate),
        };
        let at = parse_rfc1123(date).ok_or(Refused::DateFormat)?;
        if (at - now).abs() > DATE_WINDOW_SECS {
            return Err(Refused::DateOutOfRange);
        }
        let nonce = req.header("x-ts-nonce").unwrap_or("");
        if nonce.is_empty() || nonce.len() > 128 {
            return Err(Refused::NonceLength);
        }
        let expected = hmac_base64(
            &self.key,
            &string_to_sign(&Signed {
                method: req.method,
                content_type: req.header("Content-Type").unwrap_or(""),
                date,
                date_form,
                nonce,
                body: req.body,
                resource: req.resource,
            }),
        );
        if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
            return Err(Refused::InvalidSignature);
        }
        self.remember_nonce(nonce, at + DATE_WINDOW_SECS, now)?;
        Ok(Authenticated::Digest(date_form))
    }

    fn verify_basic(&self, credentials: &str) -> Result<Authenticated, Refused> {
        let decoded = STANDARD
            .decode(credentials)
            .map_err(|_| Refused::MalformedAuthorization)?;
        let text = String::from_utf8(decoded).map_err(|_| Refused::MalformedAuthorization)?;
        let (customer_id, api_key) = text
            .split_once(':')
            .ok_or(Refused::MalformedAuthorization)?;
        if !bool::from(customer_id.as_bytes().ct_eq(self.customer_id.as_bytes())) {
            return Err(Refused::InvalidCustomerId);
        }
        if !bool::from(api_key.as_bytes().ct_eq(self.api_key.as_bytes())) {
            return Err(Refused::InvalidSignature);
        }
        Ok(Authenticated::Basic)
    }

    fn remember_nonce(&self, nonce: &str, until: i64, now: i64) -> Result<(), Refused> {
        let mut nonces = self.nonces.lock();
        if let Some(&expires) = nonces.get(nonce)
            && expires >= now
        {
            return Err(Refused::NonceReused);
        }
        if nonces.len() >= self.max_nonces {
            nonces.retain(|_, &mut expires| expires >= now);
            if nonces.len() >= self.max_nonces {
                return Err(Refused::TooManyRequests);
            }
        }
        nonces.insert(nonce.to_string(), until);
        Ok(())
    }

    /// Verifies a delivery receipt: `TSA customer_id:base64(HMAC(key, body))`.
    pub fn verify_callback(&self, body: &[u8], authorization: Option<&str>) -> Result<(), Refused> {
        let authorization = authorization.ok_or(Refused::MissingAuthorization)?.trim();
        let credentials = authorization
            .strip_prefix("TSA ")
            .ok_or(Refused::MalformedAuthorization)?;
        let (customer_id, signature) = credentials
            .rsplit_once(':')
            .ok_or(Refused::MalformedAuthorization)?;
        if !bool::from(customer_id.as_bytes().ct_eq(self.customer_id.as_bytes())) {
            return Err(Refused::InvalidCustomerId);
        }
        let expected = hmac_base64(&self.key, body);
        if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
            return Err(Refused::InvalidSignature);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Wed, 14 Dec 2016 18:20:12 GMT";
    const NONCE: &str = "A1592C6F-E384-4CDB-BC42-C3AB970369E9";
    const EXAMPLE: &str =
        "EXAMPLE----TE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw==";
    const TEST_KEY: &str = "VGVzdCBLZXk=";
    const CUSTOMER: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";
    const FORM: &str = "application/x-www-form-urlencoded";

    struct Vector {
        key: &'static str,
        method: &'static str,
        content_type: &'static str,
        body: &'static str,
        resource: &'static str,
        form: DateForm,
        signature: &'static str,
    }

    fn vectors() -> Vec<Vector> {
        let v = |key, method, content_type, body, resource, form, signature| Vector {
            key,
            method,
            content_type,
            body,
            resource,
            form,
            signature,
        };
        use DateForm::*;
        vec![
            v(
                EXAMPLE,
                "POST",
                FORM,
                "test=param",
                "/v1/resource",
                Date,
                "2xVlmbrxLjYrrPun3G3WMNG6Jon4yKcTeOoK9DjXJ/Q=",
            ),
            v(
                EXAMPLE,
                "POST",
                FORM,
                "test=%CF%BF",
                "/v1/resource",
                Date,
                "h8d4I0RTxErbxYXuzCOtNqb/f0w3Ck8e5SEkGNj01+8=",
            ),
            v(
                EXAMPLE,
                "GET",
                "",
                "",
                "/v1/resource",
                Date,
                "aUm7I+9GKl3ww7PNeeJntCT0iS7b+EmRKEE4LnRzChQ=",
            ),
            v(
                TEST_KEY,
                "POST",
                FORM,
                "test=param",
                "/v1/resource",
                Date,
                "vXw/XzywdhgfEG2/zWLaFp7oXmjLB8iJDMndvDbZMjk=",
            ),
            v(
                TEST_KEY,
                "POST",
                FORM,
                "test=%CF%BF",
                "/v1/resource",
                Date,
                "lPpGXw4jTRdaEp2obzYAD5rR+2aWDInJ8ThLbq0nTGU=",
            ),
            v(
                TEST_KEY,
                "GET",
                "",
                "",
                "/v1/resource",
                Date,
                "wscyrZZtA7kdXu0i4D5KXyDmBcwH52JF1feiEKp+ir0=",
            ),
            v(
                EXAMPLE,
                "POST",
                FORM,
                "test=param",
                "/v1/resource",
                XTsDate,
                "B4/b6zs3M+i4Bjee6Fx1jlCcMPdjflxiQo8Np9Fi78E=",
            ),
            v(
                EXAMPLE,
                "POST",
                "application/json",
                r#"{"account_lifecycle_event": "create"}"#,
                "/v1/phoneid/15555551212",
                Date,
                "D4f6Lt6/5WJF0FVWvhl08gJNpCobr5g377CAdjdHUKI=",
            ),
        ]
    }

    fn signed(v: &Vector) -> Signed<'_> {
        Signed {
            method: v.method,
            content_type: v.content_type,
            date: DATE,
            date_form: v.form,
            nonce: NONCE,
            body: v.body.as_bytes(),
            resource: v.resource,
        }
    }

    fn vector_time() -> i64 {
        parse_rfc1123(DATE).unwrap()
    }

    #[test]
    fn the_example_key_decodes_past_its_dashes() {
        assert_eq!(decode_api_key(EXAMPLE).unwrap().len(), 61);
        assert_eq!(decode_api_key(TEST_KEY).unwrap(), b"Test Key");
    }

    #[test]
    fn every_reference_vector_signs_to_its_signature() {
        for v in vectors() {
            let key = decode_api_key(v.key).unwrap();
            assert_eq!(
                signature(&key, &signed(&v)),
                v.signature,
                "{} {} {:?} {:?}",
                v.method,
                v.body,
                v.form,
                v.key
            );
        }
    }

    #[test]
    fn the_string_to_sign_has_no_body_line_without_a_body_and_no_trailing_newline() {
        let get = string_to_sign(&Signed {
            method: "GET",
            content_type: "",
            date: DATE,
            date_form: DateForm::Date,
            nonce: NONCE,
            body: b"",
            resource: "/v1/resource",
        });
        assert_eq!(
            String::from_utf8(get).unwrap(),
            format!(
                "GET\n\n{DATE}\nx-ts-auth-method:HMAC-SHA256\nx-ts-nonce:{NONCE}\n/v1/resource"
            )
        );
        let old = string_to_sign(&Signed {
            method: "POST",
            content_type: FORM,
            date: DATE,
            date_form: DateForm::XTsDate,
            nonce: NONCE,
            body: b"test=param",
            resource: "/v1/resource",
        });
        assert_eq!(
            String::from_utf8(old).unwrap(),
            format!(
                "POST\n{FORM}\n\nx-ts-auth-method:HMAC-SHA256\nx-ts-date:{DATE}\nx-ts-nonce:{NONCE}\ntest=param\n/v1/resource"
            )
        );
    }

    #[test]
    fn the_basic_header_matches_the_reference() {
        assert_eq!(
            basic_authorization(CUSTOMER, EXAMPLE),
            "Basic RkZGRkZGRkYtRUVFRS1ERERELTEyMzQtQUIxMjM0NTY3ODkwOkVYQU1QTEUtLS0tVEU4c1RnZzQ1eXVzdW1vTjZCWXNCVmtoK3lSSjVjemdzbkNlaFphT1lsZFBKZG1GaDZOZVg4a3VuWjJ6VTFZV2FVdy8wd1Y2eGZ3PT0="
        );
    }

    #[test]
    fn the_callback_vector_signs_the_body_only() {
        let key = decode_api_key(EXAMPLE).unwrap();
        let auth = callback_authorization(CUSTOMER, &key, b"{'test': 123}");
        assert_eq!(
            auth,
            format!("TSA {CUSTOMER}:B97g3N9lPdVaptvifxRau7bzVAC5hhRBZ6HKXABN744=")
        );
        let verifier = Verifier::new(CUSTOMER, EXAMPLE).unwrap();
        assert_eq!(
            verifier.verify_callback(b"{'test': 123}", Some(&auth)),
            Ok(())
        );
        assert_eq!(
            verifier.verify_callback(b"{'test': 124}", Some(&auth)),
            Err(Refused::InvalidSignature)
        );
        assert_eq!(
            verifier.verify_callback(b"{'test': 123}", None),
            Err(Refused::MissingAuthorization)
        );
        assert_eq!(
            verifier.verify_callback(b"{'test': 123}", Some("Bearer x")),
            Err(Refused::MalformedAuthorization)
        );
    }

    fn headers_of(v: &Vector) -> Vec<(String, String)> {
        let key = decode_api_key(v.key).unwrap();
        digest_headers(CUSTOMER, &key, &signed(v))
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect()
    }

    fn check(
        verifier: &Verifier,
        v: &Vector,
        headers: &[(String, String)],
        now: i64,
    ) -> Result<Authenticated, Refused> {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        verifier.verify(
            &Received {
                method: v.method,
                resource: v.resource,
                headers: &headers,
                body: v.body.as_bytes(),
            },
            now,
        )
    }

    #[test]
    fn the_verifier_accepts_every_reference_vector_once() {
        for v in vectors() {
            let verifier = Verifier::new(CUSTOMER, v.key).unwrap();
            let headers = headers_of(&v);
            let sig = &headers[0].1;
            assert!(sig.ends_with(v.signature), "{sig}");
            assert_eq!(
                check(&verifier, &v, &headers, vector_time()),
                Ok(Authenticated::Digest(v.form)),
                "{} {}",
                v.method,
                v.body
            );
            assert_eq!(
                check(&verifier, &v, &headers, vector_time() + 1),
                Err(Refused::NonceReused)
            );
        }
    }

    #[test]
    fn the_verifier_refuses_with_telesigns_codes() {
        let v = &vectors()[0];
        let verifier = Verifier::new(CUSTOMER, EXAMPLE).unwrap();
        let now = vector_time();
        let good = headers_of(v);
        let with = |name: &str, value: Option<&str>| -> Vec<(String, String)> {
            let mut h: Vec<(String, String)> = good
                .iter()
                .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
                .cloned()
                .collect();
            if let Some(value) = value {
                h.push((name.to_string(), value.to_string()));
            }
            h
        };
        type Headers = Vec<(String, String)>;
        let cases: Vec<(Headers, i64, Refused)> = vec![
            (
                with("Authorization", None),
                now,
                Refused::MissingAuthorization,
            ),
            (
                with("Authorization", Some("TSA nocolon")),
                now,
                Refused::MalformedAuthorization,
            ),
            (
                with("Authorization", Some("Bearer abc")),
                now,
                Refused::MalformedAuthorization,
            ),
            (
                with("Authorization", Some("TSA someone-else:abc=")),
                now,
                Refused::InvalidCustomerId,
            ),
            (
                with("x-ts-auth-method", Some("HMAC-SHA1")),
                now,
                Refused::AuthMethod,
            ),
            (with("Date", None), now, Refused::MissingDate),
            (with("Date", Some("yesterday")), now, Refused::DateFormat),
            (
                good.clone(),
                now + DATE_WINDOW_SECS + 1,
                Refused::DateOutOfRange,
            ),
            (
                good.clone(),
                now - DATE_WINDOW_SECS - 1,
                Refused::DateOutOfRange,
            ),
            (with("x-ts-nonce", None), now, Refused::NonceLength),
            (
                with(
                    "Authorization",
                    Some(&format!(
                        "TSA {CUSTOMER}:2xVlmbrxLjYrrPun3G3WMNG6Jon4yKcTeOoK9DjXJ/Q"
                    )),
                ),
                now,
                Refused::InvalidSignature,
            ),
            // Signed as a form, received as JSON: the Content-Type actually received is what counts.
            (
                with("Content-Type", Some("application/json")),
                now,
                Refused::InvalidSignature,
            ),
        ];
        for (headers, at, refused) in cases {
            assert_eq!(
                check(&verifier, v, &headers, at),
                Err(refused),
                "{headers:?}"
            );
        }
        assert_eq!(Refused::NonceReused.code(), 10002);
        assert_eq!(Refused::MalformedAuthorization.code(), 10028);
        // None of the refusals burned the nonce.
        assert_eq!(
            check(&verifier, v, &good, now),
            Ok(Authenticated::Digest(DateForm::Date))
        );
    }

    #[test]
    fn a_tampered_body_or_resource_is_refused() {
        let v = &vectors()[0];
        let verifier = Verifier::new(CUSTOMER, EXAMPLE).unwrap();
        let headers: Vec<(String, String)> = headers_of(v);
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let base = Received {
            method: "POST",
            resource: "/v1/resource",
            headers: &h,
            body: b"test=param",
        };
        let now = vector_time();
        for req in [
            Received {
                body: b"test=parab",
                ..base
            },
            Received {
                resource: "/v1/other",
                ..base
            },
            Received {
                method: "PUT",
                ..base
            },
        ] {
            assert_eq!(verifier.verify(&req, now), Err(Refused::InvalidSignature));
        }
    }

    #[test]
    fn basic_credentials_are_accepted_only_when_exact() {
        let verifier = Verifier::new(CUSTOMER, EXAMPLE).unwrap();
        let req = |auth: &str| {
            let headers = [("authorization", auth)];
            verifier.verify(
                &Received {
                    method: "GET",
                    resource: "/v1/resource",
                    headers: &headers,
                    body: b"",
                },
                0,
            )
        };
        assert_eq!(
            req(&basic_authorization(CUSTOMER, EXAMPLE)),
            Ok(Authenticated::Basic)
        );
        assert_eq!(
            req(&basic_authorization(CUSTOMER, TEST_KEY)),
            Err(Refused::InvalidSignature)
        );
        assert_eq!(
            req(&basic_authorization("other", EXAMPLE)),
            Err(Refused::InvalidCustomerId)
        );
        assert_eq!(req("Basic !!!"), Err(Refused::MalformedAuthorization));
    }

    #[test]
    fn remembered_nonces_expire_with_the_window_and_stay_bounded() {
        let mut verifier = Verifier::new(CUSTOMER, EXAMPLE).unwrap();
        verifier.max_nonces = 2;
        verifier.remember_nonce("a", 100, 0).unwrap();
        verifier.remember_nonce("b", 200, 0).unwrap();
        assert_eq!(
            verifier.remember_nonce("a", 100, 50),
            Err(Refused::NonceReused)
        );
        assert_eq!(
            verifier.remember_nonce("c", 300, 50),
            Err(Refused::TooManyRequests)
        );
        // Once "a" cannot be accepted anyway, its room is reused.
        verifier.remember_nonce("c", 300, 150).unwrap();
        assert_eq!(verifier.nonces.lock().len(), 2);
    }

    #[test]
    fn dates_round_trip_in_rfc1123() {
        let at = parse_rfc1123(DATE).unwrap();
        assert_eq!(
            rfc1123(OffsetDateTime::from_unix_timestamp(at).unwrap()),
            DATE
        );
        assert_eq!(parse_rfc1123("Wed, 14 Dec 2016 18:20:12 +0000"), None);
    }
}
