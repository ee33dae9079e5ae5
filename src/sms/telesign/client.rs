//! The Telesign REST client: every request digest-signed, every answer mapped to a typed reply or a
//! [`TelesignError`].
//!
//! Retries: a request is sent again only when doing so cannot carry it out twice. A GET (status poll, verify
//! check) is retried after a 5xx or a failed connection; any request is retried when the connection was refused
//! before anything was sent. A POST that may have reached Telesign (timeout, reset, 5xx) is never retried: a
//! second send would be a second SMS, and a second charge.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretSlice};
use serde::de::DeserializeOwned;

use super::{
    MessageReply, PhoneIdReply, ScoreReply, TelesignError, VerifyReply,
    sign::{self, DateForm, Signed},
};
use crate::{
    config::TelesignConfig,
    sms::{MessageKind, PhoneNumber},
};

/// Attempts at most for a request that may be retried, and the pause before the second one (doubled after).
const MAX_ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// A message to send.
#[derive(Clone, Debug)]
pub struct SendSms<'a> {
    pub to: &'a PhoneNumber,
    pub message: &'a str,
    pub kind: MessageKind,
    /// Overrides the configured `TELESIGN_SENDER_ID`.
    pub sender_id: Option<&'a str>,
    /// Our own id of the message, echoed back in replies and receipts.
    pub external_id: Option<&'a str>,
    /// create, sign-in, transact, update or delete.
    pub account_lifecycle_event: Option<&'a str>,
}

/// A Telesign account's client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    customer_id: String,
    key: std::sync::Arc<SecretSlice<u8>>,
    api_url: String,
    intelligence_url: String,
    sender_id: Option<String>,
    callback_url: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("telesign::Client")
            .field("customer_id", &self.customer_id)
            .field("api_key", &"<redacted>")
            .field("api_url", &self.api_url)
            .field("intelligence_url", &self.intelligence_url)
            .finish()
    }
}

enum Body {
    None,
    Form(String),
    Json(String),
}

/// How one attempt failed.
enum Failed {
    /// Nothing reached the server (connection refused): safe to send again.
    NotSent,
    Error(TelesignError),
}

