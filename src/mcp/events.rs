//! Fan-out of changes to the MCP sessions and subscription streams that listen for them: in process, and
//! across instances through Postgres `LISTEN`/`NOTIFY` (SQLite runs as one process, so in process is all).
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast};

use crate::store::{ENDINGS_CHANNEL, Store, UPSTREAMS_CHANNEL};

/// A note of `user_id` was created, changed or deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NoteChanged {
    pub user_id: String,
    pub note_id: String,
}

/// Which list changed, for `notifications/*/list_changed` on 2026-07-28 subscription streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListChanged {
    Tools,
    Prompts,
    Resources,
}

/// A broadcast of `T`; publishing with nobody listening is fine, a slow listener skips what it missed.
#[derive(Clone)]
pub struct Events<T>(broadcast::Sender<T>);

impl<T: Clone> Default for Events<T> {
    fn default() -> Events<T> {
        Events(broadcast::channel(1024).0)
    }
}

impl<T: Clone> Events<T> {
    pub fn publish(&self, event: T) {
        let _ = self.0.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<T> {
        self.0.subscribe()
    }
}

pub type ListChanges = Events<ListChanged>;

const NOTES_CHANNEL: &str = "mcp_gateway_notes";

/// Note changes: published through Postgres when there is one (every instance, this one included,
/// hears them through its listener), else in process.
#[derive(Clone)]
pub struct NoteEvents {
    local: Events<NoteChanged>,
    postgres: Option<Store>,
}

impl NoteEvents {
    pub fn new(store: &Store) -> NoteEvents {
        NoteEvents { local: Events::default(), postgres: store.is_postgres().then(|| store.clone()) }
    }

    pub async fn note_changed(&self, user_id: &str, note_id: &str) {
        let change = NoteChanged { user_id: user_id.to_owned(), note_id: note_id.to_owned() };
        let Some(store) = &self.postgres else {
            return self.local.publish(change);
        };
        let payload = serde_json::to_string(&change).expect("a note change serializes");
        if let Err(e) = store.notify(NOTES_CHANNEL, &payload).await {
            tracing::warn!(error = %e, "publishing a note change failed; delivering it on this instance only");
            self.local.publish(change);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<NoteChanged> {
        self.local.subscribe()
    }

    /// On Postgres, follows what every instance announces, for as long as the process runs, on one
    /// dedicated connection: note changes go to this instance's subscribers, and revoked grants and ended
    /// sessions make it stop trusting what it remembers of either (`Store::ended`). After a lost connection
    /// it reconnects and counts an ending as well, since an announcement may have been missed meanwhile.
    /// Changes of the upstream configuration are told to `upstreams`.
    pub fn relay_from_postgres(&self, upstreams: Arc<Notify>) -> Option<tokio::task::JoinHandle<()>> {
        let store = self.postgres.clone()?;
        let local = self.local.clone();
        Some(tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match store.listen(&[NOTES_CHANNEL, ENDINGS_CHANNEL, UPSTREAMS_CHANNEL]).await {
                    Ok(mut listener) => {
                        backoff = Duration::from_millis(200);
                        store.ended();
                        upstreams.notify_one();
                        loop {
                            match listener.try_recv().await {
                                Ok(Some(n)) if n.channel() == ENDINGS_CHANNEL => store.ended(),
                                Ok(Some(n)) if n.channel() == UPSTREAMS_CHANNEL => upstreams.notify_one(),
                                Ok(Some(n)) => {
                                    if let Ok(change) = serde_json::from_str::<NoteChanged>(n.payload()) {
                                        local.publish(change);
                                    }
                                }
                                // The connection was lost and is back: what was said meanwhile is lost.
                                Ok(None) => store.ended(),
                                Err(e) => {
                                    tracing::warn!(error = %e, "the listener for other instances' announcements failed");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "listening for other instances' announcements failed"),
                }
                store.ended();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }))
    }
}
