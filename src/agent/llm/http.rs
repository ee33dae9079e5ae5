//! The HTTP side shared by the remote providers: one POST with a deadline for the response head, and retries
//! with backoff on 429 and 5xx (honouring `Retry-After`), before any of the body has been read.

use std::time::Duration;

use serde_json::Value;

use super::LlmError;

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

/// POSTs `body`, serialized JSON, as `application/json`; returns the first 2xx response, or the error of the
/// last attempt.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    policy: RetryPolicy,
) -> Result<reqwest::Response, LlmError> {
    let body = bytes::Bytes::from(body);
    let mut attempt = 0;
    loop {
        let mut request = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let result = tokio::time::timeout(policy.timeout, request.send()).await;
        let (error, wait) = match result {
            Err(_) => (LlmError::Timeout, None),
            Ok(Err(e)) if e.is_timeout() => (LlmError::Timeout, None),
            Ok(Err(e)) => (LlmError::Unreachable(without_url(&e)), None),
            Ok(Ok(response)) if response.status().is_success() => return Ok(response),
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let text = response.text().await.unwrap_or_default();
                let message: String = error_message(&text).chars().take(300).collect();
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
