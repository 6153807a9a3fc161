//! What every handler shares.
use std::sync::Arc;

use crate::config::Config;
use crate::crypto::Passwords;
use crate::limits::Limits;
use crate::mcp::events::{ListChanges, NoteEvents};
use crate::mcp::streams::OpenStreams;
use crate::oauth::jwt::AccessTokens;
use crate::oauth::metadata_document::MetadataDocuments;
use crate::store::Store;

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub tokens: AccessTokens,
    pub passwords: Passwords,
    pub limits: Limits,
    pub metadata_documents: MetadataDocuments,
    pub note_events: NoteEvents,
    pub list_changes: ListChanges,
    pub open_streams: OpenStreams,
}

pub type State = Arc<AppState>;
