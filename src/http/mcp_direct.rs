//! The direct path of `/mcp` for its commonest request: a `tools/call` from a client on a protocol version with an
//! `initialize` handshake (before 2026-07-28). rmcp's stateless service spends, per request, a spawned service
//! task, its channels and a second pass over the message; this path answers the same request with the same
//! handler (`Gateway::answer_legacy_call`) and the same JSON, and nothing else.
//!
//! rmcp stays the one judge of the protocol's rules: a request goes to it unchanged unless every check below holds,
//! and each check is at least as strict as rmcp's own (Host, Origin, Accept, Content-Type, the version header, the
//! SEP-2243 `Mcp-*` headers, the body's exact shape). What rmcp would refuse, it refuses.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rmcp::model::{
    CallToolRequestMethod, JsonObject, JsonRpcVersion2_0, ProtocolVersion, RequestId,
};
use serde::Deserialize;

use crate::{auth::Principal, mcp::Gateway, tools::Caller};

/// Bodies larger than this go to rmcp (a tools/call is a few hundred bytes; rmcp's own limit is 4 MiB).
const MAX_BODY: usize = 64 * 1024;

/// What the direct path needs: the gateway's handler and the hosts `/mcp` answers to (rmcp's `allowed_hosts`).
#[derive(Clone)]
pub(super) struct Direct {
    pub(super) gateway: Gateway,
    /// Lower-case host names, without port or brackets; any port is allowed, as in rmcp for a portless entry.
    /// Shared: the middleware's state is cloned for every request.
    pub(super) hosts: Arc<[String]>,
}

/// A `tools/call` request with exactly these fields: nothing (`_meta`, `inputResponses`, `requestState`) that
/// rmcp would act on.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyCall {
    #[allow(dead_code)]
    jsonrpc: JsonRpcVersion2_0,
    id: RequestId,
    #[allow(dead_code)]
    method: CallToolRequestMethod,
    params: LegacyCallParams,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyCallParams {
    name: String,
    #[serde(default)]
    arguments: Option<JsonObject>,
}

/// Between the bearer check (which put the `Principal` in the request) and rmcp's service (`next`).
pub(super) async fn answer_tools_call(direct: &Direct, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !direct.may_answer(request.headers()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => bytes,
        // The Content-Length was checked, so this is a body cut short or longer than announced.
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "Bad Request: the body could not be read",
            )
                .into_response();
        }
    };
    let (Ok(call), Some(principal)) = (
        serde_json::from_slice::<LegacyCall>(&bytes),
        parts.extensions.get::<Principal>(),
    ) else {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    let caller = Caller::from(principal);
    let answer = direct
        .gateway
        .answer_legacy_call(&caller, call.id, &call.params.name, call.params.arguments)
        .await;
    match answer {
        Ok(json) => {
            crate::telemetry::record_mcp_direct_call();
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                json,
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "serializing an MCP answer failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

impl Direct {
    /// Whether the headers leave nothing for rmcp to judge.
    fn may_answer(&self, headers: &HeaderMap) -> bool {
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        // A known, small body: it is read whole before deciding.
        let small_body = text(header::CONTENT_LENGTH)
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n <= MAX_BODY);
        let json_body = text(header::CONTENT_TYPE).is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
        });
        // Both media types, without parameters (a q-value is rmcp's to weigh).
        let accept = text(header::ACCEPT).unwrap_or("");
        let accepts = |wanted: &str| {
            accept
                .split(',')
                .any(|entry| entry.trim().eq_ignore_ascii_case(wanted))
        };
        let accept_plain = !accept.contains(';');
        let host_allowed = text(header::HOST)
            .and_then(|v| v.parse::<axum::http::uri::Authority>().ok())
            .is_some_and(|authority| {
                let host = authority
                    .host()
                    .trim_matches(['[', ']'])
                    .to_ascii_lowercase();
                self.hosts.contains(&host)
            });
        // A browser's request (Origin) and every SEP-2243 or session header are rmcp's; the version header may only
        // name a known version that has an `initialize` handshake.
        let mut mcp_headers_legacy = true;
        for (name, value) in headers {
            let name = name.as_str();
            if name == "origin" {
                return false;
            }
            if name == "mcp-protocol-version" {
                mcp_headers_legacy &= value.to_str().is_ok_and(|v| {
                    ProtocolVersion::KNOWN_VERSIONS
                        .iter()
                        .any(|known| known.as_str() == v && known.has_initialize())
                });
            } else if name.starts_with("mcp-") {
                return false;
            }
        }
        small_body
            && json_body
            && accept_plain
            && accepts("application/json")
            && accepts("text/event-stream")
            && host_allowed
            && mcp_headers_legacy
    }
}
