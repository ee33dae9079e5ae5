//! Fixed-window limits per client address (logins, page views): [`AddressLimit`] counts in Redis (`REDIS_URL`),
//! shared by every instance of a deployment, while it answers, and in this instance's memory otherwise.
//!
//! One round trip per hit: a Lua script INCRs `{prefix}:limit:{name}:{key}:{window}` and sets its expiry on the
//! first hit, so a window's key outlives it briefly and then goes. Each call is bounded by [`CALL_TIMEOUT`]; when
//! Redis errs or does not answer, [`SharedCounter::hit`] answers `None` and the caller counts in its own memory
//! (a limit per instance, as without Redis), logging that at most once a minute. The connection manager
//! reconnects by itself, so the shared count resumes as soon as Redis answers again.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use parking_lot::Mutex;
use redis::{
    Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

/// Longest a request waits on Redis for one count before counting in memory instead.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// How often an unanswered Redis is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// After an unanswered call, how long hits are counted in memory without asking Redis: a dead Redis then costs
/// one request per pause [`CALL_TIMEOUT`] at most, not every request.
const PAUSE: Duration = Duration::from_secs(1);

const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
";

/// Counters in one Redis, under one deployment's key prefix.
pub struct SharedCounter {
    connection: ConnectionManager,
    prefix: String,
    script: Script,
    state: Mutex<Unanswered>,
}

#[derive(Default)]
struct Unanswered {
    /// When an unanswered call was last logged.
    logged: Option<Instant>,
    /// Until when Redis is not asked.
    paused_until: Option<Instant>,
}

impl SharedCounter {
    /// A counter on the Redis at `url`; connects on first use (a Redis down at start-up does not stop the start).
    pub fn connect(url: &str, prefix: &str) -> anyhow::Result<SharedCounter> {
        let client = redis::Client::open(url).context("REDIS_URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .context("setting up the Redis connection")?;
        Ok(SharedCounter {
            connection,
            prefix: prefix.to_string(),
            script: Script::new(HIT),
            state: Mutex::default(),
        })
    }

    /// Counts one hit of `key` under `name` in the `window_ms` window holding `now_ms`: the window's count so
    /// far, with this hit; `None` when Redis did not answer in time (the caller counts in memory instead).
    pub async fn hit(&self, name: &str, key: &str, window_ms: i64, now_ms: i64) -> Option<u64> {
        if self
            .state
            .lock()
            .paused_until
            .is_some_and(|until| Instant::now() < until)
        {
            return None;
        }
        let window = now_ms.div_euclid(window_ms.max(1));
        let redis_key = format!("{}:limit:{name}:{key}:{window}", self.prefix);
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(redis_key);
        invocation.arg(window_ms.saturating_mul(2));
        let answer = tokio::time::timeout(
            CALL_TIMEOUT,
            invocation.invoke_async::<u64>(&mut connection),
        )
        .await;
        match answer {
            Ok(Ok(n)) => Some(n),
            Ok(Err(e)) => {
                self.log_unanswered(&e.to_string());
                None
            }
            Err(_) => {
                self.log_unanswered("timed out");
                None
            }
        }
    }

    fn log_unanswered(&self, why: &str) {
        let mut state = self.state.lock();
        let now = Instant::now();
        state.paused_until = Some(now + PAUSE);
        if state.logged.is_none_or(|at| now - at >= LOG_EVERY) {
            state.logged = Some(now);
            tracing::warn!(
                error = why,
                "Redis did not answer a rate-limit count; counting on this instance until it does"
            );
        }
    }
}

/// Address entries kept in memory before those of past windows are forgotten.
const MAX_TRACKED: usize = 100_000;

/// At most `per_window` hits per client address in each fixed `window_ms` window: counted in `shared` (every
/// instance together) while it answers, else in this instance's memory.
pub struct AddressLimit {
    name: &'static str,
    per_window: u32,
    window_ms: i64,
    shared: Option<Arc<SharedCounter>>,
    /// Address -> (window number, hits in it).
    here: Mutex<HashMap<IpAddr, (i64, u64)>>,
}

impl AddressLimit {
    /// `name` keeps this limit's Redis keys apart from the others'.
    pub fn new(
        name: &'static str,
        per_window: u32,
        window_ms: i64,
        shared: Option<Arc<SharedCounter>>,
    ) -> AddressLimit {
        AddressLimit {
            name,
            per_window,
            window_ms: window_ms.max(1),
            shared,
            here: Mutex::default(),
        }
    }

    /// Counts a hit; `Err(retry_after_secs)` once the address is over the limit in this window.
    pub async fn check(&self, ip: IpAddr, now_ms: i64) -> Result<(), u64> {
        let shared = match &self.shared {
            Some(counter) => {
                counter
                    .hit(self.name, &ip.to_string(), self.window_ms, now_ms)
                    .await
            }
            None => None,
        };
        let hits = match shared {
            Some(n) => n,
            None => self.hit_here(ip, now_ms),
        };
        if hits > u64::from(self.per_window) {
            return Err(retry_after_secs(self.window_ms, now_ms));
        }
        Ok(())
    }

    /// Counts a hit in this instance's memory; the window's hits so far, with this one.
    fn hit_here(&self, ip: IpAddr, now_ms: i64) -> u64 {
        let window = now_ms.div_euclid(self.window_ms);
        let mut here = self.here.lock();
        if here.len() >= MAX_TRACKED {
            here.retain(|_, (w, _)| *w == window);
        }
        let entry = here.entry(ip).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }
}

/// Seconds until the `window_ms` window holding `now_ms` ends (at least one): a `Retry-After`.
pub fn retry_after_secs(window_ms: i64, now_ms: i64) -> u64 {
    let window = window_ms.max(1);
    let end = (now_ms.div_euclid(window) + 1) * window;
    u64::try_from((end - now_ms) / 1000).unwrap_or(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_url() -> String {
        std::env::var("WARDEN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    #[tokio::test]
    async fn two_counters_on_one_redis_count_one_window_together() {
        let prefix = format!("test-{}", uuid::Uuid::new_v4());
        let (a, b) = (
            SharedCounter::connect(&redis_url(), &prefix).unwrap(),
            SharedCounter::connect(&redis_url(), &prefix).unwrap(),
        );
        assert_eq!(a.hit("login", "10.0.0.1", 60_000, 0).await, Some(1));
        assert_eq!(b.hit("login", "10.0.0.1", 60_000, 59_999).await, Some(2));
        assert_eq!(a.hit("login", "10.0.0.2", 60_000, 1).await, Some(1));
        assert_eq!(b.hit("login", "10.0.0.1", 60_000, 60_000).await, Some(1));
        assert_eq!(b.hit("pages", "10.0.0.1", 60_000, 60_000).await, Some(1));
    }

    #[tokio::test]
    async fn an_unreachable_redis_answers_none_promptly() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let counter = SharedCounter::connect(&format!("redis://127.0.0.1:{port}"), "x").unwrap();
        let started = Instant::now();
        for _ in 0..5 {
            assert_eq!(counter.hit("login", "10.0.0.1", 60_000, 0).await, None);
        }
        assert!(
            started.elapsed() < CALL_TIMEOUT * 2,
            "{:?}",
            started.elapsed()
        );
    }

    /// A `redis-server` of this test's own on a free port, stopped (by its pid) when dropped.
    struct OwnRedis {
        child: std::process::Child,
        port: u16,
    }

    impl OwnRedis {
        fn start(port: u16) -> OwnRedis {
            let child = std::process::Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                ])
                .args(["--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server on PATH");
            OwnRedis { child, port }
        }
    }

    impl Drop for OwnRedis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    async fn hit_until_answered(counter: &SharedCounter, now_ms: i64) -> Option<u64> {
        for _ in 0..100 {
            if let Some(n) = counter.hit("login", "10.0.0.1", 60_000, now_ms).await {
                return Some(n);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    #[tokio::test]
    async fn the_count_falls_back_while_redis_is_down_and_resumes_when_it_returns() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let redis = OwnRedis::start(port);
        let counter =
            SharedCounter::connect(&format!("redis://127.0.0.1:{}", redis.port), "t").unwrap();
        assert_eq!(hit_until_answered(&counter, 0).await, Some(1));
        drop(redis);
        let started = Instant::now();
        assert_eq!(counter.hit("login", "10.0.0.1", 60_000, 1).await, None);
        assert!(started.elapsed() <= CALL_TIMEOUT + Duration::from_millis(100));
        let _redis = OwnRedis::start(port);
        // A fresh server: the count starts again, in Redis.
        assert_eq!(hit_until_answered(&counter, 2).await, Some(1));
        assert_eq!(counter.hit("login", "10.0.0.1", 60_000, 3).await, Some(2));
    }

    #[tokio::test]
    async fn an_address_is_limited_in_memory_within_a_window_and_freed_after_it() {
        let l = AddressLimit::new("login", 2, 60_000, None);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(l.check(ip, 0).await.is_ok());
        assert!(l.check(ip, 1).await.is_ok());
        assert_eq!(l.check(ip, 2).await, Err(59));
        assert!(l.check("10.0.0.2".parse().unwrap(), 2).await.is_ok());
        assert!(l.check(ip, 60_000).await.is_ok());
    }

    #[test]
    fn retry_after_counts_to_the_end_of_the_window() {
        assert_eq!(retry_after_secs(60_000, 0), 60);
        assert_eq!(retry_after_secs(60_000, 59_500), 1);
        assert_eq!(retry_after_secs(60_000, 61_000), 59);
    }
}