impl Client {
    pub fn new(config: &TelesignConfig) -> anyhow::Result<Client> {
        let key = sign::decode_api_key(config.api_key.expose_secret())
            .map_err(|_| anyhow::anyhow!("TELESIGN_API_KEY is not base64"))?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Client {
            http,
            customer_id: config.customer_id.clone(),
            key: std::sync::Arc::new(SecretSlice::from(key)),
            api_url: config.api_url.trim_end_matches('/').to_string(),
            intelligence_url: config.intelligence_url.trim_end_matches('/').to_string(),
            sender_id: config.sender_id.clone(),
            callback_url: config.callback_url.clone(),
        })
    }

    /// `POST /v1/messaging`. Never retried once it may have reached Telesign.
    pub async fn send_sms(&self, sms: &SendSms<'_>) -> Result<MessageReply, TelesignError> {
        let mut fields = vec![
            ("phone_number", sms.to.digits()),
            ("message", sms.message),
            ("message_type", sms.kind.as_str()),
        ];
        if let Some(sender) = sms.sender_id.or(self.sender_id.as_deref()) {
            fields.push(("sender_id", sender));
        }
        if let Some(id) = sms.external_id {
            fields.push(("external_id", id));
        }
        if let Some(url) = &self.callback_url {
            fields.push(("callback_url", url));
        }
        if let Some(event) = sms.account_lifecycle_event {
            fields.push(("account_lifecycle_event", event));
        }
        tracing::debug!(number = %sms.to.masked(), kind = sms.kind.as_str(), "telesign: sending SMS");
        self.call(
            Method::POST,
            &self.api_url,
            "/v1/messaging",
            None,
            Body::Form(form(&fields)),
        )
        .await
    }

    /// `GET /v1/messaging/{reference_id}`.
    pub async fn message_status(&self, reference_id: &str) -> Result<MessageReply, TelesignError> {
        let resource = format!("/v1/messaging/{}", path_segment(reference_id)?);
        self.call(Method::GET, &self.api_url, &resource, None, Body::None)
            .await
    }

    /// `POST /v1/phoneid/{number}` with the `contact` addon when `contact` is set.
    pub async fn phone_id(
        &self,
        number: &PhoneNumber,
        account_lifecycle_event: Option<&str>,
        contact: bool,
    ) -> Result<PhoneIdReply, TelesignError> {
        let mut body = serde_json::Map::new();
        if let Some(event) = account_lifecycle_event {
            body.insert("account_lifecycle_event".into(), event.into());
        }
        if contact {
            body.insert("addons".into(), serde_json::json!({ "contact": {} }));
        }
        let resource = format!("/v1/phoneid/{}", number.digits());
        self.call(
            Method::POST,
            &self.api_url,
            &resource,
            None,
            Body::Json(serde_json::Value::Object(body).to_string()),
        )
        .await
    }

    /// The old SMS Verify: `POST /v1/verify/sms`. Telesign generates the code when `verify_code` is `None`;
    /// `template` must then contain `$$CODE$$`.
    pub async fn verify_sms(
        &self,
        number: &PhoneNumber,
        verify_code: Option<&str>,
        template: Option<&str>,
    ) -> Result<VerifyReply, TelesignError> {
        let mut fields = vec![("phone_number", number.digits())];
        if let Some(code) = verify_code {
            fields.push(("verify_code", code));
        }
        if let Some(template) = template {
            fields.push(("template", template));
        }
        if let Some(sender) = &self.sender_id {
            fields.push(("sender_id", sender));
        }
        self.call(
            Method::POST,
            &self.api_url,
            "/v1/verify/sms",
            None,
            Body::Form(form(&fields)),
        )
        .await
    }

    /// `GET /v1/verify/{reference_id}?verify_code=...`: whether the code the user entered is right.
    pub async fn verify_check(
        &self,
        reference_id: &str,
        verify_code: &str,
    ) -> Result<VerifyReply, TelesignError> {
        let resource = format!("/v1/verify/{}", path_segment(reference_id)?);
        let query = form(&[("verify_code", verify_code)]);
        self.call(
            Method::GET,
            &self.api_url,
            &resource,
            Some(query),
            Body::None,
        )
        .await
    }

    /// The legacy Score: `POST /v1/score/{number}`.
    pub async fn score(
        &self,
        number: &PhoneNumber,
        account_lifecycle_event: &str,
    ) -> Result<ScoreReply, TelesignError> {
        let resource = format!("/v1/score/{}", number.digits());
        let body = form(&[("account_lifecycle_event", account_lifecycle_event)]);
        self.call(
            Method::POST,
            &self.api_url,
            &resource,
            None,
            Body::Form(body),
        )
        .await
    }

    /// Intelligence, Score's successor: `POST {intelligence_url}/intelligence/phone`.
    pub async fn intelligence(
        &self,
        number: &PhoneNumber,
        account_lifecycle_event: &str,
    ) -> Result<ScoreReply, TelesignError> {
        let body = form(&[
            ("phone_number", number.digits()),
            ("account_lifecycle_event", account_lifecycle_event),
        ]);
        self.call(
            Method::POST,
            &self.intelligence_url,
            "/intelligence/phone",
            None,
            Body::Form(body),
        )
        .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        base: &str,
        resource: &str,
        query: Option<String>,
        body: Body,
    ) -> Result<T, TelesignError> {
        let idempotent = method == Method::GET;
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1.. {
            let last = attempt >= MAX_ATTEMPTS;
            match self.once(&method, base, resource, &query, &body).await {
                Ok(reply) => return Ok(reply),
                Err(Failed::NotSent) if !last => {}
                Err(Failed::Error(TelesignError::Unavailable)) if idempotent && !last => {}
                Err(Failed::NotSent) => return Err(TelesignError::Unavailable),
                Err(Failed::Error(e)) => return Err(e),
            }
            tracing::debug!(%method, resource, attempt, "telesign: retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        unreachable!("the loop returns by its last attempt")
    }

    async fn once<T: DeserializeOwned>(
        &self,
        method: &Method,
        base: &str,
        resource: &str,
        query: &Option<String>,
        body: &Body,
    ) -> Result<T, Failed> {
        let (content_type, bytes) = match body {
            Body::None => ("", ""),
            Body::Form(b) => (FORM, b.as_str()),
            Body::Json(b) => (JSON, b.as_str()),
        };
        // A fresh date and nonce per attempt: Telesign refuses a nonce it has seen.
        let date = sign::rfc1123(time::OffsetDateTime::now_utc());
        let nonce = uuid::Uuid::new_v4().to_string();
        let headers = sign::digest_headers(
            &self.customer_id,
            self.key.expose_secret(),
            &Signed {
                method: method.as_str(),
                content_type,
                date: &date,
                date_form: DateForm::Date,
                nonce: &nonce,
                body: bytes.as_bytes(),
                resource,
            },
        );
        let url = match query {
            Some(q) => format!("{base}{resource}?{q}"),
            None => format!("{base}{resource}"),
        };
        let mut request = self.http.request(method.clone(), url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if !bytes.is_empty() {
            request = request.body(bytes.to_string());
        }
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                Failed::NotSent
            } else {
                Failed::Error(transport_error(&e))
            }
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = response
            .text()
            .await
            .map_err(|e| Failed::Error(transport_error(&e)))?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .map_err(|e| Failed::Error(TelesignError::Malformed(e.to_string())));
        }
        Err(Failed::Error(error_of(status, &text, retry_after)))
    }
}

