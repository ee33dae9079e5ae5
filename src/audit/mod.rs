//! The activity trail: logins, failures, lockouts, logouts, role and password changes, admin actions.
//! Append-only. Events go through a bounded channel to one writer task that inserts them in batches, so
//! recording never waits on the database; a full channel drops the event and counts it. Readers with
//! `audit:read` page through it ([`view`]); nothing changes or deletes an event.

pub mod view;

use std::net::IpAddr;

use crate::{
    clock::SharedClock,
    store::{BatchWriter, Db},
};

const CHANNEL_CAPACITY: usize = 8192;
const BATCH: usize = 256;

pub struct Event {
    event: String,
    outcome: &'static str,
    actor_id: Option<String>,
    subject: Option<String>,
    client_ip: Option<String>,
    detail: serde_json::Value,
}

impl Event {
    pub fn new(event: impl Into<String>, outcome: &'static str) -> Event {
        Event {
            event: event.into(),
            outcome,
            actor_id: None,
            subject: None,
            client_ip: None,
            detail: serde_json::json!({}),
        }
    }
    /// Who acted: a user id (any id type), or `Actor::as_str()`.
    pub fn actor(mut self, id: impl AsRef<str>) -> Self {
        self.actor_id = Some(id.as_ref().to_string());
        self
    }
    pub fn subject(mut self, s: impl AsRef<str>) -> Self {
        self.subject = Some(s.as_ref().to_string());
        self
    }
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip.to_string());
        self
    }
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// The handle services record events through; clones share one writer task.
#[derive(Clone)]
pub struct Audit {
    writer: BatchWriter<(Event, i64)>,
    clock: SharedClock,
    /// For the read side ([`view`]).
    db: Db,
}

impl Audit {
    /// Starts the writer task; it ends when every `Audit` handle is dropped, after writing what it holds.
    pub fn start(db: Db, clock: SharedClock) -> Audit {
        let read = db.clone();
        let writer = BatchWriter::start("audit", CHANNEL_CAPACITY, BATCH, move |events| {
            let db = db.clone();
            async move {
                if let Err(e) = insert(&db, &events).await {
                    tracing::error!(error = %e, count = events.len(), "writing audit events failed");
                }
            }
        });
        Audit {
            writer,
            clock,
            db: read,
        }
    }

    /// Queues an event; never waits.
    pub fn record(&self, event: Event) {
        crate::telemetry::record_login(&event.event);
        self.writer.push((event, self.clock.now_ms()));
    }

    /// Waits until every event recorded before this call is written.
    pub async fn flush(&self) {
        self.writer.flush().await;
    }

    /// How many events were dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.writer.dropped()
    }
}

async fn insert(db: &Db, events: &[(Event, i64)]) -> sqlx::Result<()> {
    let mut tx = db.writer().begin().await?;
    for (e, at) in events {
        sqlx::query(
            "INSERT INTO audit_events (id, at, event, outcome, actor_id, subject, client_ip, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(*at)
        .bind(&e.event)
        .bind(e.outcome)
        .bind(e.actor_id.as_deref())
        .bind(e.subject.as_deref())
        .bind(e.client_ip.as_deref())
        .bind(e.detail.to_string())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}
