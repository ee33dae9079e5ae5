//! The change bus between instances sharing one database. A message is a wake-up call naming a topic, never the
//! change itself: the receiver re-reads from its watermark, so a lost message costs only latency and the polling
//! loop (`SYNC_INTERVAL_MS`) stays the safety net.
//!
//! Transports: Redis pub/sub on `{REDIS_PREFIX}:changes` when `REDIS_URL` is set; else PostgreSQL
//! LISTEN/NOTIFY (a listener on its own connection, NOTIFY through the pool); else none (SQLite: one instance,
//! or polling only). Invariants:
//! - `publish` never waits and never fails a request: messages go to a task, a failed send is logged
//!   (rate-limited) and dropped.
//! - Callers publish after their change is committed, so a receiver that re-reads sees it.
//! - Each message carries the sender's instance id; an instance ignores its own.
//! - The subscriber reconnects by itself with bounded backoff, and after every (re)subscription hands out
//!   `Notice::Resync`: it may have missed messages while it was away.

pub mod versions;

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::store::{Backend, Db};

/// What changed, as a topic; the receiver re-reads it from the database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "topic", content = "id", rename_all = "lowercase")]
pub enum Change {
    /// A session was revoked (logout, admin, idle timeout, refresh reuse).
    Sessions,
    /// An account changed (profile, role, disabled, deleted, second factor).
    Accounts,
    /// A role's permissions changed.
    Roles,
    /// A tool-policy rule changed.
    Policy,
    /// The stored upstream MCP servers changed.
    Upstreams,
    /// An `ask` approval was decided (its id).
    Approval(String),
}

/// What a subscriber receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Another instance changed this.
    Change(Change),
    /// The subscription was (re)established: messages may have been missed, so re-read everything.
    Resync,
}

/// Where the bus's messages go.
pub struct Settings {
    pub redis_url: Option<String>,
    /// What the Redis channel starts with (`REDIS_PREFIX`).
    pub redis_prefix: String,
    /// The database's URL, for the PostgreSQL listener's own connection.
    pub database_url: String,
}

/// The handle services publish through and the assembly subscribes to. Cheap to clone.
#[derive(Clone)]
pub struct Bus(Arc<Inner>);

struct Inner {
    transport: &'static str,
    outbox: Option<mpsc::UnboundedSender<Change>>,
    notices: broadcast::Sender<Notice>,
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The PostgreSQL channel: the database itself scopes it to one deployment.
const PG_CHANNEL: &str = "warden_changes";

#[derive(Serialize, Deserialize)]
struct Message {
    from: String,
    change: Change,
}

impl Bus {
    /// A bus that carries nothing: one instance, or polling only (SQLite, the CLI).
    pub fn none() -> Bus {
        Bus(Arc::new(Inner {
            transport: "none",
            outbox: None,
            notices: broadcast::channel(1).0,
            stop: CancellationToken::new(),
        }))
    }

    /// Starts the transport the settings call for (Redis, else PostgreSQL NOTIFY, else none). Needs a tokio
    /// runtime; the tasks end when the last handle is dropped.
    pub fn start(settings: Settings, db: &Db) -> anyhow::Result<Bus> {
        let instance = hex::encode(rand::random::<[u8; 12]>());
        let (notices, _) = broadcast::channel(256);
        let stop = CancellationToken::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let transport = if let Some(url) = &settings.redis_url {
            let client = redis::Client::open(url.as_str())
                .map_err(|e| anyhow::anyhow!("REDIS_URL is not a Redis URL: {e}"))?;
            let channel = format!("{}:changes", settings.redis_prefix);
            let subscriber = Subscriber {
                instance: instance.clone(),
                notices: notices.clone(),
                stop: stop.clone(),
            };
            tokio::spawn(redis_subscriber(
                client.clone(),
                channel.clone(),
                subscriber,
            ));
            tokio::spawn(publisher(instance, rx, RedisOut::new(client, channel)));
            "redis"
        } else if db.backend == Backend::Postgres {
            let subscriber = Subscriber {
                instance: instance.clone(),
                notices: notices.clone(),
                stop: stop.clone(),
            };
            tokio::spawn(pg_subscriber(settings.database_url, subscriber));
            tokio::spawn(publisher(instance, rx, PgOut(db.clone())));
            "postgres"
        } else {
            return Ok(Bus::none());
        };
        tracing::info!(transport, "change bus started");
        Ok(Bus(Arc::new(Inner {
            transport,
            outbox: Some(tx),
            notices,
            stop,
        })))
    }

