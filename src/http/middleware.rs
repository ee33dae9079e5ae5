//! The edge every request passes: a request id, header-size limit, a check of the request target, cross-site
//! check on state changes, security headers and one log line (method, path without query, status, latency;
//! never headers), and the request's count and latency for `/metrics` under its route template.
//!
//! Each answered request is also queued, never awaited, as one row of the request log (`analytics`): the
//! extractors leave the caller's user id in a [`CallerSlot`] the edge put in the request, so the log knows who
//! called without verifying the credential twice.
//!
//! The target check refuses, for every route, what no route can take: a NUL anywhere in the percent-decoded
//! path or query (PostgreSQL cannot store one), and control characters or bytes that are not UTF-8 in the path.

use std::{
    borrow::Cow, collections::BTreeSet, net::IpAddr, net::SocketAddr, sync::LazyLock, time::Instant,
};

use axum::{
    body::HttpBody,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, Method, Uri, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::Instrument;

use super::{
    error::{AppError, ErrorCode},
    extract::{CallerSlot, client_ip, is_json_content_type},
};
use crate::{analytics::RequestRow, state::AppState};

pub const REQUEST_ID: &str = "x-request-id";

pub async fn edge(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    // 128 random bits from the thread-local generator: unique, and no system call per request.
    let request_id = format!("{:032x}", rand::random::<u128>());
    let method = request.method().clone();
    let route = route_template(request.uri().path());
    // Fields are only formatted when the span is enabled (LOG_LEVEL=debug and below).
    let span = tracing::info_span!("request", id = %request_id, method = %method, path = %request.uri().path());
    let logged = state
        .analytics
        .is_enabled()
        .then(|| LoggedRequest::read(&mut request, &state, state.analytics.admit_row()));

    let mut response = if header_bytes(request.headers()) > state.config.max_header_bytes {
        AppError::HeadersTooLarge.into_response()
    } else if let Some(reason) = refused_target(request.uri()) {
        AppError::BadRequest(reason.into()).into_response()
    } else if !method_is_safe(&method)
        && is_cross_site(request.headers(), &state.config.cors_origins)
    {
        AppError::Forbidden("Cross-site request refused".into()).into_response()
    } else if !body_type_allowed(request.uri().path(), request.headers()) {
        AppError::UnsupportedMediaType("Expected Content-Type: application/json".into())
            .into_response()
    } else {
        next.run(request).instrument(span.clone()).await
    };

    let secure = state.config.cookie_secure();
    let headers = response.headers_mut();
    headers.reserve(8);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    if secure {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    crate::telemetry::record_request(method_label(&method), route, status, elapsed);
    if let Some(logged) = logged {
        let keep_row = logged.keep_row;
        state.analytics.record_request(
            RequestRow {
                method: method_label(&method),
                route,
                path: logged.path,
                status,
                response_time_ms: elapsed * 1000.0,
                request_size: logged.request_size,
                response_size: response_size(&response),
                ip: logged.ip,
                user_agent: logged.user_agent,
                referer: logged.referer,
                user_id: logged.caller.get().cloned(),
                error_message: (status >= 500)
                    .then(|| response.extensions().get::<ErrorCode>().map(|c| c.0))
                    .flatten(),
                created_at: state.analytics.now_ms(),
            },
            keep_row,
        );
    }
    let latency_ms = elapsed * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, latency_ms, "request");
        } else {
            tracing::debug!(status, latency_ms, "request");
        }
    });
    response
}

/// What the request log keeps of a request, read before the request is handed on. Without `keep_row` only what
/// the rollups need is read: no text is copied for a row that will not be written.
struct LoggedRequest {
    keep_row: bool,
    path: String,
    request_size: Option<i64>,
    ip: IpAddr,
    user_agent: Option<String>,
    referer: Option<String>,
    caller: CallerSlot,
}

