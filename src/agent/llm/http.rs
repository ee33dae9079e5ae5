//! The HTTP side shared by the remote providers: one POST with a deadline for the response head, and retries
//! with backoff on 429 and 5xx (honouring `Retry-After`), before any of the body has been read. A model server at
//! a plain `http://` URL (a local one: Ollama, vLLM) is called on connections the calling task drives itself
//! (`crate::http1`); any other URL through reqwest.

use std::{io, time::Duration};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use reqwest::{
    StatusCode,
    header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER},
};
use serde_json::Value;

use super::LlmError;
use crate::http1::Http1Pool;

/// Where a provider's requests go.
pub enum Client {
    Plain(Http1Pool),
    /// Redirects are not followed: an API call that is redirected is an error, not a second request.
    Reqwest(reqwest::Client, String),
}

impl Client {
    pub fn new(url: &str) -> Client {
        match Http1Pool::for_url(url) {
            Some(pool) => Client::Plain(pool),
            None => Client::Reqwest(
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .expect("HTTP client builds"),
                url.to_string(),
            ),
        }
    }

    /// Sends one attempt: the answer's head, its body still to be read.
    async fn send(&self, headers: HeaderMap, body: Bytes) -> Result<Reply<'_>, LlmError> {
        match self {
            Client::Plain(pool) => {
                let answer = pool
                    .post(headers, body)
                    .await
                    .map_err(|e| LlmError::Unreachable(e.to_string()))?;
                Ok(Reply {
                    status: answer.status,
                    headers: answer.headers,
                    body: answer.body.boxed(),
                })
            }
            Client::Reqwest(client, url) => {
                let response = client
                    .post(url)
                    .headers(headers)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| {
                        if e.is_timeout() {
                            LlmError::Timeout
                        } else {
                            LlmError::Unreachable(without_url(&e))
                        }
                    })?;
                Ok(Reply {
                    status: response.status(),
                    headers: response.headers().clone(),
                    body: response
                        .bytes_stream()
                        .map_err(|e| io::Error::other(e.without_url()))
                        .boxed(),
                })
            }
        }
    }
}

/// A model server's answer: its status, its headers and its body as it arrives.
pub struct Reply<'a> {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: BoxStream<'a, io::Result<Bytes>>,
}

impl Reply<'_> {
    /// The next piece of the body, or `None` at its end; `timeout` bounds the wait for it.
    pub async fn chunk(&mut self, timeout: Duration) -> Result<Option<Bytes>, LlmError> {
        match tokio::time::timeout(timeout, self.body.next()).await {
            Err(_) => Err(LlmError::Timeout),
            Ok(None) => Ok(None),
            Ok(Some(piece)) => piece
                .map(Some)
                .map_err(|e| LlmError::Unreachable(e.to_string())),
        }
    }

    /// The whole body; `timeout` bounds the wait for all of it.
    pub async fn bytes(mut self, timeout: Duration) -> Result<Vec<u8>, LlmError> {
        tokio::time::timeout(timeout, async {
            let mut all = Vec::new();
            while let Some(piece) = self.body.next().await {
                all.extend_from_slice(&piece.map_err(|e| LlmError::Unreachable(e.to_string()))?);
            }
            Ok(all)
        })
        .await
        .map_err(|_| LlmError::Timeout)?
    }
}

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Deadline for each attempt's response head (and, for non-streaming calls, its body).
    pub timeout: Duration,
    /// Further attempts after the first.
    pub max_retries: u32,
    /// The longest wait between attempts, whatever `Retry-After` says.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            timeout: Duration::from_secs(60),
            max_retries: 2,
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// POSTs `body`, serialized JSON, as `application/json` with `headers`; returns the first 2xx answer, or the error
/// of the last attempt.
pub async fn post_json<'c>(
    client: &'c Client,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
    policy: RetryPolicy,
) -> Result<Reply<'c>, LlmError> {
    let mut head = HeaderMap::new();
    head.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in headers {
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| LlmError::Unreachable(format!("the {name} header is not valid")))?;
        // Keys travel in these headers: never printed by a Debug of the request.
        value.set_sensitive(true);
        head.insert(HeaderName::from_static(name), value);
    }
    let body = Bytes::from(body);
    let mut attempt = 0;
    loop {
        let result =
            tokio::time::timeout(policy.timeout, client.send(head.clone(), body.clone())).await;
        let (error, wait) = match result {
            Err(_) => (LlmError::Timeout, None),
            Ok(Err(e)) => (e, None),
            Ok(Ok(reply)) if reply.status.is_success() => return Ok(reply),
            Ok(Ok(reply)) => {
                let status = reply.status.as_u16();
                let retry_after = reply
                    .headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let text = reply.bytes(policy.timeout).await.unwrap_or_default();
                let message: String = error_message(&String::from_utf8_lossy(&text))
                    .chars()
                    .take(300)
                    .collect();
                let error = if status == 429 {
                    LlmError::RateLimited {
                        retry_after_secs: retry_after,
                    }
                } else {
                    LlmError::Upstream { status, message }
                };
                if status != 429 && status < 500 {
                    return Err(error);
                }
                (error, retry_after.map(Duration::from_secs))
            }
        };
        if attempt >= policy.max_retries || matches!(error, LlmError::Timeout) {
            return Err(error);
        }
        let backoff = wait
            .unwrap_or(Duration::from_millis(250 * (1 << attempt)))
            .min(policy.max_backoff);
        tracing::debug!(attempt, wait_ms = backoff.as_millis() as u64, %error, "retrying the language model");
        tokio::time::sleep(backoff).await;
        attempt += 1;
    }
}

/// The message inside an error body (`{"error": {"message": …}}` or `{"error": "…"}`), else the text itself.
fn error_message(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => v["error"]["message"]
            .as_str()
            .or_else(|| v["error"].as_str())
            .or_else(|| v["message"].as_str())
            .unwrap_or(text)
            .to_string(),
        Err(_) => text.to_string(),
    }
}

/// reqwest errors name the URL; a configured URL may carry a key in its query, so it is left out.
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url (") {
        e.truncate(i);
    }
    e
}
