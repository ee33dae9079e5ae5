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
    app::AppState,
    auth::{Credential, Principal},
};

pub const CSRF_HEADER: &str = "x-csrf-token";

/// The token a request presents, and how.
pub fn presented_token<'a>(
    headers: &'a HeaderMap,
    cookie_name: &str,
) -> Result<Option<(&'a str, Credential)>, AppError> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| AppError::Unauthorized)?;
        let (scheme, token) = value.split_once(' ').ok_or(AppError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AppError::Unauthorized);
        }
        return Ok(Some((token.trim(), Credential::Bearer)));
    }
    if let Some(value) = headers.get("x-access-token") {
        return Ok(Some((
            value.to_str().map_err(|_| AppError::Unauthorized)?,
            Credential::Bearer,
        )));
    }
    Ok(cookie(headers, cookie_name).map(|t| (t, Credential::Cookie)))
}

/// The value of one cookie.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Option<Principal>, AppError> {
    let Some((token, credential)) =
        presented_token(&parts.headers, state.config.session_cookie_name())?
    else {
        return Ok(None);
    };
    let principal = state.auth.authenticate(token, credential).await?;
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
    const NAME: &'static str = "users:manage";
}

pub struct McpManage;
impl Permission for McpManage {
    const NAME: &'static str = "mcp:manage";
}

pub struct ChatUse;
impl Permission for ChatUse {
    const NAME: &'static str = "chat:use";
}

/// Seeing the tool catalog needs the chat permission: tools are what the agent uses.
pub struct ToolsList;
impl Permission for ToolsList {
    const NAME: &'static str = "chat:use";
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
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(AppError::Unprocessable(format!(
                "Invalid request body: {}",
                e.body_text()
            ))),
            Err(JsonRejection::JsonSyntaxError(_)) => {
                Err(AppError::BadRequest("Malformed JSON body".into()))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AppError::UnsupportedMediaType(
                "Expected Content-Type: application/json".into(),
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(AppError::PayloadTooLarge)
            }
            Err(_) => Err(AppError::BadRequest("Unreadable request body".into())),
        }
    }
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
