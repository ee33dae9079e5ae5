//! [`Sms`], the one path for every provider call: check the destination, insert the transaction row (pending),
//! enforce the limits by counting rows (the new one included), call the provider, record the outcome.
//! Receipts and status polls update the row's final status; the admin view reads the log.

use std::sync::Arc;

use anyhow::Context;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{
    MessageKind, PhoneNumber, Recommendation, Risk, Sent, SmsError, console,
    store::{self, Filter, Limit, NewTransaction, Outcome, TransactionRow},
    telesign::{self, SendSms, sign::Verifier},
};
use crate::{
    clock::{SharedClock, rfc3339},
    config::{SmsConfig, SmsProviderKind},
    ids::UserId,
    store::Db,
    telemetry::tally::{EventKind, Tally},
};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// How long a verification code sent by `send_verification` may be checked.
const VERIFICATION_MS: i64 = 10 * 60_000;
/// Checks one verification takes before even the right code fails.
const VERIFICATION_ATTEMPTS: i64 = 5;

/// What a transaction row records: which provider call it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionKind {
    /// An OTP-type SMS.
    Sms,
    /// An alert or marketing message (ARN, MKT).
    Message,
    PhoneId,
    VerificationSend,
    VerificationCheck,
    Risk,
    Status,
}

impl TransactionKind {
    pub const ALL: [TransactionKind; 7] = [
        TransactionKind::Sms,
        TransactionKind::Message,
        TransactionKind::PhoneId,
        TransactionKind::VerificationSend,
        TransactionKind::VerificationCheck,
        TransactionKind::Risk,
        TransactionKind::Status,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Sms => "sms",
            TransactionKind::Message => "message",
            TransactionKind::PhoneId => "phone_id",
            TransactionKind::VerificationSend => "verification_send",
            TransactionKind::VerificationCheck => "verification_check",
            TransactionKind::Risk => "risk",
            TransactionKind::Status => "status",
        }
    }

    pub fn parse(text: &str) -> Option<TransactionKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether it sends a message, and so counts towards the limits.
    fn is_send(self) -> bool {
        matches!(
            self,
            TransactionKind::Sms | TransactionKind::Message | TransactionKind::VerificationSend
        )
    }

    /// A lookup: a paid provider call that reveals data about a number's owner (store::LOOKUP_KINDS).
    fn is_lookup(self) -> bool {
        matches!(self, TransactionKind::PhoneId | TransactionKind::Risk)
    }
}

enum Provider {
    Disabled,
    Console(console::Console),
    Telesign {
        client: telesign::Client,
        receipts: Box<Verifier>,
    },
}

/// What [`Sms::new`] needs.
pub struct SmsParts<'a> {
    pub config: SmsConfig,
    pub db: Db,
    pub clock: SharedClock,
    /// The server's signing secret: the keys of the number hashes and verification codes derive from it.
    pub signing_secret: &'a [u8],
    /// Where each call's outcome is counted for the dashboards.
    pub tally: Tally,
}

/// The SMS service. Cheap to share behind an `Arc`.
pub struct Sms {
    provider: Provider,
    config: SmsConfig,
    db: Db,
    clock: SharedClock,
    number_key: Hmac<Sha256>,
    code_key: Hmac<Sha256>,
    tally: Tally,
}

/// A number's PhoneID data (`verify-phone`, `phone_lookup`).
#[derive(Clone, Debug, Serialize)]
pub struct PhoneInfo {
    /// Masked.
    pub phone_number: String,
    pub phone_type: Option<String>,
    pub carrier: Option<String>,
    pub country: Option<String>,
    pub blocked: bool,
    /// The `contact` addon (subscriber name and address) where the carrier shares it.
    pub contact: Option<Value>,
}