impl LoggedRequest {
    /// Reads the request and leaves a [`CallerSlot`] in it for the extractors to fill.
    fn read(request: &mut Request, state: &AppState, keep_row: bool) -> LoggedRequest {
        let caller = CallerSlot::default();
        if !keep_row {
            let logged = LoggedRequest {
                keep_row,
                path: String::new(),
                request_size: content_length(request.headers()),
                ip: IpAddr::from([0, 0, 0, 0]),
                user_agent: None,
                referer: None,
                caller: caller.clone(),
            };
            request.extensions_mut().insert(caller);
            return logged;
        }
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let headers = request.headers();
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let logged = LoggedRequest {
            keep_row,
            // Only the path: the query is never read here (it can carry tokens); `tidy` cuts the length.
            path: request.uri().path().to_string(),
            request_size: content_length(headers),
            ip: client_ip(peer, headers, &state.config.trusted_proxies),
            user_agent: text(header::USER_AGENT),
            referer: text(header::REFERER),
            caller: caller.clone(),
        };
        request.extensions_mut().insert(caller);
        logged
    }
}

fn content_length(headers: &HeaderMap) -> Option<i64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The body's size when known: its Content-Length, or the exact size of a body held in memory.
fn response_size(response: &Response) -> Option<i64> {
    content_length(response.headers()).or_else(|| {
        response
            .body()
            .size_hint()
            .exact()
            .and_then(|n| i64::try_from(n).ok())
    })
}

/// Every route template in the table, found as the router finds them (the same matcher, `matchit`, as axum's).
/// The edge wraps the router as a whole, so it sees a request before the routing does.
static TEMPLATES: LazyLock<matchit::Router<&'static str>> = LazyLock::new(|| {
    let mut templates = matchit::Router::new();
    // A path is listed once per method; axum's router took each path, so the same matcher takes them too.
    let paths: BTreeSet<&'static str> = super::system::ROUTES.iter().map(|r| r.1).collect();
    for path in paths {
        templates
            .insert(path, path)
            .expect("the router took this path");
    }
    templates
});

/// The template of the route that serves `path`, for a metrics label or a request-log row: borrowed, never the
/// path itself (a raw path would make unbounded series); `unmatched` for the fallback.
fn route_template(path: &str) -> &'static str {
    TEMPLATES.at(path).map(|m| *m.value).unwrap_or("unmatched")
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Routes that also take an HTML-form body: the OAuth token endpoint (RFC 6749 §4.4 sends a form).
const FORM_ROUTES: &[&str] = &["/auth/token"];

/// One rule for every route: a request body is JSON and says so, whatever the handler would make of it. So
/// no route reads JSON sent as `text/plain` (a type a cross-site form may send without a CORS preflight).
fn body_type_allowed(path: &str, headers: &HeaderMap) -> bool {
    let has_body = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || headers.contains_key(header::TRANSFER_ENCODING);
    if !has_body || is_json_content_type(headers) {
        return true;
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    is_form && FORM_ROUTES.contains(&path)
}

fn method_is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Why the request target is refused, if it is: see the module docs.
fn refused_target(uri: &Uri) -> Option<&'static str> {
    match std::str::from_utf8(&percent_decoded(uri.path())) {
        Err(_) => return Some("The request path is not valid UTF-8"),
        Ok(path) if path.contains(char::is_control) => {
            return Some("The request path contains control characters");
        }
        Ok(_) => {}
    }
    // Other control characters in a query value are data (a search for a line break); only NUL cannot be stored.
    if uri.query().is_some_and(|q| percent_decoded(q).contains(&0)) {
        return Some("The query contains a NUL character");
    }
    None
}

/// The bytes `%XX` escapes stand for; a `%` not followed by two hex digits stays as it is.
fn percent_decoded(text: &str) -> Cow<'_, [u8]> {
    let bytes = text.as_bytes();
    if !bytes.contains(&b'%') {
        return Cow::Borrowed(bytes);
    }
    let hex = |i: usize| bytes.get(i).and_then(|b| char::from(*b).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'%'));
                i += 3;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum()
}

