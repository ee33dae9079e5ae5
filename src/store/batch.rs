//! The one background writer behind the audit trail, the tool-call log and (next) the request log.
//!
//! Callers push items into a bounded channel and never wait: a full channel drops the item and counts it
//! (`dropped`), so a slow database can never stall a request. One task per writer drains the channel in
//! batches of up to `batch` items (what arrives within a few milliseconds of the first) and hands each batch
//! to the writer's function, in the order pushed. `flush` waits until everything pushed before it has been
//! handed over and written, which makes the writers deterministic in tests and at shutdown. The task ends when every handle is dropped, after
//! writing what it holds.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::{mpsc, oneshot};

/// How long a writer waits, after the first item of a batch, for more. Items are already written after the
/// request that made them has been answered; a few milliseconds more cost nobody a wait.
const LINGER: std::time::Duration = std::time::Duration::from_millis(5);

enum Message<T> {
    Item(T),
    Flush(oneshot::Sender<()>),
}

/// A handle on one background writer; clones share the channel and the dropped count.
pub struct BatchWriter<T> {
    tx: mpsc::Sender<Message<T>>,
    dropped: Arc<AtomicU64>,
    name: &'static str,
}

impl<T> Clone for BatchWriter<T> {
    fn clone(&self) -> Self {
        BatchWriter {
            tx: self.tx.clone(),
            dropped: self.dropped.clone(),
            name: self.name,
        }
    }
}

impl<T: Send + 'static> BatchWriter<T> {
    /// Starts the writer task. `name` labels the warning logged when an item is dropped; `capacity` bounds
    /// the channel; `write` gets each batch (never empty, at most `batch` items) and reports its own errors.
    pub fn start<F, Fut>(name: &'static str, capacity: usize, batch: usize, write: F) -> Self
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(drain(rx, batch.max(1), write));
        BatchWriter {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            name,
        }
    }

    /// Queues an item; never waits. Returns false (and counts it) when the channel is full or closed.
    pub fn push(&self, item: T) -> bool {
        if self.tx.try_send(Message::Item(item)).is_ok() {
            return true;
        }
        // Warned at the first drop and every thousandth after: a flood of drops must not become a flood of logs.
        let before = self.dropped.fetch_add(1, Ordering::Relaxed);
        if before.is_multiple_of(1000) {
            tracing::warn!(
                writer = self.name,
                dropped = before + 1,
                "background writer channel full; item dropped"
            );
        }
        false
    }

    /// Waits until every item pushed before this call has been written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Items waiting in the channel now.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// How many items were dropped because the channel was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn drain<T, F, Fut>(mut rx: mpsc::Receiver<Message<T>>, batch: usize, mut write: F)
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut messages = Vec::with_capacity(batch);
    loop {
        if rx.recv_many(&mut messages, batch).await == 0 {
            return;
        }
        // Under load, gather what arrives within LINGER into the same batch: one write (one commit) for many
        // items, and pushes meanwhile wake nobody. A flush is written at once.
        let flush_waiting = |m: &[Message<T>]| m.iter().any(|m| matches!(m, Message::Flush(_)));
        if messages.len() < batch && !flush_waiting(&messages) {
            tokio::time::sleep(LINGER).await;
            while messages.len() < batch
                && let Ok(m) = rx.try_recv()
            {
                messages.push(m);
            }
        }
        let mut items = Vec::new();
        let mut flushes = Vec::new();
        for m in messages.drain(..) {
            match m {
                Message::Item(item) => items.push(item),
                Message::Flush(done) => flushes.push(done),
            }
        }
        if !items.is_empty() {
            write(items).await;
        }
        // A flush answers only after the batch it arrived with is written: everything before it is stored.
        for done in flushes {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_blocking() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let (started_tx, started) = oneshot::channel::<()>();
        let (open_gate, gate) = oneshot::channel::<()>();
        let mut started_tx = Some(started_tx);
        let mut gate = Some(gate);
        let sink = written.clone();
        let writer = BatchWriter::start("test", 2, 1, move |items: Vec<u32>| {
            // The first batch signals that it is being written, then waits until the test opens the gate.
            let hold = started_tx.take().zip(gate.take());
            let sink = sink.clone();
            async move {
                if let Some((started, gate)) = hold {
                    let _ = started.send(());
                    let _ = gate.await;
                }
                sink.lock().unwrap().extend(items);
            }
        });

        assert!(writer.push(1));
        started.await.unwrap();
        // The task holds item 1; the channel takes two more and drops the rest at once.
        let pushed: Vec<bool> = (2..=6).map(|i| writer.push(i)).collect();
        assert_eq!(pushed, [true, true, false, false, false]);
        assert_eq!(writer.dropped(), 3);
        assert_eq!(writer.clone().dropped(), 3, "clones share the count");

        open_gate.send(()).unwrap();
        writer.flush().await;
        assert_eq!(*written.lock().unwrap(), [1, 2, 3]);
        assert_eq!(writer.dropped(), 3);
    }

    #[tokio::test]
    async fn flush_waits_for_every_item_pushed_before_it() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = written.clone();
        let writer = BatchWriter::start("test", 64, 4, move |items: Vec<u32>| {
            let sink = sink.clone();
            async move {
                tokio::task::yield_now().await;
                sink.lock().unwrap().extend(items);
            }
        });
        for i in 0..10 {
            assert!(writer.push(i));
        }
        writer.flush().await;
        assert_eq!(*written.lock().unwrap(), (0..10).collect::<Vec<_>>());
        assert_eq!(writer.dropped(), 0);
    }
}