fn transport_error(e: &reqwest::Error) -> TelesignError {
    if e.is_timeout() {
        TelesignError::Timeout
    } else {
        TelesignError::Unavailable
    }
}

/// Maps a refusal by HTTP status; the code is the first of `errors`, else `status.code`.
fn error_of(status: StatusCode, body: &str, retry_after: Option<u64>) -> TelesignError {
    #[derive(serde::Deserialize, Default)]
    struct ErrorBody {
        #[serde(default)]
        status: Option<super::Status>,
        #[serde(default)]
        errors: Vec<super::ApiError>,
    }
    let parsed: ErrorBody = serde_json::from_str(body).unwrap_or_default();
    let (code, description) = match (parsed.errors.first(), &parsed.status) {
        (Some(e), _) => (e.code, e.description.clone()),
        (None, Some(s)) => (s.code, s.description.clone()),
        (None, None) => (i64::from(status.as_u16()), String::new()),
    };
    match status {
        StatusCode::UNAUTHORIZED => TelesignError::Unauthorized { code },
        StatusCode::TOO_MANY_REQUESTS => TelesignError::RateLimited {
            retry_after_secs: retry_after.unwrap_or(1),
        },
        s if s.is_server_error() => TelesignError::Unavailable,
        _ => TelesignError::Rejected { code, description },
    }
}

/// A reference id goes into a path: refuse what would change the path.
fn path_segment(id: &str) -> Result<&str, TelesignError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(TelesignError::Rejected {
            code: 11011,
            description: "Invalid reference_id.".into(),
        });
    }
    Ok(id)
}

/// `application/x-www-form-urlencoded`, as Python's `urlencode` writes it (the official SDK's encoding).
pub(super) fn form(fields: &[(&str, &str)]) -> String {
    fn encode(text: &str, out: &mut String) {
        for b in text.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode(name, &mut out);
        out.push('=');
        encode(value, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_encode_like_the_python_sdk() {
        assert_eq!(form(&[("test", "\u{3ff}")]), "test=%CF%BF");
        assert_eq!(
            form(&[("message", "Your code is 12345 & more"), ("a", "~_.-+/")]),
            "message=Your+code+is+12345+%26+more&a=~_.-%2B%2F"
        );
    }

    #[test]
    fn refusals_map_to_outcomes() {
        let body = r#"{"status": {"code": 11000, "description": "Invalid value for parameter phone_number."}, "errors": [{"code": 11000, "description": "Invalid value for parameter phone_number."}]}"#;
        assert!(matches!(
            error_of(StatusCode::BAD_REQUEST, body, None),
            TelesignError::Rejected { code: 11000, .. }
        ));
        assert!(matches!(
            error_of(
                StatusCode::UNAUTHORIZED,
                r#"{"status": {"code": 10008}}"#,
                None
            ),
            TelesignError::Unauthorized { code: 10008 }
        ));
        assert!(matches!(
            error_of(StatusCode::TOO_MANY_REQUESTS, "", Some(7)),
            TelesignError::RateLimited {
                retry_after_secs: 7
            }
        ));
        assert!(matches!(
            error_of(StatusCode::SERVICE_UNAVAILABLE, "<html>", None),
            TelesignError::Unavailable
        ));
        assert!(path_segment("../x").is_err());
    }

    #[test]
    fn the_clients_debug_hides_the_key() {
        let config = TelesignConfig {
            customer_id: "FFFFFFFF-EEEE-DDDD-1234-AB1234567890".into(),
            api_key: "VGVzdCBLZXk=".to_string().into(),
            sender_id: None,
            api_url: "http://127.0.0.1:9".into(),
            verify_url: "http://127.0.0.1:9".into(),
            intelligence_url: "http://127.0.0.1:9".into(),
            timeout: Duration::from_secs(1),
            callback_url: None,
        };
        let text = format!("{:?}", Client::new(&config).unwrap());
        assert!(
            !text.contains("VGVzdCBLZXk") && text.contains("<redacted>"),
            "{text}"
        );
    }
}
