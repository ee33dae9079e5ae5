//! Extractors: the caller (`Principal`, `MaybePrincipal`, `Require<P>`), the client address, and a JSON body
//! whose rejections use our error shape.
//!
//! `Principal` is the one choke point for authentication: every protected handler takes it (directly or via
//! `Require<P>`), and for cookie credentials on unsafe methods it also checks the CSRF token.

use std::{marker::PhantomData, net::IpAddr, net::SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{HeaderMap, request::Parts},
};
use serde::de::DeserializeOwned;

use super::error::AppError;
use crate::{
    auth::{Credential, Principal, permissions},
    state::AppState,
};

pub const CSRF_HEADER: &str = "x-csrf-token";

/// Where the extractors leave the authenticated caller's user id for the request log: the edge puts one in
/// each request (when analytics is on) and reads it once the response is made.
#[derive(Clone, Default)]
pub struct CallerSlot(std::sync::Arc<std::sync::OnceLock<String>>);

impl CallerSlot {
    pub fn get(&self) -> Option<&String> {
        self.0.get()
    }
}

/// The one token a request presents, and where it came from.
#[derive(Debug, PartialEq, Eq)]
pub struct Presented<'a> {
    pub token: &'a str,
    pub credential: Credential,
    /// True when the token came in the `Authorization` header (the only place `/mcp` reads).
    pub in_authorization: bool,
}

/// The credential a request presents: a bearer token (`Authorization` or the seed's `X-Access-Token`) or the
/// session cookie. A request presenting two different ones (two `Authorization` headers, a bearer token and
/// a cookie, two cookies of the same name) is refused: who is calling must never depend on which header is
/// read first. The same token sent twice (`Authorization` and `X-Access-Token`) is one credential.
pub fn presented_token<'a>(
    headers: &'a HeaderMap,
    cookie_name: &str,
) -> Result<Option<Presented<'a>>, AppError> {
    let mut found: Option<Presented<'a>> = None;
    let mut offer = |p: Presented<'a>| -> Result<(), AppError> {
        match &found {
            Some(seen) if seen.token != p.token || seen.credential != p.credential => Err(
                AppError::BadRequest("Ambiguous credentials: send exactly one token".into()),
            ),
            Some(_) => Ok(()),
            None => {
                found = Some(p);
                Ok(())
            }
        }
    };
    for value in headers.get_all(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| AppError::Unauthorized)?;
        let (scheme, token) = value.split_once(' ').ok_or(AppError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AppError::Unauthorized);
        }
        offer(Presented {
            token: token.trim(),
            credential: Credential::Bearer,
            in_authorization: true,
        })?;
    }
    for value in headers.get_all("x-access-token") {
        offer(Presented {
            token: value.to_str().map_err(|_| AppError::Unauthorized)?,
            credential: Credential::Bearer,
            in_authorization: false,
        })?;
    }
    for token in cookies(headers, cookie_name) {
        offer(Presented {
            token,
            credential: Credential::Cookie,
            in_authorization: false,
        })?;
    }
    Ok(found)
}

/// The value of one cookie (the first, if the browser sent several of that name).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    cookies(headers, name).next()
}

/// Every non-empty value sent for a cookie name.
fn cookies<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v)
}

async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Option<Principal>, AppError> {
    let Some(Presented {
        token, credential, ..
    }) = presented_token(&parts.headers, state.config.session_cookie_name())?
    else {
        return Ok(None);
    };
    let principal = state.auth.authenticate(token, credential).await?;
    // A role that requires a second factor: until one is confirmed, the session may only enrol it.
    if principal.account.must_enrol_second_factor() && !open_before_enrolment(parts.uri.path()) {
        return Err(AppError::enrolment_required());
    }
    if credential == Credential::Cookie && !parts.method.is_safe() {
        let csrf = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !state.auth.verify_csrf(&principal.session_id, csrf) {
            return Err(AppError::Forbidden("Invalid CSRF token".into()));
        }
    }
    if let Some(slot) = parts.extensions.get::<CallerSlot>() {
        let _ = slot.0.set(principal.account.id.to_string());
    }
    Ok(Some(principal))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, state)
            .await?
            .ok_or(AppError::Unauthorized)
    }
}

/// The caller if a credential was presented; a presented but bad credential is still a 401.
pub struct MaybePrincipal(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybePrincipal {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(MaybePrincipal(authenticate(parts, state).await?))
    }
}

/// A permission a route requires.
pub trait Permission {
    const NAME: &'static str;
}

pub struct UsersManage;
impl Permission for UsersManage {
    const NAME: &'static str = permissions::USERS_MANAGE;
}

pub struct McpManage;
impl Permission for McpManage {
    const NAME: &'static str = permissions::MCP_MANAGE;
}

pub struct ChatUse;
impl Permission for ChatUse {
    const NAME: &'static str = permissions::CHAT_USE;
}

pub struct MetricsRead;
impl Permission for MetricsRead {
    const NAME: &'static str = permissions::METRICS_READ;
}

pub struct TestsUse;
impl Permission for TestsUse {
    const NAME: &'static str = permissions::TESTS_USE;
}

pub struct ConnectionsUse;
impl Permission for ConnectionsUse {
    const NAME: &'static str = permissions::CONNECTIONS_USE;
}

pub struct AnalyticsRead;
impl Permission for AnalyticsRead {
    const NAME: &'static str = permissions::ANALYTICS_READ;
}

