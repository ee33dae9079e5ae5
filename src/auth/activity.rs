//! Session activity, for the idle timeout (ASVS 7.3; `SESSION_IDLE_MINUTES`).
//!
//! The hot path only touches memory: each request moves its session's last-seen time forward in a map
//! (a read lock and an atomic store once the session is known here). The background sync writes a
//! session's time to `sessions.last_seen_at` when it is a minute newer than what was last written, so
//! other instances and a restart see activity within about a minute, and a session that wakes from a
//! long idle at the next tick (about a second) — never a database write per request.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
};

use parking_lot::RwLock;

/// Activity newer than the stored time by this much is written by the next sync, ms.
pub const WRITE_EVERY_MS: i64 = 60_000;

#[derive(Default)]
pub struct Activity {
    sessions: RwLock<HashMap<String, Arc<Seen>>>,
}

struct Seen {
    last: AtomicI64,
    /// The time last written to (or read from) the database.
    stored: AtomicI64,
}

impl Activity {
    /// The last activity this instance knows of.
    pub fn last_seen(&self, session_id: &str) -> Option<i64> {
        self.sessions
            .read()
            .get(session_id)
            .map(|s| s.last.load(Ordering::Relaxed))
    }

    /// Records activity at `now` if this instance saw the session within `idle_ms`; false when it did not
    /// (unknown here, or idle as far as this instance knows). One read lock: the hot path of a cookie session.
    pub fn touch_if_seen_within(&self, session_id: &str, now: i64, idle_ms: i64) -> bool {
        let sessions = self.sessions.read();
        let Some(seen) = sessions.get(session_id) else {
            return false;
        };
        if now.saturating_sub(seen.last.load(Ordering::Relaxed)) > idle_ms {
            return false;
        }
        seen.last.fetch_max(now, Ordering::Relaxed);
        true
    }

    /// Records activity at `now`.
    pub fn touch(&self, session_id: &str, now: i64) {
        if let Some(seen) = self.sessions.read().get(session_id) {
            seen.last.fetch_max(now, Ordering::Relaxed);
            return;
        }
        self.sessions
            .write()
            .entry(session_id.to_string())
            .or_insert_with(|| {
                Arc::new(Seen {
                    last: AtomicI64::new(now),
                    stored: AtomicI64::new(i64::MIN),
                })
            })
            .last
            .fetch_max(now, Ordering::Relaxed);
    }

    /// Takes the time the database holds (a session new here, or one checked again).
    pub fn learn_stored(&self, session_id: &str, stored: i64) {
        let mut sessions = self.sessions.write();
        let seen = sessions.entry(session_id.to_string()).or_insert_with(|| {
            Arc::new(Seen {
                last: AtomicI64::new(stored),
                stored: AtomicI64::new(stored),
            })
        });
        seen.last.fetch_max(stored, Ordering::Relaxed);
        seen.stored.fetch_max(stored, Ordering::Relaxed);
    }

    pub fn forget(&self, session_id: &str) {
        self.sessions.write().remove(session_id);
    }

    /// Sessions whose activity should be written now, with the time to write.
    pub fn due(&self) -> Vec<(String, i64)> {
        self.sessions
            .read()
            .iter()
            .filter_map(|(id, seen)| {
                let last = seen.last.load(Ordering::Relaxed);
                let stored = seen.stored.load(Ordering::Relaxed);
                (last.saturating_sub(stored) >= WRITE_EVERY_MS).then(|| (id.clone(), last))
            })
            .collect()
    }

    pub fn mark_stored(&self, session_id: &str, at: i64) {
        if let Some(seen) = self.sessions.read().get(session_id) {
            seen.stored.fetch_max(at, Ordering::Relaxed);
        }
    }

    /// Drops sessions idle since before `cutoff`: they are expired or ended, and a later use reads the
    /// database again.
    pub fn prune(&self, cutoff: i64) {
        self.sessions.write().retain(|_, seen| {
            seen.last.load(Ordering::Relaxed) >= cutoff
                || seen.stored.load(Ordering::Relaxed) < seen.last.load(Ordering::Relaxed)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_is_due_for_writing_once_a_minute_newer_than_stored() {
        let a = Activity::default();
        a.learn_stored("s", 1_000);
        a.touch("s", 30_000);
        assert!(a.due().is_empty(), "half a minute newer: not yet");
        a.touch("s", 61_000);
        assert_eq!(a.due(), vec![("s".to_string(), 61_000)]);
        a.mark_stored("s", 61_000);
        assert!(a.due().is_empty());
        assert_eq!(a.last_seen("s"), Some(61_000));
    }

    #[test]
    fn a_session_first_seen_here_is_due_at_once_and_time_never_goes_back() {
        let a = Activity::default();
        a.touch("t", 5_000);
        a.touch("t", 4_000);
        assert_eq!(a.last_seen("t"), Some(5_000));
        assert_eq!(a.due(), vec![("t".to_string(), 5_000)]);
    }

    #[test]
    fn a_use_within_the_idle_window_is_recorded_and_a_later_one_is_not() {
        let a = Activity::default();
        assert!(!a.touch_if_seen_within("s", 1_000, 100), "unknown here");
        a.learn_stored("s", 1_000);
        assert!(a.touch_if_seen_within("s", 1_100, 100));
        assert!(!a.touch_if_seen_within("s", 1_201, 100));
        assert_eq!(a.last_seen("s"), Some(1_100));
    }
}