/// One row of the transaction log, as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Transaction {
    pub id: String,
    pub user_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    /// Masked.
    pub phone_number: String,
    pub state: String,
    pub reference_id: Option<String>,
    pub external_id: String,
    pub status_code: Option<i64>,
    pub status: Option<String>,
    pub success: bool,
    pub error: Option<String>,
    pub final_status_code: Option<i64>,
    pub final_status: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<TransactionRow> for Transaction {
    fn from(r: TransactionRow) -> Transaction {
        Transaction {
            id: r.id,
            user_id: r.user_id,
            kind: r.kind,
            phone_number: r.number_masked,
            state: r.state,
            reference_id: r.reference_id,
            external_id: r.external_id,
            status_code: r.status_code,
            status: r.status_description,
            success: r.success != 0,
            error: r.error,
            final_status_code: r.final_status_code,
            final_status: r.final_status,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

/// The log's totals, as seed 001's summary had them.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub total: i64,
    pub successful: i64,
    pub failed: i64,
    pub by_type: Value,
    /// Percent, one decimal.
    pub success_rate: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TransactionPage {
    pub transactions: Vec<Transaction>,
    pub total: i64,
    pub summary: Summary,
}

/// What a delivery receipt did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipt {
    Updated,
    /// The same status was recorded already (a repeated receipt).
    Unchanged,
    /// No transaction has this reference id (logged; answered 200 so Telesign stops retrying).
    UnknownReference,
}

/// A transaction row in progress.
struct Tx {
    id: String,
    kind: TransactionKind,
}

/// Whole seconds (at least one) until the oldest counted row of a `window_ms` window leaves it.
fn retry_after_secs(oldest: Option<i64>, window_ms: i64, now: i64) -> u64 {
    let ms = oldest.unwrap_or(now) + window_ms - now;
    u64::try_from(ms.max(1000)).unwrap_or(1000).div_ceil(1000)
}

fn subkey(key: &[u8], label: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    <Hmac<Sha256> as Mac>::new_from_slice(&mac.finalize().into_bytes())
        .expect("HMAC takes any key length")
}

/// The text of a provider failure for the log: codes and Telesign's description, never a secret.
fn error_text(e: &SmsError) -> String {
    match e {
        SmsError::Rejected { code, description } => format!("rejected {code}: {description}"),
        SmsError::Unavailable => "provider unavailable".into(),
        SmsError::RateLimited { .. } => "provider rate limited".into(),
        SmsError::Internal(e) => e.to_string(),
        other => other.to_string(),
    }
}

impl Sms {
    pub fn new(p: SmsParts<'_>) -> anyhow::Result<Arc<Sms>> {
        let provider = match p.config.provider {
            SmsProviderKind::Disabled => Provider::Disabled,
            SmsProviderKind::Console => Provider::Console(console::Console::default()),
            SmsProviderKind::Telesign => {
                let t = p
                    .config
                    .telesign
                    .as_ref()
                    .context("SMS_PROVIDER=telesign without its settings")?;
                use secrecy::ExposeSecret;
                Provider::Telesign {
                    client: telesign::Client::new(t)?,
                    receipts: Box::new(
                        Verifier::new(&t.customer_id, t.api_key.expose_secret())
                            .map_err(|_| anyhow::anyhow!("TELESIGN_API_KEY is not base64"))?,
                    ),
                }
            }
        };
        let root = subkey(p.signing_secret, "warden sms v1")
            .finalize()
            .into_bytes();
        Ok(Arc::new(Sms {
            provider,
            config: p.config,
            db: p.db,
            clock: p.clock,
            number_key: subkey(&root, "number hashes"),
            code_key: subkey(&root, "verification codes"),
            tally: p.tally,
        }))
    }

    /// Counts one call's outcome, for /metrics and the dashboards.
    fn count(&self, kind: &'static str, outcome: &'static str) {
        crate::telemetry::record_sms(kind, outcome);
        self.tally.add(EventKind::Sms, kind, outcome, 0);
    }

    /// The console provider's recent messages (development and tests); `None` with another provider.
    pub fn console(&self) -> Option<&console::Console> {
        match &self.provider {
            Provider::Console(c) => Some(c),
            _ => None,
        }
    }

    /// The keyed hash of a number: the log's lookup and limit key, useless without the server's secret.
    pub fn number_hash(&self, number: &PhoneNumber) -> String {
        let mut mac = self.number_key.clone();
        mac.update(number.digits().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn code_hmac(&self, transaction_id: &str, code: &str) -> String {
        let mut mac = self.code_key.clone();
        mac.update(transaction_id.as_bytes());
        mac.update(b"\0");
        mac.update(code.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Sends `text` to `to` on behalf of `actor`, after the destination rules and limits.
    pub async fn send(
        &self,
        actor: &UserId,
        to: &PhoneNumber,
        text: &str,
        kind: MessageKind,
    ) -> Result<Sent, SmsError> {
        self.send_message(actor, to, text, kind, None).await
    }

    /// [`Sms::send`] with a sender id (ARN messages; overrides `TELESIGN_SENDER_ID`).
    pub async fn send_message(
        &self,
        actor: &UserId,
        to: &PhoneNumber,
        text: &str,
        kind: MessageKind,
        sender_id: Option<&str>,
    ) -> Result<Sent, SmsError> {
        let tx_kind = match kind {
            MessageKind::Otp => TransactionKind::Sms,
            _ => TransactionKind::Message,
        };
        let tx = self.begin(actor, to, tx_kind).await?;
        let result = match &self.provider {
            Provider::Disabled => Err(SmsError::Disabled),
            Provider::Console(c) => Ok(c.send(actor, to, text, kind)),
            Provider::Telesign { client, .. } => client
                .send_sms(&SendSms {
                    to,
                    message: text,
                    kind,
                    sender_id,
                    external_id: Some(&tx.id),
                    account_lifecycle_event: None,
                })
                .await
                .map(|r| Sent {
                    reference_id: r.reference_id,
                    status_code: r.status.code,
                    status: r.status.description,
                })
                .map_err(SmsError::from),
        };
        self.finish_sent(&tx, result, None).await
    }

    /// The fraud risk of a number, for `account_lifecycle_event` `event` (create, sign-in, transact, update,
    /// delete).
    pub async fn assess_risk(
        &self,
        actor: &UserId,
        to: &PhoneNumber,
        event: &str,
    ) -> Result<Risk, SmsError> {
        let tx = self.begin(actor, to, TransactionKind::Risk).await?;
        let result = match &self.provider {
            Provider::Disabled => Err(SmsError::Disabled),
            // The console has no risk data: every number is low risk, and says so.
            Provider::Console(_) => {
                tracing::debug!(number = %to.masked(), "console provider: no risk data");
                Ok((
                    None,
                    0,
                    "console: no risk data".to_string(),
                    Risk {
                        level: "low".into(),
                        score: 0,
                        recommendation: Recommendation::Allow,
                        phone_type: None,
                        carrier: None,
                    },
                ))
            }
            Provider::Telesign { client, .. } => client
                .intelligence(to, event)
                .await
                .map(|r| {
                    let recommendation = match r.risk.recommendation.as_str() {
                        "allow" => Recommendation::Allow,
                        "block" => Recommendation::Block,
                        _ => Recommendation::Flag,
                    };
                    (
                        r.reference_id,
                        r.status.code,
                        r.status.description,
                        Risk {
                            level: r.risk.level,
                            score: r.risk.score,
                            recommendation,
                            phone_type: Some(r.phone_type.description).filter(|d| !d.is_empty()),
                            carrier: Some(r.carrier.name).filter(|c| !c.is_empty()),
                        },
                    )
                })
                .map_err(SmsError::from),
        };
        match result {
            Ok((reference_id, code, description, risk)) => {
                self.record_ok(&tx, reference_id.as_deref(), code, &description, None)
                    .await?;
                Ok(risk)
            }
            Err(e) => Err(self.record_failure(&tx, e).await),
        }
    }

    /// PhoneID with the `contact` addon.
    pub async fn phone_id(&self, actor: &UserId, to: &PhoneNumber) -> Result<PhoneInfo, SmsError> {
        let tx = self.begin(actor, to, TransactionKind::PhoneId).await?;
        let result = match &self.provider {
            Provider::Disabled => Err(SmsError::Disabled),
            Provider::Console(_) => Ok((
                None,
                300,
                "console: no lookup data".to_string(),
                PhoneInfo {
                    phone_number: to.masked(),
                    phone_type: None,
                    carrier: None,
                    country: None,
                    blocked: false,
                    contact: None,
                },
            )),
            Provider::Telesign { client, .. } => client
                .phone_id(to, None, true)
                .await
                .map(|r| {
                    let contact = r.contact.map(|c| {
                        json!({
                            "first_name": c.first_name, "last_name": c.last_name, "address1": c.address1,
                            "city": c.city, "state_province": c.state_province,
                            "zip_postal_code": c.zip_postal_code, "country": c.country,
                        })
                    });
                    (
                        r.reference_id,
                        r.status.code,
                        r.status.description,
                        PhoneInfo {
                            phone_number: to.masked(),
                            phone_type: Some(r.phone_type.description).filter(|d| !d.is_empty()),
                            carrier: Some(r.carrier.name).filter(|c| !c.is_empty()),
                            country: r.location.country.iso2,
                            blocked: r.blocklisting.blocked,
                            contact,
                        },
                    )
                })
                .map_err(SmsError::from),
        };
        match result {
            Ok((reference_id, code, description, info)) => {
                self.record_ok(&tx, reference_id.as_deref(), code, &description, None)
                    .await?;
                Ok(info)
            }
            Err(e) => Err(self.record_failure(&tx, e).await),
        }
    }

    /// Sends a verification code to `to`. The code never leaves the server but in the SMS: Telesign's Verify
    /// keeps it (its reference id is in the log), the console's is kept as a keyed HMAC in the log row.
    pub async fn send_verification(
        &self,
        actor: &UserId,
        to: &PhoneNumber,
    ) -> Result<Sent, SmsError> {
        let tx = self
            .begin(actor, to, TransactionKind::VerificationSend)
            .await?;
        let (result, code_hmac) = match &self.provider {
            Provider::Disabled => (Err(SmsError::Disabled), None),
            Provider::Console(c) => {
                let code = format!("{:05}", rand::rng().random_range(0..100_000u32));
                let text = format!("Your verification code is {code}");
                (
                    Ok(c.send(actor, to, &text, MessageKind::Otp)),
                    Some(self.code_hmac(&tx.id, &code)),
                )
            }
            Provider::Telesign { client, .. } => (
                client
                    .verify_sms(to, None, None)
                    .await
                    .map(|r| Sent {
                        reference_id: r.reference_id,
                        status_code: r.status.code,
                        status: r.status.description,
                    })
                    .map_err(SmsError::from),
                None,
            ),
        };
        self.finish_sent(&tx, result, code_hmac.as_deref()).await
    }

    /// Checks `code` against the newest verification `actor` sent to `to` in the last ten minutes; a right
    /// code closes it. Only server-side state decides.
    pub async fn check_verification(
        &self,
        actor: &UserId,
        to: &PhoneNumber,
        code: &str,
    ) -> Result<(), SmsError> {
        self.check_destination(to)?;
        if !(3..=7).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SmsError::WrongCode);
        }
        let now = self.clock.now_ms();
        let open = store::find_open_verification(
            &self.db.pool,
            actor.as_str(),
            &self.number_hash(to),
            now - VERIFICATION_MS,
        )
        .await
        .context("sms store: find_open_verification")?
        .ok_or(SmsError::WrongCode)?;
        if !store::take_verification_attempt(self.db.writer(), &open.id, VERIFICATION_ATTEMPTS, now)
            .await
            .context("sms store: take_verification_attempt")?
        {
            return Err(SmsError::WrongCode);
        }
        let tx = self
            .begin(actor, to, TransactionKind::VerificationCheck)
            .await?;
        let result = match &self.provider {
            Provider::Disabled => Err(SmsError::Disabled),
            Provider::Console(_) => {
                let expected = open.code_hmac.clone().unwrap_or_default();
                let valid = bool::from(
                    self.code_hmac(&open.id, code)
                        .as_bytes()
                        .ct_eq(expected.as_bytes()),
                ) && !expected.is_empty();
                Ok((None, if valid { "VALID" } else { "INVALID" }.to_string()))
            }
            Provider::Telesign { client, .. } => match open.reference_id.as_deref() {
                None => Ok((None, "UNKNOWN".to_string())),
                Some(reference_id) => client
                    .verify_check(reference_id, code)
                    .await
                    .map(|r| (Some(r.reference_id), r.verify.code_state))
                    .map_err(SmsError::from),
            },
        };
        let state = match result {
            Ok((reference_id, state)) => {
                let reference_id = reference_id.or(open.reference_id.clone());
                self.record_ok(&tx, reference_id.as_deref(), 200, &state, None)
                    .await?;
                state
            }
            Err(e) => return Err(self.record_failure(&tx, e).await),
        };
        if state == "VALID" {
            store::close_verification(self.db.writer(), &open.id, "verified", now)
                .await
                .context("sms store: close_verification")?;
            return Ok(());
        }
        if open.attempts + 1 >= VERIFICATION_ATTEMPTS || state == "MAX_ATTEMPTS_EXCEEDED" {
            store::close_verification(self.db.writer(), &open.id, "attempts exhausted", now)
                .await
                .context("sms store: close_verification")?;
        }
        Err(SmsError::WrongCode)
    }

    /// A send's transaction by its reference id, with the delivery status polled from the provider (and
    /// recorded). Another user's transaction is not found unless `read_all`.
    pub async fn status(
        &self,
        actor: &UserId,
        reference_id: &str,
        read_all: bool,
    ) -> Result<Transaction, SmsError> {
        if matches!(self.provider, Provider::Disabled) {
            return Err(SmsError::Disabled);
        }
        let row = store::find_send_by_reference(&self.db.pool, reference_id)
            .await
            .context("sms store: find_send_by_reference")?
            .filter(|r| read_all || r.user_id.as_deref() == Some(actor.as_str()))
            .ok_or(SmsError::NotFound)?;
        let now = self.clock.now_ms();
        let id = uuid::Uuid::new_v4().to_string();
        store::insert_transaction(
            self.db.writer(),
            &NewTransaction {
                id: &id,
                user_id: Some(actor.as_str()),
                kind: TransactionKind::Status.as_str(),
                number_masked: &row.number_masked,
                number_hash: &row.number_hash,
                reference_id: Some(reference_id),
                now,
            },
        )
        .await
        .context("sms store: insert_transaction")?;
        let tx = Tx {
            id,
            kind: TransactionKind::Status,
        };
        let polled = match &self.provider {
            Provider::Disabled => Err(SmsError::Disabled),
            // Printed is delivered, for the console.
            Provider::Console(_) => Ok((200, "Delivered to handset".to_string())),
            Provider::Telesign { client, .. } if row.kind != "verification_send" => client
                .message_status(reference_id)
                .await
                .map(|r| (r.status.code, r.status.description))
                .map_err(SmsError::from),
            Provider::Telesign { .. } => Ok((
                row.final_status_code.unwrap_or(290),
                row.final_status.clone().unwrap_or_default(),
            )),
        };
        match polled {
            Ok((code, description)) => {
                self.record_ok(&tx, Some(reference_id), code, &description, None)
                    .await?;
                if row.kind != "verification_send" {
                    store::update_final_status(self.db.writer(), &row.id, code, &description, now)
                        .await
                        .context("sms store: update_final_status")?;
                }
            }
            Err(e) => return Err(self.record_failure(&tx, e).await),
        }
        let fresh = store::find_send_by_reference(&self.db.pool, reference_id)
            .await
            .context("sms store: find_send_by_reference")?
            .ok_or(SmsError::NotFound)?;
        Ok(fresh.into())
    }

    /// A delivery receipt from Telesign: verified on the raw body, then the transaction's final status is
    /// recorded (idempotently).
    pub async fn receipt(
        &self,
        body: &[u8],
        authorization: Option<&str>,
    ) -> Result<Receipt, SmsError> {
        let Provider::Telesign { receipts, .. } = &self.provider else {
            return Err(SmsError::ReceiptRefused(
                "this server has no Telesign account (SMS_PROVIDER)".into(),
            ));
        };
        receipts
            .verify_callback(body, authorization)
            .map_err(|r| SmsError::ReceiptRefused(format!("{r} ({})", r.code())))?;
        let receipt: Value = serde_json::from_slice(body)
            .map_err(|_| SmsError::BadReceipt("the body is not JSON".into()))?;
        let reference_id = receipt["reference_id"]
            .as_str()
            .ok_or_else(|| SmsError::BadReceipt("reference_id is missing".into()))?;
        let code = receipt["status"]["code"]
            .as_i64()
            .ok_or_else(|| SmsError::BadReceipt("status.code is missing".into()))?;
        let description = receipt["status"]["description"].as_str().unwrap_or("");
        let Some(row) = store::find_send_by_reference(&self.db.pool, reference_id)
            .await
            .context("sms store: find_send_by_reference")?
        else {
            tracing::warn!(
                reference_id,
                code,
                "delivery receipt for an unknown reference id"
            );
            return Ok(Receipt::UnknownReference);
        };
        let changed = store::update_final_status(
            self.db.writer(),
            &row.id,
            code,
            description,
            self.clock.now_ms(),
        )
        .await
        .context("sms store: update_final_status")?;
        tracing::debug!(reference_id, code, changed, "delivery receipt");
        Ok(if changed {
            Receipt::Updated
        } else {
            Receipt::Unchanged
        })
    }

    /// The log for the admin view, newest first, with its summary under the same filter.
    pub async fn transactions(
        &self,
        number: Option<&PhoneNumber>,
        kind: Option<TransactionKind>,
        failed_only: bool,
        limit: i64,
        offset: i64,
    ) -> Result<TransactionPage, SmsError> {
        let filter = Filter {
            number_hash: number.map(|n| self.number_hash(n)),
            kind: kind.map(|k| k.as_str().to_string()),
            failed_only,
        };
        let rows = store::find_all(&self.db.pool, &filter, limit, offset)
            .await
            .context("sms store: find_all")?;
        let counts = store::count_by_kind(&self.db.pool, &filter)
            .await
            .context("sms store: count_by_kind")?;
        let total: i64 = counts.iter().map(|c| c.total).sum();
        let successful: i64 = counts.iter().map(|c| c.successful).sum();
        let by_type: serde_json::Map<String, Value> = counts
            .iter()
            .map(|c| {
                (
                    c.kind.clone(),
                    json!({"total": c.total, "successful": c.successful, "failed": c.total - c.successful}),
                )
            })
            .collect();
        let success_rate = if total == 0 {
            0.0
        } else {
            (successful as f64 * 1000.0 / total as f64).round() / 10.0
        };
        Ok(TransactionPage {
            transactions: rows.into_iter().map(Transaction::from).collect(),
            total,
            summary: Summary {
                total,
                successful,
                failed: total - successful,
                by_type: Value::Object(by_type),
                success_rate,
            },
        })
    }

    fn check_destination(&self, to: &PhoneNumber) -> Result<(), SmsError> {
        if matches!(self.provider, Provider::Disabled) {
            return Err(SmsError::Disabled);
        }
        if !to.in_countries(&self.config.allowed_countries) {
            return Err(SmsError::CountryNotAllowed);
        }
        Ok(())
    }

    /// Checks the destination, inserts the pending row and, for a send, enforces the limits over the log.
    async fn begin(
        &self,
        actor: &UserId,
        to: &PhoneNumber,
        kind: TransactionKind,
    ) -> Result<Tx, SmsError> {
        self.check_destination(to)?;
        let now = self.clock.now_ms();
        let id = uuid::Uuid::new_v4().to_string();
        let hash = self.number_hash(to);
        store::insert_transaction(
            self.db.writer(),
            &NewTransaction {
                id: &id,
                user_id: Some(actor.as_str()),
                kind: kind.as_str(),
                number_masked: &to.masked(),
                number_hash: &hash,
                reference_id: None,
                now,
            },
        )
        .await
        .context("sms store: insert_transaction")?;
        let tx = Tx { id, kind };
        let over = if kind.is_send() {
            self.over_limit(actor, &hash, now).await?
        } else if kind.is_lookup() {
            self.over_lookup_limit(actor, now).await?
        } else {
            None
        };
        if let Some((limit, retry_after_secs)) = over {
            store::update_outcome(
                self.db.writer(),
                &tx.id,
                &Outcome {
                    state: "refused",
                    reference_id: None,
                    status_code: None,
                    status_description: None,
                    error: Some(limit),
                    code_hmac: None,
                    now,
                },
            )
            .await
            .context("sms store: update_outcome")?;
            tracing::warn!(user_id = %actor.as_str(), number = %to.masked(), limit, "SMS refused: over a limit");
            self.count(kind.as_str(), "refused");
            return Err(SmsError::RateLimited { retry_after_secs });
        }
        Ok(tx)
    }

    /// `SMS_LOOKUPS_PER_HOUR`, if a lookup (already in the log) breaks it, with the seconds until a place frees.
    async fn over_lookup_limit(
        &self,
        actor: &UserId,
        now: i64,
    ) -> Result<Option<(&'static str, u64)>, SmsError> {
        let lookups = store::count_window(
            &self.db.pool,
            Limit::UserLookups,
            actor.as_str(),
            now - HOUR_MS,
        )
        .await
        .context("sms store: count_window")?;
        if lookups.count > i64::from(self.config.lookups_per_hour) {
            return Ok(Some((
                "SMS_LOOKUPS_PER_HOUR",
                retry_after_secs(lookups.oldest, HOUR_MS, now),
            )));
        }
        Ok(None)
    }

    /// The limit a send (already in the log) breaks, with the seconds until the window frees a place.
    async fn over_limit(
        &self,
        actor: &UserId,
        hash: &str,
        now: i64,
    ) -> Result<Option<(&'static str, u64)>, SmsError> {
        let retry = |oldest: Option<i64>, window: i64| retry_after_secs(oldest, window, now);
        let user = store::count_window(
            &self.db.pool,
            Limit::UserSends,
            actor.as_str(),
            now - HOUR_MS,
        )
        .await
        .context("sms store: count_window")?;
        if user.count > i64::from(self.config.user_per_hour) {
            return Ok(Some(("SMS_USER_PER_HOUR", retry(user.oldest, HOUR_MS))));
        }
        let number = store::count_window(&self.db.pool, Limit::NumberSends, hash, now - HOUR_MS)
            .await
            .context("sms store: count_window")?;
        if number.count > i64::from(self.config.number_per_hour) {
            return Ok(Some(("SMS_NUMBER_PER_HOUR", retry(number.oldest, HOUR_MS))));
        }
        let numbers = store::count_window(
            &self.db.pool,
            Limit::UserNumbers,
            actor.as_str(),
            now - DAY_MS,
        )
        .await
        .context("sms store: count_window")?;
        if numbers.count > i64::from(self.config.user_numbers_per_day) {
            return Ok(Some((
                "SMS_USER_NUMBERS_PER_DAY",
                retry(numbers.oldest, DAY_MS),
            )));
        }
        Ok(None)
    }

    async fn finish_sent(
        &self,
        tx: &Tx,
        result: Result<Sent, SmsError>,
        code_hmac: Option<&str>,
    ) -> Result<Sent, SmsError> {
        match result {
            Ok(sent) => {
                self.record_ok(
                    tx,
                    Some(&sent.reference_id),
                    sent.status_code,
                    &sent.status,
                    code_hmac,
                )
                .await?;
                Ok(sent)
            }
            Err(e) => Err(self.record_failure(tx, e).await),
        }
    }

    async fn record_ok(
        &self,
        tx: &Tx,
        reference_id: Option<&str>,
        code: i64,
        description: &str,
        code_hmac: Option<&str>,
    ) -> Result<(), SmsError> {
        store::update_outcome(
            self.db.writer(),
            &tx.id,
            &Outcome {
                state: "ok",
                reference_id,
                status_code: Some(code),
                status_description: Some(description),
                error: None,
                code_hmac,
                now: self.clock.now_ms(),
            },
        )
        .await
        .context("sms store: update_outcome")?;
        self.count(tx.kind.as_str(), "ok");
        Ok(())
    }

    /// Records a failed call and hands its error back.
    async fn record_failure(&self, tx: &Tx, e: SmsError) -> SmsError {
        let (code, description) = match &e {
            SmsError::Rejected { code, description } => (Some(*code), Some(description.as_str())),
            _ => (None, None),
        };
        let error = error_text(&e);
        if let Err(db) = store::update_outcome(
            self.db.writer(),
            &tx.id,
            &Outcome {
                state: "failed",
                reference_id: None,
                status_code: code,
                status_description: description,
                error: Some(&error),
                code_hmac: None,
                now: self.clock.now_ms(),
            },
        )
        .await
        {
            tracing::warn!(error = %db, "recording a failed SMS transaction failed");
        }
        self.count(tx.kind.as_str(), "failed");
        e
    }
}
