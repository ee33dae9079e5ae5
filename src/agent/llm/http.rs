//! The HTTP side shared by the remote providers: one POST with a deadline for the response head, and retries
//! with backoff on 429 and 5xx (honouring `Retry-After`), before any of the body has been read. A model server at
//! a plain `http://` URL (a local one: Ollama, vLLM) is called on connections the calling task drives itself
//! (`crate::http1`); any other URL through reqwest.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::Value;

use super::LlmError;
use crate::http1::{Poster, Reply};

/// What a provider posts with: driven connections for a plain `http://` URL, else reqwest, which follows no
/// redirects (an API call that is redirected is an error, not a second request).
pub fn poster(url: &str) -> Poster {
    let fallback = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client builds");
    Poster::new(url, fallback)
}

/// The next piece of a reply's body, or `None` at its end; `timeout` bounds the wait for it.
pub async fn next_chunk(
    reply: &mut Reply<'_>,
    timeout: Duration,
) -> Result<Option<Bytes>, LlmError> {
    match tokio::time::timeout(timeout, reply.body.next()).await {
        Err(_) => Err(LlmError::Timeout),
        Ok(None) => Ok(None),
        Ok(Some(piece)) => piece
            .map(Some)
            .map_err(|e| LlmError::Unreachable(e.to_string())),
    }
}

/// A reply's whole body; `timeout` bounds the wait for all of it.
pub async fn read_all(reply: Reply<'_>, timeout: Duration) -> Result<Vec<u8>, LlmError> {
    tokio::time::timeout(timeout, reply.bytes())
        .await
        .map_err(|_| LlmError::Timeout)?
        .map_err(|e| LlmError::Unreachable(e.to_string()))
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
    poster: &'c Poster,
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
            tokio::time::timeout(policy.timeout, poster.post(head.clone(), body.clone())).await;
        let (error, wait) = match result {
            Err(_) => (LlmError::Timeout, None),
            Ok(Err(e)) => (LlmError::Unreachable(e.to_string()), None),
            Ok(Ok(reply)) if reply.status.is_success() => return Ok(reply),
            Ok(Ok(reply)) => {
                let status = reply.status.as_u16();
                let retry_after = reply
                    .headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let text = read_all(reply, policy.timeout).await.unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::testing::{full, server};

    /// A redirect is answered as the error it is, on both ways out: followed, the 307 below would loop into a
    /// redirect-limit error instead.
    #[tokio::test]
    async fn a_redirect_is_an_error_not_followed() {
        let (url, _) = server("/v1", || {
            hyper::Response::builder()
                .status(307)
                .header("location", "/v1")
                .body(full("moved"))
                .unwrap()
        })
        .await;
        let with_credentials = url.replace("http://", "http://user:key@");
        for (url, driven) in [(url.as_str(), true), (with_credentials.as_str(), false)] {
            let poster = poster(url);
            assert_eq!(matches!(poster, Poster::Driven(_)), driven, "{url}");
            let policy = RetryPolicy {
                max_retries: 0,
                ..RetryPolicy::default()
            };
            match post_json(&poster, &[], b"{}".to_vec(), policy).await {
                Err(LlmError::Upstream { status: 307, .. }) => {}
                Err(e) => panic!("{url}: {e}"),
                Ok(_) => panic!("{url}: a redirect answered as success"),
            }
        }
    }
}
