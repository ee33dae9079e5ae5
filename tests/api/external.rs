//! External issuers (security.md case 6): a JWKS issuer's access tokens map to linked local users; keys come
//! only from the configured URL; its tokens and ours never pass for each other.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use warden::clock::Clock;

use crate::helpers::prelude::*;

db_tests!(jwks_issuer_tokens_map_to_linked_users_and_nothing_else_passes);

const ISSUER: &str = "https://idp.example.test/realms/team";
const AUDIENCE: &str = "warden";

/// RFC 8032 test vector 1 (Ed25519) and a second key, as PKCS#8 DER and JWK.
struct Key {
    kid: &'static str,
    seed: [u8; 32],
}

fn hex32(s: &str) -> [u8; 32] {
    let bytes = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect::<Vec<_>>();
    bytes.try_into().unwrap()
}

impl Key {
    fn encoding(&self) -> jsonwebtoken::EncodingKey {
        let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
        der.extend_from_slice(&self.seed);
        jsonwebtoken::EncodingKey::from_ed_der(&der)
    }
    fn mint(&self, claims: Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.kid.into());
        jsonwebtoken::encode(&header, &claims, &self.encoding()).unwrap()
    }
}

async fn serve(body: Arc<parking_lot::Mutex<Value>>, hits: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let body = body.clone();
            let hits = hits.clone();
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                axum::Json(body.lock().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/jwks.json")
}

async fn jwks_issuer_tokens_map_to_linked_users_and_nothing_else_passes(kind: DbKind) {
    let first = Key {
        kid: "k1",
        seed: hex32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
    };
    let second = Key {
        kid: "k2",
        seed: hex32("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"),
    };
    let first_public =
        hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").unwrap();
    let second_public =
        hex::decode("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c").unwrap();
    let jwk = |kid: &str, x: &[u8]| json!({ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": kid, "use": "sig", "x": B64.encode(x) });
    let published = Arc::new(parking_lot::Mutex::new(
        json!({ "keys": [jwk("k1", &first_public)] }),
    ));
    let hits = Arc::new(AtomicUsize::new(0));
    let url = serve(published.clone(), hits.clone()).await;
    let attacker_hits = Arc::new(AtomicUsize::new(0));
    let attacker_url = serve(
        Arc::new(parking_lot::Mutex::new(json!({ "keys": [] }))),
        attacker_hits.clone(),
    )
    .await;

    let app = spawn_app_with(
        kind,
        &[
            ("EXTERNAL_JWKS_URL", &url),
            ("EXTERNAL_JWKS_ISSUER", ISSUER),
            ("EXTERNAL_JWKS_AUDIENCE", AUDIENCE),
        ],
    )
    .await;
    let id = app.create_user("vera", "vera-password", "user").await;
    app.state
        .auth
        .link_external(ISSUER, "sso-vera", &id)
        .await
        .unwrap();
    let now = app.clock.now_ms() / 1000;
    let claims = |sub: &str| json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "exp": now + 300, "iat": now, "typ": "Bearer" });

    let token = first.mint(claims("sso-vera"));
    let me: Value = app.get_json("/api/me", &token).await;
    assert_eq!(me["username"], json!("vera"));
    assert_eq!(me["role"], json!("user"), "the role is the local user's");

    // Not linked, wrong audience or issuer, expired, a refresh token, or our /auth/verify: refused.
    let mut bad = vec![first.mint(claims("sso-nobody"))];
    for (field, value) in [
        ("aud", json!("another-app")),
        ("iss", json!("https://evil.test")),
        ("exp", json!(now - 60)),
        ("typ", json!("Refresh")),
        ("iat", json!(now + 3600)),
        ("iat", json!(now + 10 * 365 * 86_400)),
    ] {
        let mut c = claims("sso-vera");
        c[field] = value;
        bad.push(first.mint(c));
    }
    // A configured audience must be present, not only match when present (RFC 8725 §3.9).
    let mut no_audience = claims("sso-vera");
    no_audience.as_object_mut().unwrap().remove("aud");
    bad.push(first.mint(no_audience));
    // Signed by a key the issuer never published, with a jku pointing at the attacker's key set.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("k1".into());
    header.jku = Some(attacker_url.clone());
    bad.push(jsonwebtoken::encode(&header, &claims("sso-vera"), &second.encoding()).unwrap());
    // The issuer's public key used as an HMAC secret (algorithm confusion).
    bad.push(
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims("sso-vera"),
            &jsonwebtoken::EncodingKey::from_secret(&first_public),
        )
        .unwrap(),
    );
    for t in &bad {
        expect_error(app.get_bearer("/api/me", t).await, StatusCode::UNAUTHORIZED).await;
    }
    assert_eq!(
        attacker_hits.load(Ordering::SeqCst),
        0,
        "no key is ever fetched from a token's header"
    );
    let v: Value = app
        .post("/auth/verify", json!({ "token": token }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["valid"],
        json!(true),
        "verify reports the same as every other route"
    );
    let r = app
        .get_as(
            "/api/me",
            &crate::helpers::header("cookie", format!("auth_token={token}")),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "an external token is never a browser session"
    );

    // Key rotation: a token with an unknown kid makes Warden fetch the set again, at most every 30 s.
    *published.lock() = json!({ "keys": [jwk("k1", &first_public), jwk("k2", &second_public)] });
    let rotated = second.mint(claims("sso-vera"));
    let before = hits.load(Ordering::SeqCst);
    expect_error(
        app.get_bearer("/api/me", &rotated).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before,
        "no refetch within 30 s of the last one"
    );
    app.clock.advance(std::time::Duration::from_secs(31));
    let now = app.clock.now_ms() / 1000;
    let rotated = second.mint(
        json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": "sso-vera", "exp": now + 300, "iat": now }),
    );
    assert_eq!(
        app.get_bearer("/api/me", &rotated).await.status(),
        StatusCode::OK
    );
    assert_eq!(hits.load(Ordering::SeqCst), before + 1);
}
