//! The last messages of recently active conversations, kept in memory so that a turn's history window is not
//! read back from the database it has just been written to.
//!
//! Invariants:
//! - Only committed messages are kept (they are added by the group commit's step after commit), each at its place
//!   in the conversation (`seq`). A stored message never changes and its place is never reused, so what is kept
//!   stays true whatever other instances write; it can only be incomplete.
//! - A window is served from here only when every message it spans is here. A gap (a turn another instance
//!   wrote, a conversation not seen since start-up, one evicted) is read from the database, and what is read
//!   fills the gap.
//! - Memory is bounded: at most `keep` messages per conversation and `budget` bytes in all, the least recently
//!   used conversations evicted first.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

use crate::{agent::llm::Message, ids::ConversationId};

pub struct RecentMessages {
    inner: Mutex<Inner>,
    /// Messages kept per conversation: the window and as many again, so a turn answered after later turns of
    /// its conversation were committed still finds its window here.
    keep: usize,
    budget: usize,
}

#[derive(Default)]
struct Inner {
    conversations: HashMap<ConversationId, Recent>,
    bytes: usize,
    /// Ticks on each use; a conversation's last tick orders eviction.
    clock: u64,
}

/// Consecutive messages of one conversation, the first at `first` (seq).
struct Recent {
    first: i64,
    messages: VecDeque<Message>,
    bytes: usize,
    used: u64,
}

impl Recent {
    fn end(&self) -> i64 {
        self.first + len(&self.messages) - 1
    }

    fn push_back(&mut self, m: Message) {
        self.bytes += size(&m);
        self.messages.push_back(m);
    }

    fn push_front(&mut self, m: Message) {
        self.bytes += size(&m);
        self.messages.push_front(m);
        self.first -= 1;
    }

    fn pop_front(&mut self) {
        if let Some(m) = self.messages.pop_front() {
            self.bytes -= size(&m);
            self.first += 1;
        }
    }
}

fn len<T>(items: &VecDeque<T>) -> i64 {
    i64::try_from(items.len()).unwrap_or(i64::MAX)
}

/// What a message costs here, roughly: its text and a fixed overhead.
fn size(m: &Message) -> usize {
    128 + m.content.len()
        + m.tool_calls
            .iter()
            .map(|c| c.id.len() + c.name.len() + c.arguments.len() + 64)
            .sum::<usize>()
        + m.tool_call_id.as_ref().map_or(0, String::len)
        + m.name.as_ref().map_or(0, String::len)
}

impl RecentMessages {
    /// For windows of `window` messages, within `budget` bytes.
    pub fn new(window: usize, budget: usize) -> RecentMessages {
        RecentMessages {
            inner: Mutex::new(Inner::default()),
            keep: window.saturating_mul(2).max(1),
            budget,
        }
    }

    /// Remembers committed messages of a conversation, the first at place `first`.
    pub fn remember(&self, id: &ConversationId, first: i64, messages: Vec<Message>) {
        if messages.is_empty() {
            return;
        }
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let used = inner.clock;
        let end = first + i64::try_from(messages.len()).unwrap_or(i64::MAX) - 1;
        let recent = inner
            .conversations
            .entry(id.clone())
            .or_insert_with(|| Recent {
                first,
                messages: VecDeque::new(),
                bytes: 0,
                used,
            });
        recent.used = used;
        let before = recent.bytes;
        let fresh = recent.messages.is_empty();
        let apart = !fresh && (first > recent.end() + 1 || end < recent.first - 1);
        if fresh || (apart && end > recent.end()) {
            // Nothing kept, or only older messages with a gap before these: these replace them.
            recent.messages.clear();
            recent.bytes = 0;
            recent.first = first;
            messages.into_iter().for_each(|m| recent.push_back(m));
        } else if !apart {
            // Overlapping or adjoining: a message at the same place is the same message; add what is new.
            let (kept_first, kept_end) = (recent.first, recent.end());
            let mut messages = messages;
            if end > kept_end {
                let skip = usize::try_from(kept_end + 1 - first).unwrap_or(0);
                messages.drain(skip..).for_each(|m| recent.push_back(m));
            }
            if first < kept_first {
                let older = usize::try_from(kept_first - first).unwrap_or(0);
                messages
                    .drain(..older)
                    .rev()
                    .for_each(|m| recent.push_front(m));
            }
        }
        while recent.messages.len() > self.keep {
            recent.pop_front();
        }
        let after = recent.bytes;
        inner.bytes = inner.bytes + after - before;
        if inner.bytes > self.budget {
            inner.evict(self.budget - self.budget / 4);
        }
    }

    /// The messages at places `upto - window + 1 ..= upto` (from 1 when the conversation is shorter), oldest first,
    /// if every one of them is here.
    pub fn window(&self, id: &ConversationId, upto: i64, window: usize) -> Option<Vec<Message>> {
        let from = (upto - i64::try_from(window).ok()? + 1).max(1);
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let used = inner.clock;
        let recent = inner.conversations.get_mut(id)?;
        if recent.first > from || recent.end() < upto {
            return None;
        }
        recent.used = used;
        let skip = usize::try_from(from - recent.first).ok()?;
        let take = usize::try_from(upto - from + 1).ok()?;
        Some(
            recent
                .messages
                .iter()
                .skip(skip)
                .take(take)
                .cloned()
                .collect(),
        )
    }

