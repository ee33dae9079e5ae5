//! A local Telesign: the REST endpoints Warden uses, verifying every request exactly as Telesign does, for
//! development (`warden telesign-mock`) and tests (`start`). It sends nothing anywhere except the delivery
//! receipts it is asked for (`callback_url`).
//!
//! Endpoints (one address serves both the REST host and the Intelligence host):
//! `POST /v1/messaging`, `GET /v1/messaging/{reference_id}`, `POST /v1/phoneid/{number}`, `POST /v1/verify/sms`,
//! `GET /v1/verify/{reference_id}?verify_code=`, `PUT /v1/verify/completion/{reference_id}`,
//! `POST /v1/score/{number}`, `POST /intelligence/phone`.
//!
//! Authentication: digest (both date forms, ±15 min, nonces not reusable) or Basic, through
//! [`Verifier`](super::sign::Verifier); a refusal answers 401 with Telesign's code (the old Verify paths with
//! its `-300xx` codes).
//!
//! Deterministic data, by the number's last digits:
//! - ending in `0000`: invalid (400, `status.code` 11000) on every endpoint that takes a number;
//! - Score and Intelligence: ending in `9999` → score 900, `high`, `block`; ending in `5555` → 500, `medium`,
//!   `flag`; anything else → 150, `low`, `allow`.
//!
//! Everything else is plausible and fixed: PhoneID says mobile, carrier "Mock Mobile", a US or UK location by
//! country code, not blocklisted. Reference ids are 32 random upper-case hex digits. A send answers status 290;
//! after `callback_delay` the message is "Delivered to handset" (200) and, when the send carried `callback_url`,
//! a receipt signed like Telesign's is POSTed there. Old Verify generates a 5-digit code when none is given.
//!
//! Control (no authentication: the mock listens on loopback for its owner): `POST /_mock/fail`
//! `{"failure": "unauthorized"|"rate_limited"|"server_error"|"slow", "count": N, "delay_ms": ms}` makes the next
//! N requests fail that way (`slow` answers normally after `delay_ms`); `GET /_mock/requests` lists what was
//! received. [`MockHandle::fail_next`] and [`MockHandle::received`] do the same from Rust.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use hyper::{
    Request, Response, StatusCode,
    body::{Body as _, Incoming},
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::sign::{self, Received, Refused, Verifier};

/// Largest request body read.
const MAX_BODY: usize = 1 << 20;
/// Requests remembered for `received()`; the oldest go first.
const MAX_RECORDED: usize = 10_000;
/// Old Verify checks allowed per code before MAX_ATTEMPTS_EXCEEDED.
const VERIFY_ATTEMPTS: u32 = 3;

/// How to start the mock.
#[derive(Clone)]
pub struct MockSettings {
    /// `127.0.0.1:0` picks a free port.
    pub bind: String,
    pub customer_id: String,
    pub api_key: String,
    /// Between a send and its delivery (and receipt).
    pub callback_delay: Duration,
}

impl std::fmt::Debug for MockSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockSettings")
            .field("bind", &self.bind)
            .field("customer_id", &self.customer_id)
            .field("api_key", &"<redacted>")
            .field("callback_delay", &self.callback_delay)
            .finish()
    }
}

impl MockSettings {
    /// On a free loopback port, receipts 50 ms after a send.
    pub fn new(customer_id: &str, api_key: &str) -> MockSettings {
        MockSettings {
            bind: "127.0.0.1:0".into(),
            customer_id: customer_id.into(),
            api_key: api_key.into(),
            callback_delay: Duration::from_millis(50),
        }
    }
}

/// A failure to answer on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// 401, code 10022 (invalid API key), whatever the signature.
    Unauthorized,
    /// 429, code 10019, `Retry-After: 2`.
    RateLimited,
    /// 500, code 10000.
    ServerError,
    /// Answers normally, after this long (the request counts as received at once).
    Slow(Duration),
}

impl Failure {
    fn name(self) -> &'static str {
        match self {
            Failure::Unauthorized => "unauthorized",
            Failure::RateLimited => "rate_limited",
            Failure::ServerError => "server_error",
            Failure::Slow(_) => "slow",
        }
    }
}