pub struct AuditRead;
impl Permission for AuditRead {
    const NAME: &'static str = permissions::AUDIT_READ;
}

/// Seeing the tool catalog needs the chat permission: tools are what the agent uses.
pub struct ToolsList;
impl Permission for ToolsList {
    const NAME: &'static str = permissions::CHAT_USE;
}

/// The caller, known to hold permission `P` (403 otherwise).
pub struct Require<P: Permission>(pub Principal, pub PhantomData<P>);

impl<P: Permission + Send + Sync> FromRequestParts<AppState> for Require<P> {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        if !principal.account.has_permission(P::NAME) {
            return Err(AppError::Forbidden(format!(
                "Forbidden - missing permission {}",
                P::NAME
            )));
        }
        Ok(Require(principal, PhantomData))
    }
}

/// The client's address: the peer, or the nearest untrusted `X-Forwarded-For` hop when the peer is a
/// trusted proxy.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientIp(client_ip(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[crate::config::IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    // Walk from the nearest hop outwards; the first address that is not one of our proxies is the client.
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip))
        .unwrap_or(peer)
}

/// `axum::extract::Query` with our error shape (400 with the reason).
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| AppError::BadRequest(format!("Invalid query string: {}", e.body_text())))
    }
}

/// `axum::Json` with our error shape: broken JSON → 400, wrong types or missing fields → 422,
/// too large → 413, wrong content type → 415.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(v)| Json(v))
            .map_err(json_rejection)
    }
}

/// A JSON body that may be left out: an empty body is `None`; any other body follows the rule of `Json`
/// (a JSON content type, then well-formed and well-typed), so no route reads JSON sent as `text/plain`.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = is_json_content_type(req.headers());
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::PayloadTooLarge
                } else {
                    AppError::BadRequest("Unreadable request body".into())
                }
            })?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !is_json {
            return Err(json_rejection(JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        axum::Json::<T>::from_bytes(&body)
            .map(|axum::Json(v)| OptionalJson(Some(v)))
            .map_err(json_rejection)
    }
}

/// `application/json` or a `+json` type, as `axum::Json` requires.
pub fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            AppError::Unprocessable(format!("Invalid request body: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(_) => AppError::BadRequest("Malformed JSON body".into()),
        JsonRejection::MissingJsonContentType(_) => {
            AppError::UnsupportedMediaType("Expected Content-Type: application/json".into())
        }
        JsonRejection::BytesRejection(e)
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
        {
            AppError::PayloadTooLarge
        }
        _ => AppError::BadRequest("Unreadable request body".into()),
    }
}

/// Paths a session may use while its role requires a second factor it has not enrolled: the enrolment routes,
/// who am I, status and logout.
fn open_before_enrolment(path: &str) -> bool {
    matches!(
        path,
        "/api/me"
            | "/api/profile"
            | "/api/status"
            | "/auth/logout"
            | "/api/logout"
            | "/auth/logout-all"
    ) || ["/api/me/phone", "/api/me/mfa"].iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_named_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_static("a=1; auth_token=xyz; b=2"),
        );
        assert_eq!(cookie(&h, "auth_token"), Some("xyz"));
        assert_eq!(cookie(&h, "auth"), None);
    }

    #[test]
    fn forwarded_for_is_read_only_behind_trusted_proxies() {
        let trusted = vec![crate::config::IpNet::parse("10.0.0.0/8").unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 10.0.0.9"),
        );
        assert_eq!(
            client_ip("10.0.0.1".parse().unwrap(), &h, &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip("5.6.7.8".parse().unwrap(), &h, &trusted),
            "5.6.7.8".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn two_different_credentials_are_refused_and_one_sent_twice_is_one() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_static(v));
            }
            presented_token(&h, "auth_token")
                .map(|p| p.map(|p| (p.token.to_string(), p.credential)))
        };
        assert!(with(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]).is_err());
        assert!(with(&[("authorization", "Bearer a"), ("cookie", "auth_token=b")]).is_err());
        assert!(with(&[("authorization", "Bearer a"), ("x-access-token", "b")]).is_err());
        assert!(with(&[("cookie", "auth_token=a; auth_token=b")]).is_err());
        assert_eq!(
            with(&[("authorization", "Bearer a"), ("x-access-token", "a")]).unwrap(),
            Some(("a".to_string(), Credential::Bearer))
        );
        assert_eq!(
            with(&[("cookie", "other=x; auth_token=c")]).unwrap(),
            Some(("c".to_string(), Credential::Cookie))
        );
    }

    proptest::proptest! {
        #[test]
        fn header_parsing_never_panics(cookie_header in "[ -~]{0,200}", auth in "[ -~]{0,200}", xff in "[ -~]{0,100}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&cookie_header) { h.insert(axum::http::header::COOKIE, v); }
            let _ = presented_token(&h, "auth_token");
            if let Ok(v) = HeaderValue::from_str(&auth) { h.insert(axum::http::header::AUTHORIZATION, v); }
            let _ = presented_token(&h, "auth_token");
            if let Ok(v) = HeaderValue::from_str(&xff) { h.insert("x-forwarded-for", v); }
            let trusted = vec![crate::config::IpNet::parse("127.0.0.1").unwrap()];
            let _ = client_ip("127.0.0.1".parse().unwrap(), &h, &trusted);
        }
    }
}
