//! rmcp's `SessionStore` on the database: the state of a legacy (`Mcp-Session-Id`) session is stored at
//! `initialize`, so any instance can restore and serve it. Idle sessions are not restored.
use rmcp::transport::streamable_http_server::session::{SessionState, SessionStore, SessionStoreError};

use crate::store::Store;

pub struct DbSessionStore {
    store: Store,
    idle_secs: i64,
}

impl DbSessionStore {
    pub fn new(store: Store, idle_secs: i64) -> DbSessionStore {
        DbSessionStore { store, idle_secs }
    }
}

#[async_trait::async_trait]
impl SessionStore for DbSessionStore {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let row = self.store.find_live_mcp_session(session_id, self.idle_secs).await?;
        match row.and_then(|r| r.state) {
            Some(state) => Ok(Some(serde_json::from_str(&state)?)),
            None => Ok(None),
        }
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        Ok(self.store.store_mcp_session_state(session_id, &serde_json::to_string(state)?).await?)
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        Ok(self.store.delete_mcp_session(session_id).await?)
    }
}
