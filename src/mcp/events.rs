//! In-process fan-out of changes to the MCP sessions and subscription streams that listen for them.
use tokio::sync::broadcast;

/// A note of `user_id` was created, changed or deleted.
#[derive(Debug, Clone)]
pub struct NoteChanged {
    pub user_id: String,
    pub note_id: String,
}

/// Which list changed, for `notifications/*/list_changed` on 2026-07-28 subscription streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListChanged {
    Tools,
    Prompts,
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

pub type NoteEvents = Events<NoteChanged>;
pub type ListChanges = Events<ListChanged>;

impl NoteEvents {
    pub fn note_changed(&self, user_id: &str, note_id: &str) {
        self.publish(NoteChanged { user_id: user_id.to_owned(), note_id: note_id.to_owned() });
    }
}
