//! The audit trail of upstream calls, written in batches: one insert per call would put a write (and, on
//! SQLite, the database's one write lock) on every proxied call.
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::{OwnedAuditEntry, Store};

/// Most events waiting to be written; past it new ones are dropped (and logged), never the caller slowed.
const QUEUE: usize = 10_000;
/// Most events in one insert.
const BATCH: usize = 500;
/// How long an event may wait for others.
const LINGER: Duration = Duration::from_millis(200);

enum Message {
    Event(OwnedAuditEntry),
    Flush(oneshot::Sender<()>),
}

/// Queues audit events for a background writer.
#[derive(Clone)]
pub struct AuditWriter {
    queue: mpsc::Sender<Message>,
}

impl AuditWriter {
    /// Starts the writer task.
    pub fn start(store: Store) -> AuditWriter {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, rx));
        AuditWriter { queue }
    }

    pub fn record(&self, entry: OwnedAuditEntry) {
        if self.queue.try_send(Message::Event(entry)).is_err() {
            tracing::warn!("the audit queue is full; an upstream call event was dropped");
        }
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Message::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

async fn write_batches(store: Store, mut rx: mpsc::Receiver<Message>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut flushes = Vec::new();
        let mut next = Some(first);
        let deadline = tokio::time::Instant::now() + LINGER;
        loop {
            match next.take() {
                Some(Message::Event(e)) => batch.push(e),
                Some(Message::Flush(done)) => flushes.push(done),
                None => {}
            }
            if batch.len() >= BATCH || !flushes.is_empty() {
                break;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(message)) => next = Some(message),
                Ok(None) | Err(_) => break,
            }
        }
        store.audit_many(std::mem::take(&mut batch)).await;
        for done in flushes {
            let _ = done.send(());
        }
    }
}
