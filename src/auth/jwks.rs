//! An external issuer that publishes its keys as a JWKS (Keycloak, Auth0, Authentik, …): its access tokens map
//! to local users through `external_identities(issuer, sub)`. Nothing in the token says where keys come from:
//! `jku`, `x5u` and embedded `jwk` headers are ignored, keys are fetched only from the configured URL, and a
//! token's `kid` only picks among them. Only asymmetric algorithms are accepted, so a public key can never be
//! misused as an HMAC secret.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use parking_lot::RwLock;
use serde::Deserialize;

use super::tokens::{MAX_TOKEN_BYTES, Rejected, times_ok};

/// How often an unknown `kid` may trigger a new fetch of the key set, ms.
const REFETCH_EVERY_MS: i64 = 30_000;
const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
    Algorithm::PS256,
];

pub struct JwksVerifier {
    url: String,
    issuer: String,
    audience: Option<String>,
    http: reqwest::Client,
    keys: RwLock<JwkSet>,
    /// When the last fetch started (application clock, ms). Held across the fetch, so a caller that finds
    /// a fetch under way waits for its keys instead of failing.
    last_fetch: tokio::sync::Mutex<Option<i64>>,
}

#[derive(Deserialize)]
struct ExternalClaims {
    sub: String,
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    typ: Option<String>,
    token_type: Option<String>,
}

impl JwksVerifier {
    pub fn new(url: &str, issuer: &str, audience: Option<&str>) -> JwksVerifier {
        JwksVerifier {
            url: url.to_string(),
            issuer: issuer.to_string(),
            audience: audience.map(String::from),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client builds"),
            keys: RwLock::new(JwkSet { keys: Vec::new() }),
            last_fetch: tokio::sync::Mutex::new(None),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Fetches the key set, at most once per `REFETCH_EVERY_MS`. Failures keep the keys already held.
    pub async fn refresh(&self, now_ms: i64) {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|t| now_ms - t < REFETCH_EVERY_MS) {
            return;
        }
        *last = Some(now_ms);
        match self.fetch().await {
            Ok(set) => *self.keys.write() = set,
            Err(e) => tracing::warn!(error = %e, "fetching the external issuer's JWKS failed"),
        }
    }

    async fn fetch(&self) -> anyhow::Result<JwkSet> {
        let response = self.http.get(&self.url).send().await?.error_for_status()?;
        Ok(response.json::<JwkSet>().await?)
    }

    /// True when the token claims to be signed by an algorithm this verifier handles.
    pub fn handles(token: &str) -> bool {
        token.len() <= MAX_TOKEN_BYTES
            && jsonwebtoken::decode_header(token).is_ok_and(|h| ALLOWED.contains(&h.alg))
    }

    /// Verifies an external access token; returns its subject.
    pub async fn verify(&self, token: &str, now_secs: i64) -> Result<String, Rejected> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejected)?;
        if !ALLOWED.contains(&header.alg) {
            return Err(Rejected);
        }
        let key = match self.key(header.kid.as_deref(), header.alg) {
            Some(k) => k,
            None => {
                self.refresh(now_secs.saturating_mul(1000)).await;
                self.key(header.kid.as_deref(), header.alg)
                    .ok_or(Rejected)?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_issuer(&[&self.issuer]);
        // A configured audience must be present, not only match when present (RFC 8725 §3.9).
        match &self.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.set_required_spec_claims(&["iss", "sub", "exp", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["iss", "sub", "exp"]);
            }
        }
        let claims = jsonwebtoken::decode::<ExternalClaims>(token, &key, &validation)
            .map_err(|_| Rejected)?
            .claims;
        let kind = claims.typ.as_deref().or(claims.token_type.as_deref());
        let is_access = kind.is_none_or(|k| ["access", "Bearer", "at+jwt"].contains(&k));
        let fresh = times_ok(claims.iat, claims.nbf, claims.exp, now_secs);
        if !is_access || !fresh || claims.sub.is_empty() || claims.sub.len() > 255 {
            return Err(Rejected);
        }
        Ok(claims.sub)
    }

    fn key(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.read();
        let jwk = match kid {
            Some(kid) => keys.find(kid)?,
            None if keys.keys.len() == 1 => &keys.keys[0],
            None => return None,
        };
        // A key that names its algorithm is used for that algorithm only.
        if let Some(key_alg) = jwk.common.key_algorithm
            && format!("{key_alg:?}") != format!("{alg:?}")
        {
            return None;
        }
        DecodingKey::from_jwk(jwk).ok()
    }
}
