//! A `tools/call` to a Streamable HTTP upstream, sent straight by the calling task: on a plain-HTTP connection
//! it drives itself (`http1.rs`), else on the connection's pooled reqwest client. rmcp's client would pass each
//! call through its service task and its transport worker (two hand-offs each way). The supervisor's rmcp
//! connection still does everything else: `initialize` (which fixes the protocol version and the server's session), the tool
//! lists and `notifications/tools/list_changed`.
//!
//! Warden's upstream connections open with `initialize`, so the version is one from before 2026-07-28, and a
//! request carries `MCP-Protocol-Version` and, if the server handed one out, `Mcp-Session-Id` (which
//! [`SessionNoting`] reads off rmcp's own requests, also when rmcp opens a new session).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
};

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use parking_lot::Mutex;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use rmcp::{
    model::{CallToolResult, ClientJsonRpcMessage, ErrorData, JsonObject, RequestId},
    transport::streamable_http_client::{
        SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    },
};
use serde::{Deserialize, Serialize};
use sse_stream::{Sse, SseStream};

use crate::http1::Poster;

/// The session id an upstream handed out, shared by the rmcp transport that learns it and the direct calls.
type SessionSlot = Arc<Mutex<Option<Arc<str>>>>;

/// reqwest's client as rmcp's transport uses it, noting the session id each answer names. The
/// `*_with_max_sse_event_size` methods keep the trait's defaults, which call these: Warden leaves the transport's
/// SSE event limit at rmcp's default, the one reqwest's `post_message` and `get_stream` apply.
#[derive(Clone)]
pub(super) struct SessionNoting {
    client: reqwest::Client,
    session: SessionSlot,
}

impl SessionNoting {
    pub(super) fn new(client: reqwest::Client) -> SessionNoting {
        SessionNoting {
            client,
            session: SessionSlot::default(),
        }
    }

    fn note(&self, response: &StreamableHttpPostResponse) {
        if let StreamableHttpPostResponse::Json(_, Some(id))
        | StreamableHttpPostResponse::Sse(_, Some(id)) = response
        {
            *self.session.lock() = Some(Arc::from(id.as_str()));
        }
    }
}

impl StreamableHttpClient for SessionNoting {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let response = self
            .client
            .post_message(uri, message, session_id, auth_header, custom_headers)
            .await?;
        self.note(&response);
        Ok(response)
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.client
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.client
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }
}

/// Why a direct call failed, in the terms `tool.rs` reports.
pub(super) enum CallError {
    /// The server answered with a JSON-RPC error: it is there, the call was wrong.
    Refused(ErrorData),
    /// No usable answer (connection refused or cut, an HTTP error status, an unreadable body): the connection is
    /// treated as lost, as rmcp's transport errors are.
    Lost(String),
}

/// The direct caller of one upstream connection.
pub(super) struct HttpCall {
    sender: Poster,
    /// The configured headers, the media types and `MCP-Protocol-Version`.
    headers: HeaderMap,
    session: SessionSlot,
    next_id: AtomicI64,
}

/// One JSON-RPC message of the answer: a response or error (with an id), or a notification or request.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    result: Option<CallToolResult>,
    #[serde(default)]
    error: Option<ErrorData>,
}

impl HttpCall {
    /// The caller for a connection `noting` serves, at the protocol version `initialize` agreed on.
    pub(super) fn new(
        noting: &SessionNoting,
        url: &str,
        configured: &HashMap<HeaderName, HeaderValue>,
        protocol_version: &str,
    ) -> anyhow::Result<HttpCall> {
        let mut headers: HeaderMap = configured
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        headers.insert(
            HeaderName::from_static("mcp-protocol-version"),
            HeaderValue::from_str(protocol_version)?,
        );
        // Plain HTTP on connections the calling task drives itself; TLS, a URL with credentials, or a proxy set
        // in the environment on the pooled reqwest client rmcp's transport uses (which honours them).
        let sender = Poster::new(url, noting.client.clone());
        Ok(HttpCall {
            sender,
            headers,
            session: noting.session.clone(),
            // Ids apart from rmcp's own (which count up from 0) on the same session.
            next_id: AtomicI64::new(1 << 40),
        })
    }