    /// Drops a conversation (deleted).
    pub fn forget(&self, id: &ConversationId) {
        let mut inner = self.inner.lock();
        if let Some(recent) = inner.conversations.remove(id) {
            inner.bytes -= recent.bytes;
        }
    }
}

impl Inner {
    /// Evicts the least recently used conversations until at most `target` bytes are kept.
    fn evict(&mut self, target: usize) {
        let mut by_use: Vec<(u64, ConversationId)> = self
            .conversations
            .iter()
            .map(|(id, r)| (r.used, id.clone()))
            .collect();
        by_use.sort_unstable();
        for (_, id) in by_use {
            if self.bytes <= target {
                break;
            }
            if let Some(recent) = self.conversations.remove(&id) {
                self.bytes -= recent.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(messages: &[Message]) -> Vec<&str> {
        messages.iter().map(|m| m.content.as_str()).collect()
    }

    fn numbered(from: i64, to: i64) -> Vec<Message> {
        (from..=to)
            .map(|i| Message::user(format!("m{i}")))
            .collect()
    }

    fn id(s: &str) -> ConversationId {
        ConversationId::from(s)
    }

    #[test]
    fn a_window_is_served_only_when_every_message_in_it_is_kept() {
        let recent = RecentMessages::new(3, 1 << 20);
        let c = id("c");
        recent.remember(&c, 1, numbered(1, 2));
        assert_eq!(texts(&recent.window(&c, 2, 3).unwrap()), ["m1", "m2"]);
        recent.remember(&c, 3, numbered(3, 4));
        assert_eq!(texts(&recent.window(&c, 4, 3).unwrap()), ["m2", "m3", "m4"]);
        // A window ending before the newest kept message (a turn answered after a later one was committed).
        assert_eq!(texts(&recent.window(&c, 3, 3).unwrap()), ["m1", "m2", "m3"]);
        // Not yet kept, another conversation, or nothing.
        assert!(recent.window(&c, 5, 3).is_none());
        assert!(recent.window(&id("other"), 1, 3).is_none());
    }

    #[test]
    fn a_gap_replaces_what_was_kept_and_a_read_fills_it() {
        let recent = RecentMessages::new(3, 1 << 20);
        let c = id("c");
        recent.remember(&c, 1, numbered(1, 2));
        // Places 3 and 4 were written elsewhere: 5 alone is kept, and the window up to 5 is not served.
        recent.remember(&c, 5, numbered(5, 5));
        assert!(recent.window(&c, 5, 3).is_none());
        // The window as read from the database (3..=5) fills the gap; an older read changes nothing.
        recent.remember(&c, 3, numbered(3, 5));
        assert_eq!(texts(&recent.window(&c, 5, 3).unwrap()), ["m3", "m4", "m5"]);
        recent.remember(&c, 1, numbered(1, 1));
        assert_eq!(texts(&recent.window(&c, 5, 3).unwrap()), ["m3", "m4", "m5"]);
        // Overlapping, reaching further back: the earlier messages are added in front.
        recent.remember(&c, 2, numbered(2, 4));
        assert_eq!(texts(&recent.window(&c, 4, 3).unwrap()), ["m2", "m3", "m4"]);
    }

    #[test]
    fn memory_is_bounded_per_conversation_and_in_all() {
        // Twice the window per conversation.
        let recent = RecentMessages::new(2, 1 << 20);
        let c = id("c");
        recent.remember(&c, 1, numbered(1, 10));
        assert_eq!(
            texts(&recent.window(&c, 10, 4).unwrap()),
            ["m7", "m8", "m9", "m10"]
        );
        assert!(recent.window(&c, 10, 5).is_none());
        // A budget of three conversations of two messages: past it, the least recently used go first, until a
        // quarter of the budget is free.
        let recent = RecentMessages::new(2, 3 * 2 * size(&Message::user("m1")) + 10);
        for c in ["a", "b", "c"] {
            recent.remember(&id(c), 1, numbered(1, 2));
        }
        assert!(recent.window(&id("a"), 2, 2).is_some());
        recent.remember(&id("d"), 1, numbered(1, 2));
        assert!(
            recent.window(&id("b"), 2, 2).is_none(),
            "b was used least recently"
        );
        assert!(recent.window(&id("c"), 2, 2).is_none(), "then c");
        assert!(recent.window(&id("a"), 2, 2).is_some());
        assert!(recent.window(&id("d"), 2, 2).is_some());
        recent.forget(&id("a"));
        assert!(recent.window(&id("a"), 2, 2).is_none());
        assert_eq!(recent.inner.lock().bytes, 2 * size(&Message::user("m1")));
    }
}
