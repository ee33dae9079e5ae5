//! The tally: services count their events here (tool calls, LLM tokens, SMS) per minute, in memory, and the
//! analytics service drains it every few seconds into its rollups. Counting is a short lock on a small map; the
//! database is never touched on the caller's path. Events counted since the last drain are lost if the process
//! dies (a few seconds' worth); they are never counted twice.

use std::{collections::HashMap, sync::Arc};

use parking_lot::Mutex;

use crate::clock::SharedClock;

/// Distinct (minute, kind, subject, detail) entries held between drains; beyond it new entries are dropped and
/// counted, so a flood of distinct names cannot grow memory without bound.
const MAX_ENTRIES: usize = 50_000;
const MINUTE_MS: i64 = 60_000;

/// What an event is counted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// subject: tool name, detail: status.
    ToolCall,
    /// subject: user id, detail: model; amount: tokens.
    Llm,
    /// subject: SMS kind, detail: outcome.
    Sms,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ToolCall => "tool_call",
            EventKind::Llm => "llm",
            EventKind::Sms => "sms",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventKey {
    pub minute_start: i64,
    pub kind: EventKind,
    pub subject: String,
    pub detail: String,
}

/// Events and their summed amount under one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    pub events: i64,
    pub amount: i64,
}

/// A shared handle; clones count into the same map.
#[derive(Clone)]
pub struct Tally {
    clock: SharedClock,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    counts: HashMap<EventKey, Counted>,
    dropped: u64,
}

impl Tally {
    pub fn new(clock: SharedClock) -> Tally {
        Tally {
            clock,
            inner: Arc::default(),
        }
    }

    /// Counts one event with `amount` (tokens for LLM calls, 0 otherwise) in the current minute.
    pub fn add(&self, kind: EventKind, subject: &str, detail: &str, amount: i64) {
        let key = EventKey {
            minute_start: self.clock.now_ms().div_euclid(MINUTE_MS) * MINUTE_MS,
            kind,
            subject: subject.to_string(),
            detail: detail.to_string(),
        };
        let mut inner = self.inner.lock();
        if inner.counts.len() >= MAX_ENTRIES && !inner.counts.contains_key(&key) {
            inner.dropped += 1;
            return;
        }
        let counted = inner.counts.entry(key).or_default();
        counted.events += 1;
        counted.amount += amount;
    }

    /// Takes everything counted so far.
    pub fn drain(&self) -> Vec<(EventKey, Counted)> {
        std::mem::take(&mut self.inner.lock().counts)
            .into_iter()
            .collect()
    }

    /// Puts drained counts back (their write failed), adding to what arrived meanwhile.
    pub fn restore(&self, counts: Vec<(EventKey, Counted)>) {
        let mut inner = self.inner.lock();
        for (key, c) in counts {
            let counted = inner.counts.entry(key).or_default();
            counted.events += c.events;
            counted.amount += c.amount;
        }
    }

    /// Events not counted because the map was full.
    pub fn dropped(&self) -> u64 {
        self.inner.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    #[test]
    fn events_add_up_per_minute_and_a_drain_empties_the_tally() {
        let clock = ManualClock::new();
        let tally = Tally::new(clock.clone());
        let minute = clock.now_ms().div_euclid(MINUTE_MS) * MINUTE_MS;
        tally.add(EventKind::Llm, "u1", "gpt", 10);
        tally.add(EventKind::Llm, "u1", "gpt", 5);
        clock.advance(std::time::Duration::from_secs(60));
        tally.add(EventKind::Llm, "u1", "gpt", 1);
        let mut drained = tally.drain();
        drained.sort_by_key(|(k, _)| k.minute_start);
        assert_eq!(drained.len(), 2);
        assert_eq!(drained[0].0.minute_start, minute);
        assert_eq!(
            drained[0].1,
            Counted {
                events: 2,
                amount: 15
            }
        );
        assert_eq!(drained[1].0.minute_start, minute + MINUTE_MS);
        assert!(tally.drain().is_empty());
        tally.restore(drained);
        assert_eq!(tally.drain().len(), 2);
    }
}
