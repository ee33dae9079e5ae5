//! Per-address login rate limit: a fixed one-minute window per client address. With Redis (`REDIS_URL`) the
//! count is shared by every instance, so attempts spread over them meet one limit; without it, or while Redis
//! does not answer, each instance counts in its own memory (the per-account lock, which must survive restarts,
//! is in the database).

use std::{collections::HashMap, net::IpAddr, sync::Arc};

use parking_lot::Mutex;

use crate::limits::{self, SharedCounter};

const WINDOW_MS: i64 = 60_000;
const MAX_TRACKED: usize = 100_000;

pub struct AddressLimiter {
    per_window: u32,
    windows: Mutex<HashMap<IpAddr, (i64, u32)>>,
    shared: Option<Arc<SharedCounter>>,
}

impl AddressLimiter {
    /// A limiter counting in `shared` when given (and it answers), else in this instance's memory.
    pub fn new(per_minute: u32, shared: Option<Arc<SharedCounter>>) -> AddressLimiter {
        AddressLimiter {
            per_window: per_minute,
            windows: Mutex::new(HashMap::new()),
            shared,
        }
    }

    /// Counts an attempt; `Err(retry_after_secs)` once the address is over its limit for this window.
    pub async fn check(&self, ip: IpAddr, now_ms: i64) -> Result<(), u64> {
        if let Some(shared) = &self.shared
            && let Some(n) = shared
                .hit("login", &ip.to_string(), WINDOW_MS, now_ms)
                .await
        {
            if n > u64::from(self.per_window) {
                return Err(limits::retry_after_secs(WINDOW_MS, now_ms));
            }
            return Ok(());
        }
        self.check_here(ip, now_ms)
    }

    /// Counts an attempt in this instance's memory.
    fn check_here(&self, ip: IpAddr, now_ms: i64) -> Result<(), u64> {
        let mut windows = self.windows.lock();
        if windows.len() >= MAX_TRACKED {
            windows.retain(|_, (start, _)| now_ms - *start < WINDOW_MS);
        }
        let entry = windows.entry(ip).or_insert((now_ms, 0));
        if now_ms - entry.0 >= WINDOW_MS {
            *entry = (now_ms, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 > self.per_window {
            let wait_ms = WINDOW_MS - (now_ms - entry.0);
            return Err(u64::try_from(wait_ms.max(1000) / 1000).unwrap_or(1));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_limited_within_a_window_and_freed_after_it() {
        let l = AddressLimiter::new(2, None);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(l.check_here(ip, 0).is_ok());
        assert!(l.check_here(ip, 1).is_ok());
        assert_eq!(l.check_here(ip, 2), Err(59));
        assert!(l.check_here("10.0.0.2".parse().unwrap(), 2).is_ok());
        assert!(l.check_here(ip, WINDOW_MS).is_ok());
    }
}
