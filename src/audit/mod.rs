//! The activity trail: logins, failures, lockouts, logouts, role and password changes, admin actions.
//! Append-only. Events go through a bounded channel to one writer task that inserts them in batches, so
//! recording never waits on the database; a full channel drops the event and counts it.

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::{mpsc, oneshot};

use crate::{clock::SharedClock, store::Db};

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
    pub fn actor(mut self, id: &str) -> Self {
        self.actor_id = Some(id.to_string());
        self
    }
    pub fn subject(mut self, s: &str) -> Self {
        self.subject = Some(s.to_string());
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

enum Message {
    Record(Event, i64),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct Audit {
    tx: mpsc::Sender<Message>,
    clock: SharedClock,
    dropped: Arc<AtomicU64>,
}

impl Audit {
    /// Starts the writer task; it ends when every `Audit` handle is dropped, after writing what it holds.
    pub fn start(db: Db, clock: SharedClock) -> Audit {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(write_batches(db, rx));
        Audit {
            tx,
            clock,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues an event; never waits.
    pub fn record(&self, event: Event) {
        let at = self.clock.now_ms();
        if self.tx.try_send(Message::Record(event, at)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("audit channel full; event dropped");
        }
    }

    /// Waits until every event recorded before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_batches(db: Db, mut rx: mpsc::Receiver<Message>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let n = rx.recv_many(&mut batch, BATCH).await;
        if n == 0 {
            return;
        }
        let mut flushes = Vec::new();
        let mut events = Vec::new();
        for m in batch.drain(..) {
            match m {
                Message::Record(e, at) => events.push((e, at)),
                Message::Flush(done) => flushes.push(done),
            }
        }
        if !events.is_empty()
            && let Err(e) = insert(&db, &events).await
        {
            tracing::error!(error = %e, count = events.len(), "writing audit events failed");
        }
        for done in flushes {
            let _ = done.send(());
        }
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