    /// `redis`, `postgres` or `none`.
    pub fn transport(&self) -> &'static str {
        self.0.transport
    }

    /// Tells the other instances that `change` happened (committed). Never waits, never fails.
    pub fn publish(&self, change: Change) {
        if let Some(outbox) = &self.0.outbox {
            let _ = outbox.send(change);
        }
    }

    /// Changes made by other instances, and `Resync` after every (re)subscription.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.0.notices.subscribe()
    }
}

/// The subscriber's side: whom to ignore, whom to tell, when to stop.
struct Subscriber {
    instance: String,
    notices: broadcast::Sender<Notice>,
    stop: CancellationToken,
}

impl Subscriber {
    fn deliver(&self, payload: &str) {
        match serde_json::from_str::<Message>(payload) {
            Ok(m) if m.from != self.instance => {
                let _ = self.notices.send(Notice::Change(m.change));
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "ignored a change message that does not parse"),
        }
    }

    /// Waits before the next attempt; false when the bus was dropped meanwhile.
    async fn pause(&self, backoff: &mut Backoff) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(backoff.next()) => true,
            _ = self.stop.cancelled() => false,
        }
    }
}

/// 50 ms doubling up to 5 s: a restarted Redis or PostgreSQL is found again within seconds.
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(5);

    fn new() -> Backoff {
        Backoff(Backoff::FIRST)
    }

    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(Backoff::MAX);
        now
    }

    fn reset(&mut self) {
        self.0 = Backoff::FIRST;
    }
}

/// Logs a transport failure at most every 30 s, so a stopped Redis does not flood the log.
static LAST_WARNING_MS: AtomicI64 = AtomicI64::new(0);

fn warn_rate_limited(what: &str, error: &dyn std::fmt::Display) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let last = LAST_WARNING_MS.load(Ordering::Relaxed);
    if now - last >= 30_000
        && LAST_WARNING_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(error = %error, "{what} (polling covers it; repeats are not logged for 30 s)");
    } else {
        tracing::debug!(error = %error, "{what}");
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

async fn redis_subscriber(client: redis::Client, channel: String, sub: Subscriber) {
    let mut backoff = Backoff::new();
    loop {
        match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(mut pubsub)) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    backoff.reset();
                    let _ = sub.notices.send(Notice::Resync);
                    let mut messages = pubsub.into_on_message();
                    loop {
                        tokio::select! {
                            message = messages.next() => match message {
                                Some(m) => match m.get_payload::<String>() {
                                    Ok(payload) => sub.deliver(&payload),
                                    Err(e) => tracing::debug!(error = %e, "ignored a Redis message"),
                                },
                                None => break,
                            },
                            _ = sub.stop.cancelled() => return,
                        }
                    }
                    warn_rate_limited("the Redis change subscription ended", &"connection lost");
                }
                Err(e) => warn_rate_limited("subscribing to Redis changes failed", &e),
            },
            Ok(Err(e)) => warn_rate_limited("connecting to Redis for changes failed", &e),
            Err(_) => warn_rate_limited("connecting to Redis for changes failed", &"timed out"),
        }
        if !sub.pause(&mut backoff).await {
            return;
        }
    }
}

async fn pg_subscriber(url: String, sub: Subscriber) {
    let mut backoff = Backoff::new();
    loop {
        let listener = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen(PG_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, listener).await {
            Ok(Ok(mut listener)) => {
                backoff.reset();
                let _ = sub.notices.send(Notice::Resync);
                loop {
                    tokio::select! {
                        // `None`: the connection was lost. Start again from a fresh listener and a resync.
                        received = listener.try_recv() => match received {
                            Ok(Some(n)) => sub.deliver(n.payload()),
                            Ok(None) => {
                                warn_rate_limited("the PostgreSQL change listener lost its connection", &"closed");
                                break;
                            }
                            Err(e) => {
                                warn_rate_limited("the PostgreSQL change listener failed", &e);
                                break;
                            }
                        },
                        _ = sub.stop.cancelled() => return,
                    }
                }
            }
            Ok(Err(e)) => warn_rate_limited("listening for PostgreSQL changes failed", &e),
            Err(_) => warn_rate_limited("listening for PostgreSQL changes failed", &"timed out"),
        }
        if !sub.pause(&mut backoff).await {
            return;
        }
    }
}