/// One request as the mock saw it.
#[derive(Clone, Debug, Serialize)]
pub struct ReceivedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The form fields or the JSON body (message text included: this is a test double).
    pub fields: Value,
    /// Whether the request's authentication was accepted.
    pub verified: bool,
    /// Telesign's code when it was refused.
    pub refused_code: Option<i64>,
    /// The failure injected into its answer, if any.
    pub failure: Option<&'static str>,
    /// The reference id the mock answered with.
    pub reference_id: Option<String>,
    /// The old Verify code the mock sent (given or generated).
    pub verify_code: Option<String>,
    /// The HTTP status the delivery receipt got from `callback_url` (0: it could not be delivered).
    pub callback_status: Option<u16>,
}

struct Message {
    external_id: Option<String>,
    code: i64,
    description: &'static str,
    updated_on: String,
}

struct Verification {
    code: String,
    attempts: u32,
}

#[derive(Default)]
struct State {
    received: VecDeque<(u64, ReceivedRequest)>,
    next_id: u64,
    failures: VecDeque<Failure>,
    messages: HashMap<String, Message>,
    verifications: HashMap<String, Verification>,
}

struct Mock {
    settings: MockSettings,
    key: Vec<u8>,
    verifier: Verifier,
    state: Mutex<State>,
    http: reqwest::Client,
}

/// The running mock; dropping it stops the server.
pub struct MockHandle {
    addr: SocketAddr,
    mock: Arc<Mock>,
    stop: CancellationToken,
}