    pub(super) async fn call_tool(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, CallError> {
        let lost = |e: &dyn std::fmt::Display| CallError::Lost(e.to_string());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::to_vec(&Call {
            jsonrpc: "2.0",
            id,
            method: "tools/call",
            params: CallParams {
                name,
                arguments: arguments.as_ref(),
            },
        })
        .map_err(|e| lost(&e))?;
        let mut headers = self.headers.clone();
        if let Some(session) = self.session.lock().clone() {
            let session = HeaderValue::from_str(&session).map_err(|e| lost(&e))?;
            headers.insert(HeaderName::from_static("mcp-session-id"), session);
        }
        let reply = self
            .sender
            .post(headers, Bytes::from(body))
            .await
            .map_err(|e| lost(&e))?;
        if !reply.status.is_success() {
            return Err(CallError::Lost(format!("HTTP status {}", reply.status)));
        }
        if is_sse(&reply.headers) {
            // Read event by event: the answer counts as soon as its event arrives.
            let mut events = SseStream::from_bytes_stream(reply.body);
            while let Some(event) = events.next().await {
                let event = event.map_err(|e| lost(&e))?;
                let Some(data) = event.data.filter(|d| !d.is_empty()) else {
                    continue;
                };
                if let Some(answer) = answer_to(id, data.as_bytes()) {
                    return answer;
                }
            }
        } else {
            let bytes = reply.bytes().await.map_err(|e| lost(&e))?;
            if let Some(answer) = answer_to(id, &bytes) {
                return answer;
            }
        }
        Err(CallError::Lost("no answer to the call".into()))
    }
}

/// Whether an answer's Content-Type is SSE.
fn is_sse(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// The body of a `tools/call`, written straight from borrowed parts.
#[derive(Serialize)]
struct Call<'a> {
    jsonrpc: &'static str,
    id: i64,
    method: &'static str,
    params: CallParams<'a>,
}

#[derive(Serialize)]
struct CallParams<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a JsonObject>,
}

/// What one JSON-RPC message of the answer means for call `id`: its outcome, or None for a message that is not
/// about it (a progress or log notification).
fn answer_to(id: i64, data: &[u8]) -> Option<Result<CallToolResult, CallError>> {
    let answer: Answer = match serde_json::from_slice(data) {
        Ok(answer) => answer,
        Err(e) => return Some(Err(CallError::Lost(format!("an unreadable answer: {e}")))),
    };
    match answer {
        Answer {
            id: Some(RequestId::Number(n)),
            method: None,
            result,
            error,
        } if n == id => Some(match (result, error) {
            (Some(result), None) => Ok(result),
            (None, Some(error)) => Err(CallError::Refused(error)),
            _ => Err(CallError::Lost(
                "an answer with neither a result nor an error".into(),
            )),
        }),
        // A request from the server mid-call (sampling, elicitation): the gateway has nobody to ask.
        Answer {
            id: Some(_),
            method: Some(method),
            ..
        } => Some(Err(CallError::Lost(format!(
            "the server asked {method} during the call, which Warden does not answer"
        )))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_answer_with_the_calls_id_ends_the_call() {
        let notification = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#;
        assert!(answer_to(7, notification).is_none());
        let other = br#"{"jsonrpc":"2.0","id":6,"result":{"content":[]}}"#;
        assert!(answer_to(7, other).is_none());
        let result =
            br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"8"}]}}"#;
        assert!(matches!(answer_to(7, result), Some(Ok(r)) if r.content.len() == 1));
        let error = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"bad"}}"#;
        assert!(
            matches!(answer_to(7, error), Some(Err(CallError::Refused(e))) if e.message == "bad")
        );
        let question = br#"{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{}}"#;
        assert!(
            matches!(answer_to(7, question), Some(Err(CallError::Lost(m))) if m.contains("sampling"))
        );
        assert!(matches!(
            answer_to(7, b"not json"),
            Some(Err(CallError::Lost(_)))
        ));
    }
}