/// One way out: Redis PUBLISH or PostgreSQL NOTIFY.
trait Outlet {
    async fn send(&mut self, payload: &str) -> anyhow::Result<()>;
}

/// Sends what is published, in order; changes queued while a send was under way go out once each.
async fn publisher(
    instance: String,
    mut outbox: mpsc::UnboundedReceiver<Change>,
    mut out: impl Outlet,
) {
    let mut batch = Vec::new();
    while outbox.recv_many(&mut batch, 64).await > 0 {
        let mut sent: Vec<&Change> = Vec::new();
        for change in &batch {
            if sent.contains(&change) {
                continue;
            }
            sent.push(change);
            let message = Message {
                from: instance.clone(),
                change: change.clone(),
            };
            let Ok(payload) = serde_json::to_string(&message) else {
                continue;
            };
            if let Err(e) = out.send(&payload).await {
                warn_rate_limited("publishing a change failed", &e);
            }
        }
        batch.clear();
    }
}

struct RedisOut {
    client: redis::Client,
    channel: String,
    connection: Option<redis::aio::MultiplexedConnection>,
}

impl RedisOut {
    fn new(client: redis::Client, channel: String) -> RedisOut {
        RedisOut {
            client,
            channel,
            connection: None,
        }
    }
}

impl RedisOut {
    async fn publish(&mut self, payload: &str) -> redis::RedisResult<()> {
        if self.connection.is_none() {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(CONNECT_TIMEOUT));
            self.connection = Some(
                self.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            );
        }
        let Some(connection) = self.connection.as_mut() else {
            return Ok(());
        };
        let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async(connection)
            .await;
        if sent.is_err() {
            // Connect again next time: the connection may be the broken part.
            self.connection = None;
        }
        sent.map(drop)
    }
}

impl Outlet for RedisOut {
    /// A connection broken since the last send (Redis restarted) fails once: connect again and resend.
    async fn send(&mut self, payload: &str) -> anyhow::Result<()> {
        if self.publish(payload).await.is_ok() {
            return Ok(());
        }
        Ok(self.publish(payload).await?)
    }
}

struct PgOut(Db);

impl Outlet for PgOut {
    async fn send(&mut self, payload: &str) -> anyhow::Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(PG_CHANNEL)
            .bind(payload)
            .execute(self.0.writer())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_names_its_sender_and_topic_and_reads_back() {
        let (notices, mut rx) = broadcast::channel(4);
        let sub = Subscriber {
            instance: "me".into(),
            notices,
            stop: CancellationToken::new(),
        };
        let from = |who: &str, change: Change| {
            serde_json::to_string(&Message {
                from: who.into(),
                change,
            })
            .unwrap()
        };
        sub.deliver(&from("me", Change::Sessions));
        sub.deliver(&from("other", Change::Approval("a1".into())));
        sub.deliver(&from("other", Change::Policy));
        sub.deliver("not json");
        assert_eq!(
            rx.try_recv().unwrap(),
            Notice::Change(Change::Approval("a1".into()))
        );
        assert_eq!(rx.try_recv().unwrap(), Notice::Change(Change::Policy));
        assert!(
            rx.try_recv().is_err(),
            "its own message and garbage are ignored"
        );
    }

    #[test]
    fn the_backoff_doubles_up_to_its_bound_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<_> = (0..10).map(|_| b.next()).collect();
        assert_eq!(waits[0], Duration::from_millis(50));
        assert_eq!(waits[1], Duration::from_millis(100));
        assert_eq!(*waits.last().unwrap(), Backoff::MAX);
        b.reset();
        assert_eq!(b.next(), Backoff::FIRST);
    }
}