impl MockHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the value for `TELESIGN_API_URL` and `TELESIGN_INTELLIGENCE_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `count` requests fail with `failure`.
    pub fn fail_next(&self, failure: Failure, count: usize) {
        let mut state = self.mock.state.lock();
        state.failures.extend(std::iter::repeat_n(failure, count));
    }

    /// Every request received, oldest first.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.mock.received()
    }

    /// Stops accepting connections.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Binds `settings.bind` and serves until the handle is stopped or dropped.
pub async fn start(settings: MockSettings) -> anyhow::Result<MockHandle> {
    let verifier = Verifier::new(&settings.customer_id, &settings.api_key)
        .context("the Telesign API key is not base64")?;
    let key = sign::decode_api_key(&settings.api_key).context("the API key is not base64")?;
    let listener = tokio::net::TcpListener::bind(&settings.bind)
        .await
        .with_context(|| format!("binding {}", settings.bind))?;
    let addr = listener.local_addr()?;
    let mock = Arc::new(Mock {
        settings,
        key,
        verifier,
        state: Mutex::new(State::default()),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
    });
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, mock.clone(), stop.clone()));
    Ok(MockHandle { addr, mock, stop })
}

async fn serve(listener: tokio::net::TcpListener, mock: Arc<Mock>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let mock = mock.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let mock = mock.clone();
                async move { Ok::<_, Infallible>(mock.handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = conn => {}
            }
        });
    }
}

async fn read_body(mut body: Incoming) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame.ok()?.into_data() {
            out.extend_from_slice(&data);
            if out.len() > MAX_BODY {
                return None;
            }
        }
    }
    Some(out)
}

fn reply(status: u16, body: Value) -> Response<String> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(body.to_string())
        .unwrap_or_default()
}

fn error_reply(status: u16, code: i64, description: &str) -> Response<String> {
    reply(
        status,
        json!({
            "status": {"code": code, "description": description, "updated_on": now_text()},
            "errors": [{"code": code, "description": description}],
        }),
    )
}

fn now_text() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn reference_id() -> String {
    format!("{:032X}", rand::random::<u128>())
}

/// Percent-decoding of `application/x-www-form-urlencoded`, into a JSON object (the last value of a repeated
/// name wins).
fn parse_form(body: &[u8]) -> Map<String, Value> {
    fn decode(part: &[u8]) -> String {
        let mut out = Vec::with_capacity(part.len());
        let mut i = 0;
        while i < part.len() {
            match part[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < part.len() => {
                    match u8::from_str_radix(
                        std::str::from_utf8(&part[i + 1..i + 3]).unwrap_or("zz"),
                        16,
                    ) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    let mut map = Map::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let mut it = pair.splitn(2, |&b| b == b'=');
        let name = decode(it.next().unwrap_or_default());
        let value = decode(it.next().unwrap_or_default());
        map.insert(name, Value::String(value));
    }
    map
}

fn text<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    fields
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Refuses what Telesign would refuse as a number; `None` when it is acceptable.
fn number_problem(number: Option<&str>) -> Option<Response<String>> {
    let Some(number) = number else {
        return Some(error_reply(
            400,
            12000,
            "Required parameter phone_number is missing.",
        ));
    };
    let digits =
        number.len() >= 8 && number.len() <= 15 && number.bytes().all(|b| b.is_ascii_digit());
    if !digits || number.starts_with('0') || number.ends_with("0000") {
        return Some(error_reply(
            400,
            11000,
            "Invalid value for parameter phone_number.",
        ));
    }
    None
}

fn numbering(number: &str) -> Value {
    let (cc, national) = match number.strip_prefix('1') {
        Some(national) => ("1", national),
        None => number.split_at(2.min(number.len())),
    };
    let cleansed = json!({
        "cleansed_code": 100, "country_code": cc, "phone_number": national,
        "min_length": 10, "max_length": 10,
    });
    json!({
        "original": {"complete_phone_number": number, "country_code": cc, "phone_number": national},
        "cleansing": {"call": cleansed, "sms": cleansed},
    })
}

fn location(number: &str) -> Value {
    if number.starts_with("44") {
        json!({
            "city": "London", "county": null, "state": null, "zip": null, "metro_code": null,
            "country": {"iso2": "GB", "iso3": "GBR", "name": "United Kingdom"},
            "time_zone": {"name": "Europe/London", "utc_offset_min": "0", "utc_offset_max": "0"},
            "coordinates": {"latitude": 51.5072, "longitude": -0.1276},
        })
    } else {
        json!({
            "city": "Los Angeles", "county": "Los Angeles", "state": "CA", "zip": "90001", "metro_code": "4480",
            "country": {"iso2": "US", "iso3": "USA", "name": "United States"},
            "time_zone": {"name": "America/Los_Angeles", "utc_offset_min": "-8", "utc_offset_max": "-8"},
            "coordinates": {"latitude": 34.0522, "longitude": -118.2437},
        })
    }
}

/// The deterministic risk of a number (see the module docs).
fn risk(number: &str) -> (i64, &'static str, &'static str, i64) {
    if number.ends_with("9999") {
        (900, "high", "block", 10030)
    } else if number.ends_with("5555") {
        (500, "medium", "flag", 10020)
    } else {
        (150, "low", "allow", 10010)
    }
}

/// Old Verify reports authentication failures with its own codes.
fn old_verify_code(refused: Refused) -> i64 {
    match refused {
        Refused::InvalidSignature | Refused::AuthMethod => -30006,
        Refused::MissingAuthorization | Refused::MalformedAuthorization => -30004,
        Refused::MissingDate | Refused::DateFormat => -30007,
        Refused::DateOutOfRange => -30010,
        Refused::NonceReused | Refused::NonceLength => -30012,
        Refused::InvalidCustomerId => -30015,
        Refused::TooManyRequests => -40007,
    }
}

#[derive(Deserialize)]
struct FailRequest {
    failure: String,
    #[serde(default = "one")]
    count: usize,
    #[serde(default)]
    delay_ms: u64,
}

fn one() -> usize {
    1
}

impl Mock {
    fn received(&self) -> Vec<ReceivedRequest> {
        self.state
            .lock()
            .received
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    fn record(&self, request: ReceivedRequest) -> u64 {
        let mut state = self.state.lock();
        let id = state.next_id;
        state.next_id += 1;
        if state.received.len() >= MAX_RECORDED {
            state.received.pop_front();
        }
        state.received.push_back((id, request));
        id
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut ReceivedRequest)) {
        let mut state = self.state.lock();
        if let Some((_, r)) = state.received.iter_mut().find(|(i, _)| *i == id) {
            change(r);
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<String> {
        let (parts, body) = req.into_parts();
        let Some(body) = read_body(body).await else {
            return error_reply(413, 10000, "Request body too large.");
        };
        let method = parts.method.as_str().to_string();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().map(str::to_string);
        if path.starts_with("/_mock/") {
            return self.control(&method, &path, &body);
        }
        let headers: Vec<(&str, &str)> = parts
            .headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
            .collect();
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let fields = if content_type.starts_with("application/json") {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            }
        } else {
            parse_form(&body)
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let verified = self.verifier.verify(
            &Received {
                method: &method,
                resource: &path,
                headers: &headers,
                body: &body,
            },
            now,
        );
        let failure = match verified {
            Ok(_) => self.state.lock().failures.pop_front(),
            Err(_) => None,
        };
        let id = self.record(ReceivedRequest {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            fields: Value::Object(fields.clone()),
            verified: verified.is_ok(),
            refused_code: verified.err().map(Refused::code),
            failure: failure.map(Failure::name),
            reference_id: None,
            verify_code: None,
            callback_status: None,
        });
        if let Err(refused) = verified {
            if path.starts_with("/v1/verify") {
                let code = old_verify_code(refused);
                return reply(
                    401,
                    json!({
                        "reference_id": "",
                        "status": {"code": 501, "description": "Not authorized", "updated_on": now_text()},
                        "errors": [{"code": code, "description": refused.to_string()}],
                    }),
                );
            }
            return error_reply(401, refused.code(), &refused.to_string());
        }
        match failure {
            Some(Failure::Unauthorized) => return error_reply(401, 10022, "Invalid API key."),
            Some(Failure::RateLimited) => {
                let mut r = error_reply(429, 10019, "Rate limit exceeded.");
                r.headers_mut()
                    .insert("retry-after", hyper::header::HeaderValue::from_static("2"));
                return r;
            }
            Some(Failure::ServerError) => {
                return error_reply(500, 10000, "Service temporarily unavailable.");
            }
            Some(Failure::Slow(delay)) => tokio::time::sleep(delay).await,
            None => {}
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method.as_str(), segments.as_slice()) {
            ("POST", ["v1", "messaging"]) => self.send(id, &fields),
            ("GET", ["v1", "messaging", reference]) => self.status(reference),
            ("POST", ["v1", "phoneid", number]) => phone_id(number, &fields),
            ("POST", ["v1", "verify", "sms"]) => self.verify_sms(id, &fields),
            ("GET", ["v1", "verify", reference]) => {
                let query = parse_form(query.as_deref().unwrap_or("").as_bytes());
                self.verify_check(reference, text(&query, "verify_code").unwrap_or(""))
            }
            ("PUT", ["v1", "verify", "completion", reference]) => {
                if self.state.lock().verifications.contains_key(*reference) {
                    reply(
                        200,
                        json!({"reference_id": reference, "status": {"code": 1900, "description": "Verify completed successfully", "updated_on": now_text()}, "errors": []}),
                    )
                } else {
                    error_reply(404, 10017, "Reference ID not found.")
                }
            }
            ("POST", ["v1", "score", number]) => score(number, &fields),
            ("POST", ["intelligence", "phone"]) => {
                match number_problem(text(&fields, "phone_number")) {
                    Some(refused) => refused,
                    None => score(text(&fields, "phone_number").unwrap_or(""), &fields),
                }
            }
            _ => error_reply(404, 10017, "Resource not found."),
        }
    }

    fn control(self: Arc<Self>, method: &str, path: &str, body: &[u8]) -> Response<String> {
        match (method, path) {
            ("GET", "/_mock/requests") => reply(200, json!(self.received())),
            ("POST", "/_mock/fail") => {
                let Ok(request) = serde_json::from_slice::<FailRequest>(body) else {
                    return reply(
                        400,
                        json!({"error": "expected {\"failure\", \"count\", \"delay_ms\"}"}),
                    );
                };
                let failure = match request.failure.as_str() {
                    "unauthorized" => Failure::Unauthorized,
                    "rate_limited" => Failure::RateLimited,
                    "server_error" => Failure::ServerError,
                    "slow" => Failure::Slow(Duration::from_millis(request.delay_ms)),
                    other => {
                        return reply(400, json!({"error": format!("unknown failure {other:?}")}));
                    }
                };
                let mut state = self.state.lock();
                state
                    .failures
                    .extend(std::iter::repeat_n(failure, request.count));
                reply(200, json!({"queued": state.failures.len()}))
            }
            _ => reply(404, json!({"error": "unknown control path"})),
        }
    }

    fn send(self: Arc<Self>, id: u64, fields: &Map<String, Value>) -> Response<String> {
        if let Some(refused) = number_problem(text(fields, "phone_number")) {
            return refused;
        }
        let Some(message) = text(fields, "message") else {
            return error_reply(400, 12009, "Required parameter message is missing.");
        };
        if message.chars().count() > 1600 {
            return error_reply(400, 11009, "Invalid value for parameter message.");
        }
        match text(fields, "message_type") {
            None => return error_reply(400, 12017, "Required parameter message_type is missing."),
            Some("OTP" | "ARN" | "MKT") => {}
            Some(_) => return error_reply(400, 11017, "Invalid value for parameter message_type."),
        }
        if text(fields, "sender_id").is_some_and(|s| s.chars().count() > 20) {
            return error_reply(400, 11013, "Invalid value for parameter sender_id.");
        }
        let callback_url = text(fields, "callback_url").map(str::to_string);
        if callback_url
            .as_deref()
            .is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return error_reply(400, 11004, "Invalid value for parameter callback_url.");
        }
        let reference = reference_id();
        let external_id = text(fields, "external_id").map(str::to_string);
        let updated_on = now_text();
        self.state.lock().messages.insert(
            reference.clone(),
            Message {
                external_id: external_id.clone(),
                code: 290,
                description: "Message in progress",
                updated_on: updated_on.clone(),
            },
        );
        self.update(id, |r| r.reference_id = Some(reference.clone()));
        tokio::spawn(self.clone().deliver(id, reference.clone(), callback_url));
        reply(
            200,
            json!({
                "reference_id": reference,
                "external_id": external_id,
                "status": {"code": 290, "description": "Message in progress", "updated_on": updated_on},
            }),
        )
    }

    /// Marks the message delivered after the delay, and posts the signed receipt when asked to.
    async fn deliver(self: Arc<Self>, id: u64, reference: String, callback_url: Option<String>) {
        tokio::time::sleep(self.settings.callback_delay).await;
        let updated_on = now_text();
        let external_id = {
            let mut state = self.state.lock();
            let Some(message) = state.messages.get_mut(&reference) else {
                return;
            };
            message.code = 200;
            message.description = "Delivered to handset";
            message.updated_on = updated_on.clone();
            message.external_id.clone()
        };
        let Some(url) = callback_url else { return };
        let body = json!({
            "reference_id": reference,
            "external_id": external_id,
            "sub_resource": "sms",
            "errors": [],
            "submit_timestamp": updated_on,
            "status": {"code": 200, "description": "Delivered to handset", "updated_on": updated_on},
            "additional_info": {"message_parts_count": 1, "code_entered": null},
        })
        .to_string();
        let authorization =
            sign::callback_authorization(&self.settings.customer_id, &self.key, body.as_bytes());
        let status = match self
            .http
            .post(&url)
            .header("Authorization", authorization)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        self.update(id, |r| r.callback_status = Some(status));
    }

    fn status(&self, reference: &str) -> Response<String> {
        if reference.len() != 32 || !reference.bytes().all(|b| b.is_ascii_hexdigit()) {
            return error_reply(400, 11011, "Invalid value for parameter reference_id.");
        }
        let state = self.state.lock();
        let Some(message) = state.messages.get(reference) else {
            return error_reply(404, 10017, "Reference ID not found.");
        };
        reply(
            200,
            json!({
                "reference_id": reference,
                "external_id": message.external_id,
                "status": {"code": message.code, "description": message.description, "updated_on": message.updated_on},
                "additional_info": {"message_parts_count": 1},
            }),
        )
    }

    fn verify_sms(&self, id: u64, fields: &Map<String, Value>) -> Response<String> {
        if let Some(refused) = number_problem(text(fields, "phone_number")) {
            return refused;
        }
        let code = match text(fields, "verify_code") {
            Some(c) if (3..=7).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()) => {
                c.to_string()
            }
            Some(_) => return error_reply(400, 11009, "Invalid value for parameter verify_code."),
            None => format!("{:05}", rand::random::<u32>() % 100_000),
        };
        if text(fields, "template").is_some_and(|t| !t.contains("$$CODE$$")) {
            return error_reply(400, 11009, "Invalid value for parameter template.");
        }
        let reference = reference_id();
        self.state.lock().verifications.insert(
            reference.clone(),
            Verification {
                code: code.clone(),
                attempts: 0,
            },
        );
        self.update(id, |r| {
            r.reference_id = Some(reference.clone());
            r.verify_code = Some(code);
        });
        reply(
            200,
            json!({
                "reference_id": reference,
                "sub_resource": "sms",
                "errors": [],
                "status": {"code": 290, "description": "Message in progress", "updated_on": now_text()},
                "verify": {"code_state": "UNKNOWN", "code_entered": ""},
            }),
        )
    }

    fn verify_check(&self, reference: &str, entered: &str) -> Response<String> {
        let mut state = self.state.lock();
        let Some(verification) = state.verifications.get_mut(reference) else {
            return reply(
                404,
                json!({
                    "reference_id": reference,
                    "errors": [{"code": -10004, "description": "Reference ID expired."}],
                    "status": {"code": 599, "description": "Status not available", "updated_on": now_text()},
                }),
            );
        };
        verification.attempts += 1;
        let code_state = if verification.attempts > VERIFY_ATTEMPTS {
            "MAX_ATTEMPTS_EXCEEDED"
        } else if !entered.is_empty()
            && bool::from(subtle::ConstantTimeEq::ct_eq(
                entered.as_bytes(),
                verification.code.as_bytes(),
            ))
        {
            "VALID"
        } else {
            "INVALID"
        };
        reply(
            200,
            json!({
                "reference_id": reference,
                "sub_resource": "sms",
                "errors": [],
                "status": {"code": 200, "description": "Delivered to handset", "updated_on": now_text()},
                "verify": {"code_state": code_state, "code_entered": entered},
            }),
        )
    }
}

fn phone_id(number: &str, fields: &Map<String, Value>) -> Response<String> {
    if let Some(refused) = number_problem(Some(number)) {
        return refused;
    }
    let mut body = json!({
        "reference_id": reference_id(),
        "external_id": fields.get("external_id"),
        "status": {"code": 300, "description": "Transaction successfully completed", "updated_on": now_text()},
        "numbering": numbering(number),
        "phone_type": {"code": "2", "description": "MOBILE"},
        "carrier": {"name": "Mock Mobile"},
        "location": location(number),
        "blocklisting": {"block_code": 0, "block_description": "Not blocked", "blocked": false},
    });
    let wants_contact = fields
        .get("addons")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key("contact"));
    if wants_contact {
        body["contact"] = json!({
            "status": {"code": 2800, "description": "Request successful"},
            "first_name": "Jane", "last_name": "Doe", "address1": "1 Mock Street",
            "city": "Los Angeles", "state_province": "CA", "zip_postal_code": "90001", "country": "USA",
        });
    }
    reply(200, body)
}

fn score(number: &str, fields: &Map<String, Value>) -> Response<String> {
    if let Some(refused) = number_problem(Some(number)) {
        return refused;
    }
    match text(fields, "account_lifecycle_event") {
        Some("create" | "sign-in" | "transact" | "update" | "delete") => {}
        _ => {
            return error_reply(
                400,
                11003,
                "Invalid value for parameter account_lifecycle_event.",
            );
        }
    }
    let (score, level, recommendation, category) = risk(number);
    reply(
        200,
        json!({
            "reference_id": reference_id(),
            "external_id": fields.get("external_id"),
            "status": {"code": 300, "description": "Transaction successfully completed", "updated_on": now_text()},
            "numbering": numbering(number),
            "phone_type": {"code": "2", "description": "MOBILE"},
            "carrier": {"name": "Mock Mobile"},
            "location": location(number),
            "risk": {"level": level, "recommendation": recommendation, "score": score},
            "risk_insights": {
                "status": 800, "category": [category], "a2p": [22001], "p2p": [20101],
                "number_type": [20001], "ip": [], "email": [],
            },
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_percent_and_plus() {
        let map = parse_form(b"test=%CF%BF&message=Your+code+%26+more&bad=%zz&empty=");
        assert_eq!(map["test"], "\u{3ff}");
        assert_eq!(map["message"], "Your code & more");
        assert_eq!(map["bad"], "%zz");
        assert_eq!(map["empty"], "");
    }

    #[test]
    fn risk_follows_the_documented_suffixes() {
        assert_eq!(risk("15555559999").0, 900);
        assert_eq!(risk("15555555555").2, "flag");
        assert_eq!(risk("15558675309").1, "low");
    }
}
