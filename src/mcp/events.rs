//! Note changes, fanned out to the MCP sessions that subscribed to them (in-process broadcast).
use tokio::sync::broadcast;

#[derive(Debug, Clone)]
pub struct NoteChanged {
    pub user_id: String,
    pub note_id: String,
}

#[derive(Clone)]
pub struct NoteEvents(broadcast::Sender<NoteChanged>);

impl Default for NoteEvents {
    fn default() -> NoteEvents {
        NoteEvents(broadcast::channel(1024).0)
    }
}

impl NoteEvents {
    /// Announces a change; nobody listening is fine.
    pub fn publish(&self, user_id: &str, note_id: &str) {
        let _ = self.0.send(NoteChanged { user_id: user_id.to_owned(), note_id: note_id.to_owned() });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<NoteChanged> {
        self.0.subscribe()
    }
}

/// Which list changed, for `notifications/*/list_changed` on 2026-07-28 subscription streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListChanged {
    Tools,
    Prompts,
}

#[derive(Clone)]
pub struct ListChanges(broadcast::Sender<ListChanged>);

impl Default for ListChanges {
    fn default() -> ListChanges {
        ListChanges(broadcast::channel(64).0)
    }
}

impl ListChanges {
    pub fn tools(&self) {
        let _ = self.0.send(ListChanged::Tools);
    }

    pub fn prompts(&self) {
        let _ = self.0.send(ListChanged::Prompts);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ListChanged> {
        self.0.subscribe()
    }
}
