//! rmcp's `SessionStore` on the database: the state of a legacy (`Mcp-Session-Id`) session is stored at
//! `initialize`, so any instance can restore and serve it. Idle sessions are not restored.
use rmcp::transport::streamable_http_server::session::{SessionState, SessionStore, SessionStoreError};

use std::time::Duration;

use super::error::log_hidden;
use crate::store::Store;

pub struct DbSessionStore {
    store: Store,
    idle: Duration,
}

/// What rmcp may show a client: the cause is logged here, not sent.
fn opaque(e: impl std::fmt::Display) -> SessionStoreError {
    log_hidden("MCP session store failed", &e);
    "the session store is unavailable".into()
}

impl DbSessionStore {
    pub fn new(store: Store, idle: Duration) -> DbSessionStore {
        DbSessionStore { store, idle }
    }
}

#[async_trait::async_trait]
impl SessionStore for DbSessionStore {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let row = self.store.find_live_mcp_session(session_id, self.idle).await.map_err(opaque)?;
        match row.and_then(|r| r.state) {
            Some(state) => Ok(Some(serde_json::from_str(&state).map_err(opaque)?)),
            None => Ok(None),
        }
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let state = serde_json::to_string(state).map_err(opaque)?;
        self.store.store_mcp_session_state(session_id, &state).await.map_err(opaque)
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.store.delete_mcp_session(session_id).await.map_err(opaque)
    }
}