/// A state change sent by a browser from another site: `Sec-Fetch-Site: cross-site`, or an `Origin` that is
/// neither this host nor a configured CORS origin.
fn is_cross_site(headers: &HeaderMap, cors_origins: &[String]) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let allowed = |o: &str| cors_origins.iter().any(|c| c == o);
    if let Some(o) = origin
        && allowed(o)
    {
        return false;
    }
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site") {
        return true;
    }
    match origin {
        None => false,
        Some("null") => true,
        Some(o) => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let origin_host = o.split_once("://").map(|(_, rest)| rest).unwrap_or(o);
            origin_host != host
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn targets_with_nul_or_path_control_characters_are_refused() {
        let refused = |t: &str| refused_target(&t.parse().unwrap()).is_some();
        for bad in [
            "/a%00b",
            "/api?x=%00",
            "/api?%00=1",
            "/a%0a",
            "/a%7F",
            "/a%C2%85",
            "/a%FF",
        ] {
            assert!(refused(bad), "{bad}");
        }
        for good in [
            "/",
            "/a%20b/%C3%A9t%C3%A9",
            "/api?q=%0A%E2%80%AE&r=%",
            "/a%2",
            "/a%zz",
            "/100%",
        ] {
            assert!(!refused(good), "{good}");
        }
    }

    #[test]
    fn every_path_of_a_route_is_labelled_with_its_template_and_others_unmatched() {
        for (_, template, ..) in crate::http::system::ROUTES {
            let filled = template
                .split('/')
                .map(|s| if s.starts_with('{') { "x1" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            assert_eq!(route_template(&filled), *template, "{filled}");
        }
        assert_eq!(route_template("/api/users/x1"), "/api/users/{id}");
        for unknown in ["/nope", "/api/status/x", "/api/users/x1/y/z", ""] {
            assert_eq!(route_template(unknown), "unmatched", "{unknown}");
        }
    }

    #[test]
    fn same_origin_and_originless_requests_pass() {
        assert!(!is_cross_site(
            &headers(&[("host", "a.test"), ("origin", "https://a.test")]),
            &[]
        ));
        assert!(!is_cross_site(&headers(&[("host", "a.test")]), &[]));
    }

    #[test]
    fn foreign_origins_and_cross_site_fetches_are_refused() {
        assert!(is_cross_site(
            &headers(&[("host", "a.test"), ("origin", "https://evil.test")]),
            &[]
        ));
        assert!(is_cross_site(
            &headers(&[("host", "a.test"), ("sec-fetch-site", "cross-site")]),
            &[]
        ));
        assert!(is_cross_site(
            &headers(&[("host", "a.test"), ("origin", "null")]),
            &[]
        ));
    }

    #[test]
    fn a_body_must_be_json_except_a_form_on_the_token_route() {
        let body = |t: &'static str| headers(&[("content-length", "2"), ("content-type", t)]);
        assert!(body_type_allowed(
            "/chat/session/new",
            &body("application/json")
        ));
        assert!(body_type_allowed(
            "/x",
            &body("application/json; charset=utf-8")
        ));
        assert!(!body_type_allowed("/chat/session/new", &body("text/plain")));
        assert!(!body_type_allowed(
            "/auth/logout",
            &headers(&[("content-length", "2")])
        ));
        assert!(!body_type_allowed(
            "/auth/login",
            &body("application/x-www-form-urlencoded")
        ));
        assert!(body_type_allowed(
            "/auth/token",
            &body("application/x-www-form-urlencoded")
        ));
        assert!(body_type_allowed(
            "/auth/logout",
            &headers(&[("content-type", "text/plain")])
        ));
    }

    #[test]
    fn configured_cors_origins_pass() {
        let cors = vec!["https://app.test".to_string()];
        assert!(!is_cross_site(
            &headers(&[
                ("host", "a.test"),
                ("origin", "https://app.test"),
                ("sec-fetch-site", "cross-site")
            ]),
            &cors
        ));
    }
}
