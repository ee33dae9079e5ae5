//! The Telesign client against the local mock over real HTTP, the official Python SDK against the mock
//! (tests/peers/telesign_sdk.py: the mock verifies what a real client signs, and refuses what Telesign
//! refuses), and `warden telesign-mock` as a process.
//!
//! The SDK lives in the venv `.ci/run` makes (WARDEN_TEST_PYTHON, default /root/.cache/warden-ci/venv/bin/python).
//! Without it the SDK test is not run and says so, unless WARDEN_REQUIRE_PEERS=1 (as in CI), where it fails.

use std::{
    io::{BufRead, Write},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use warden::{
    config::TelesignConfig,
    sms::{
        MessageKind, PhoneNumber,
        telesign::{
            Client, SendSms, TelesignError,
            mock::{self, Failure, MockHandle, MockSettings},
            sign::Verifier,
        },
    },
};

const CUSTOMER: &str = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890";
const KEY: &str =
    "EXAMPLE----TE8sTgg45yusumoN6BYsBVkh+yRJ5czgsnCehZaOYldPJdmFh6NeX8kunZ2zU1YWaUw/0wV6xfw==";

async fn start_mock() -> MockHandle {
    mock::start(MockSettings::new(CUSTOMER, KEY)).await.unwrap()
}

fn config(url: &str, key: &str, timeout: Duration, callback_url: Option<String>) -> TelesignConfig {
    TelesignConfig {
        customer_id: CUSTOMER.into(),
        api_key: key.to_string().into(),
        sender_id: None,
        api_url: url.into(),
        verify_url: url.into(),
        intelligence_url: url.into(),
        timeout,
        callback_url,
    }
}

fn client_of(mock: &MockHandle) -> Client {
    Client::new(&config(&mock.url(), KEY, Duration::from_secs(5), None)).unwrap()
}

fn number(text: &str) -> PhoneNumber {
    PhoneNumber::parse(text).unwrap()
}

fn otp<'a>(to: &'a PhoneNumber, message: &'a str) -> SendSms<'a> {
    SendSms {
        to,
        message,
        kind: MessageKind::Otp,
        sender_id: None,
        external_id: Some("warden-1"),
        account_lifecycle_event: Some("sign-in"),
    }
}

/// Receives delivery receipts, keeping each body and whether its signature held.
async fn receipt_listener() -> (String, Arc<Mutex<Vec<(Value, bool)>>>) {
    let seen: Arc<Mutex<Vec<(Value, bool)>>> = Arc::default();
    let verifier = Arc::new(Verifier::new(CUSTOMER, KEY).unwrap());
    let record = seen.clone();
    let router = axum::Router::new().route(
        "/receipts",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let record = record.clone();
                let verifier = verifier.clone();
                async move {
                    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                    let ok = verifier.verify_callback(&body, auth).is_ok();
                    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    record.lock().unwrap().push((value, ok));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/receipts", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, seen)
}

fn is_reference_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

#[tokio::test]
async fn a_sent_sms_is_in_progress_then_delivered_with_a_signed_receipt() {
    let mock = start_mock().await;
    let (receipts_url, receipts) = receipt_listener().await;
    let client = Client::new(&config(
        &mock.url(),
        KEY,
        Duration::from_secs(5),
        Some(receipts_url),
    ))
    .unwrap();
    let to = number("+1 555 867 5309");

    let sent = client
        .send_sms(&otp(&to, "Your code is 12345"))
        .await
        .unwrap();

    assert!(is_reference_id(&sent.reference_id), "{}", sent.reference_id);
    assert_eq!(sent.status.code, 290);
    assert_eq!(sent.external_id.as_deref(), Some("warden-1"));
    let received = mock.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].verified);
    assert_eq!(received[0].fields["message"], "Your code is 12345");
    assert_eq!(received[0].fields["message_type"], "OTP");
    assert_eq!(received[0].fields["phone_number"], "15558675309");
    let mut delivered = false;
    for _ in 0..200 {
        if !receipts.lock().unwrap().is_empty() && mock.received()[0].callback_status.is_some() {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(delivered, "no receipt arrived");
    let (receipt, signature_ok) = receipts.lock().unwrap()[0].clone();
    assert!(signature_ok, "the receipt's signature did not verify");
    assert_eq!(receipt["reference_id"], sent.reference_id.as_str());
    assert_eq!(receipt["status"]["code"], 200);
    assert_eq!(receipt["status"]["description"], "Delivered to handset");
    assert_eq!(mock.received()[0].callback_status, Some(200));
    let status = client.message_status(&sent.reference_id).await.unwrap();
    assert_eq!(status.status.code, 200);
    assert_eq!(status.reference_id, sent.reference_id);
}

#[tokio::test]
async fn phone_id_verify_score_and_intelligence_parse_into_typed_replies() {
    let mock = start_mock().await;
    let client = client_of(&mock);

    let id = client
        .phone_id(&number("+1 555 867 5309"), Some("create"), true)
        .await
        .unwrap();
    assert_eq!(id.status.code, 300);
    assert_eq!(id.phone_type.code, "2");
    assert_eq!(id.phone_type.description, "MOBILE");
    assert_eq!(id.carrier.name, "Mock Mobile");
    assert_eq!(id.numbering.original.country_code, "1");
    assert_eq!(id.location.country.iso2.as_deref(), Some("US"));
    assert!(!id.blocklisting.blocked);
    let contact = id.contact.expect("the contact addon");
    assert_eq!(contact.status.code, 2800);
    let without = client
        .phone_id(&number("+44 20 7946 0958"), None, false)
        .await
        .unwrap();
    assert!(without.contact.is_none());
    assert_eq!(without.location.country.iso2.as_deref(), Some("GB"));

    let to = number("+1 555 867 5309");
    let started = client.verify_sms(&to, None, None).await.unwrap();
    assert_eq!(started.status.code, 290);
    assert_eq!(started.verify.code_state, "UNKNOWN");
    let code = mock
        .received()
        .into_iter()
        .find(|r| r.path == "/v1/verify/sms")
        .and_then(|r| r.verify_code)
        .expect("the mock records the code it generated");
    assert_eq!(code.len(), 5);
    let wrong = if code == "00000" { "11111" } else { "00000" };
    let checked = client
        .verify_check(&started.reference_id, wrong)
        .await
        .unwrap();
    assert_eq!(checked.verify.code_state, "INVALID");
    let checked = client
        .verify_check(&started.reference_id, &code)
        .await
        .unwrap();
    assert_eq!(checked.verify.code_state, "VALID");
    assert_eq!(checked.verify.code_entered, code);
    let expired = client
        .verify_check("0123456789ABCDEF0123456789ABCDEF", &code)
        .await
        .unwrap_err();
    assert!(
        matches!(expired, TelesignError::Rejected { code: -10004, .. }),
        "{expired:?}"
    );

    for (text, score, level, recommendation) in [
        ("+1 555 555 9999", 900, "high", "block"),
        ("+1 555 555 5555", 500, "medium", "flag"),
        ("+1 555 867 5309", 150, "low", "allow"),
    ] {
        let n = number(text);
        for reply in [
            client.score(&n, "create").await.unwrap(),
            client.intelligence(&n, "sign-in").await.unwrap(),
        ] {
            assert_eq!(reply.risk.score, score, "{text}");
            assert_eq!(reply.risk.level, level, "{text}");
            assert_eq!(reply.risk.recommendation, recommendation, "{text}");
            assert_eq!(reply.phone_type.code, "2");
            assert!(!reply.risk_insights.category.is_empty());
        }
    }
    let paths: Vec<String> = mock.received().into_iter().map(|r| r.path).collect();
    assert!(
        paths.contains(&"/v1/score/15555559999".to_string()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"/intelligence/phone".to_string()),
        "{paths:?}"
    );
    assert!(mock.received().iter().all(|r| r.verified));
}

#[tokio::test]
async fn an_invalid_number_is_rejected_with_11000_on_every_endpoint() {
    let mock = start_mock().await;
    let client = client_of(&mock);
    let invalid = number("+1 555 867 0000");

    let errors = [
        client.send_sms(&otp(&invalid, "hi")).await.unwrap_err(),
        client.phone_id(&invalid, None, false).await.unwrap_err(),
        client.score(&invalid, "create").await.unwrap_err(),
        client.intelligence(&invalid, "create").await.unwrap_err(),
        client.verify_sms(&invalid, None, None).await.unwrap_err(),
    ];

    for e in errors {
        assert!(
            matches!(e, TelesignError::Rejected { code: 11000, .. }),
            "{e:?}"
        );
    }
    assert_eq!(mock.received().len(), 5, "a rejection is not retried");
}

#[tokio::test]
async fn refusals_and_outages_become_outcomes_and_a_post_is_sent_once() {
    let mock = start_mock().await;
    let client = client_of(&mock);
    let to = number("+1 555 867 5309");

    mock.fail_next(Failure::Unauthorized, 1);
    let e = client.send_sms(&otp(&to, "a")).await.unwrap_err();
    assert!(
        matches!(e, TelesignError::Unauthorized { code: 10022 }),
        "{e:?}"
    );

    mock.fail_next(Failure::RateLimited, 1);
    let e = client.send_sms(&otp(&to, "b")).await.unwrap_err();
    assert!(
        matches!(
            e,
            TelesignError::RateLimited {
                retry_after_secs: 2
            }
        ),
        "{e:?}"
    );

    mock.fail_next(Failure::ServerError, 1);
    let e = client.send_sms(&otp(&to, "c")).await.unwrap_err();
    assert!(matches!(e, TelesignError::Unavailable), "{e:?}");

    let wrong_key = Client::new(&config(
        &mock.url(),
        "VGhpcyBpcyBub3QgdGhlIGtleQ==",
        Duration::from_secs(5),
        None,
    ))
    .unwrap();
    let e = wrong_key.send_sms(&otp(&to, "d")).await.unwrap_err();
    assert!(
        matches!(e, TelesignError::Unauthorized { code: 10008 }),
        "{e:?}"
    );

    let received = mock.received();
    let texts: Vec<&str> = received
        .iter()
        .map(|r| r.fields["message"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        texts,
        ["a", "b", "c", "d"],
        "each POST was sent exactly once"
    );
    assert_eq!(received[3].refused_code, Some(10008));
    assert!(!received[3].verified);
}

#[tokio::test]
async fn a_send_that_times_out_is_an_error_and_is_not_sent_again() {
    let mock = start_mock().await;
    let client = Client::new(&config(&mock.url(), KEY, Duration::from_millis(300), None)).unwrap();
    let to = number("+1 555 867 5309");
    mock.fail_next(Failure::Slow(Duration::from_millis(1500)), 5);

    let e = client.send_sms(&otp(&to, "slow")).await.unwrap_err();

    assert!(matches!(e, TelesignError::Timeout), "{e:?}");
    let sends = mock
        .received()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/messaging")
        .count();
    assert_eq!(
        sends, 1,
        "a POST that may have reached Telesign is never retried"
    );
}

#[tokio::test]
async fn a_status_poll_is_retried_after_one_server_error() {
    let mock = start_mock().await;
    let client = client_of(&mock);
    let to = number("+1 555 867 5309");
    let sent = client.send_sms(&otp(&to, "hello")).await.unwrap();
    mock.fail_next(Failure::ServerError, 1);

    let status = client.message_status(&sent.reference_id).await.unwrap();

    assert_eq!(status.reference_id, sent.reference_id);
    let polls: Vec<_> = mock
        .received()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(polls.len(), 2);
    assert_eq!(polls[0].failure, Some("server_error"));
    assert_eq!(polls[1].failure, None);

    // Unknown and malformed reference ids are Telesign's refusals, not retried.
    let e = client
        .message_status("0123456789ABCDEF0123456789ABCDEF")
        .await
        .unwrap_err();
    assert!(
        matches!(e, TelesignError::Rejected { code: 10017, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = Client::new(&config(&url, KEY, Duration::from_secs(2), None)).unwrap();

    let e = client
        .send_sms(&otp(&number("+1 555 867 5309"), "x"))
        .await
        .unwrap_err();

    assert!(matches!(e, TelesignError::Unavailable), "{e:?}");
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_client_logs_neither_the_number_the_key_nor_the_text() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("warden=trace")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The test's runtime is single-threaded: the client runs on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let mock = start_mock().await;
    let client = client_of(&mock);
    let to = number("+1 555 867 5309");

    client
        .send_sms(&otp(&to, "Your code is 48213"))
        .await
        .unwrap();
    let sent = client
        .send_sms(&otp(&to, "Your code is 48213"))
        .await
        .unwrap();
    mock.fail_next(Failure::ServerError, 1);
    client.message_status(&sent.reference_id).await.unwrap();
    let _ = format!("{client:?}");

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains(&to.masked()),
        "the send is logged, masked: {text}"
    );
    assert!(text.contains("retrying"), "{text}");
    for secret in ["15558675309", "48213", "TE8sTgg45", CUSTOMER] {
        assert!(!text.contains(secret), "{secret} in the logs: {text}");
    }
}

/// The venv's Python when it has the Telesign SDK.
fn sdk_python() -> Option<String> {
    crate::helpers::peer_python("Telesign Python SDK", "telesign.messaging, requests")
}

#[tokio::test]
async fn the_official_python_sdk_is_accepted_and_its_forgeries_refused() {
    let Some(python) = sdk_python() else { return };
    let mock = start_mock().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/telesign_sdk.py");

    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&python)
            .args([script, &mock.url(), CUSTOMER, KEY])
            .output(),
    )
    .await
    .expect("the SDK script finishes")
    .expect("the SDK script starts");

    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    assert_eq!(r["message"]["http"], 200, "{r}");
    assert_eq!(r["message"]["json"]["status"]["code"], 290);
    assert_eq!(r["status"]["http"], 200, "{r}");
    assert_eq!(
        r["status"]["json"]["reference_id"],
        r["message"]["json"]["reference_id"]
    );
    assert_eq!(r["phoneid"]["http"], 200, "{r}");
    assert_eq!(r["phoneid"]["json"]["phone_type"]["description"], "MOBILE");
    assert_eq!(r["phoneid"]["json"]["contact"]["status"]["code"], 2800);
    assert_eq!(r["score"]["http"], 200, "{r}");
    assert_eq!(
        r["score"]["json"]["risk"],
        json!({"level": "high", "recommendation": "block", "score": 900})
    );
    assert_eq!(r["wrong_key"]["http"], 401);
    assert_eq!(r["wrong_key"]["json"]["status"]["code"], 10008);
    assert_eq!(r["reused"][0]["http"], 200, "{r}");
    assert_eq!(r["reused"][1]["http"], 401);
    assert_eq!(r["reused"][1]["json"]["status"]["code"], 10002);
    assert_eq!(r["old_date"]["http"], 401);
    assert_eq!(r["old_date"]["json"]["status"]["code"], 10004);
    // The mock saw the SDK's requests as signed by the SDK (PhoneID as JSON, Score as a form).
    let received = mock.received();
    let phoneid = received
        .iter()
        .find(|r| r.path == "/v1/phoneid/15558675309")
        .unwrap();
    assert!(phoneid.verified);
    assert_eq!(phoneid.fields["addons"], json!({"contact": {}}));
    let score = received
        .iter()
        .find(|r| r.path == "/intelligence/phone")
        .unwrap();
    assert!(score.verified);
    assert_eq!(score.fields["account_lifecycle_event"], "create");
}

#[tokio::test]
async fn warden_telesign_mock_serves_signed_requests_until_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = crate::cli::warden_command(dir.path())
        .args(["telesign-mock", "--bind", "127.0.0.1:0"])
        .env("TELESIGN_CUSTOMER_ID", CUSTOMER)
        .env("TELESIGN_API_KEY", KEY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(30), line)
        .await
        .expect("the mock prints its address")
        .unwrap()
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let client = Client::new(&config(&url, KEY, Duration::from_secs(5), None)).unwrap();
    let http = reqwest::Client::new();
    let exchange = async {
        let signed = client
            .phone_id(&number("+1 555 867 5309"), None, false)
            .await;
        let unsigned = http
            .post(format!("{url}/v1/messaging"))
            .body("phone_number=15558675309&message=x&message_type=OTP")
            .send()
            .await
            .unwrap();
        let unsigned = (unsigned.status(), unsigned.json::<Value>().await.unwrap());
        let fail = http
            .post(format!("{url}/_mock/fail"))
            .json(&json!({"failure": "server_error", "count": 1}))
            .send()
            .await
            .unwrap()
            .status();
        let failed = client
            .phone_id(&number("+1 555 867 5309"), None, false)
            .await;
        let listed: Value = http
            .get(format!("{url}/_mock/requests"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (signed, unsigned, fail, failed, listed)
    };
    let (signed, unsigned, fail, failed, listed) =
        tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .unwrap();

    // Killed by its pid before asserting, so a failed assertion leaves no process behind.
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    let status = child.wait().unwrap();
    assert_eq!(signed.unwrap().status.code, 300);
    assert_eq!(unsigned.0, 401);
    assert_eq!(unsigned.1["status"]["code"], 10009);
    assert_eq!(fail, 200);
    assert!(
        matches!(failed, Err(TelesignError::Unavailable)),
        "{failed:?}"
    );
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed[0]["verified"], true);
    assert_eq!(listed[1]["refused_code"], 10009);
    assert_eq!(listed[2]["failure"], "server_error");
    assert!(status.success(), "it stops cleanly on SIGTERM: {status:?}");
}
