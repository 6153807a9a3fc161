//! The MCP endpoint: rmcp's Streamable HTTP service behind the bearer guard.
//!
//! Both eras are served on one endpoint: legacy revisions (2024-11-05 … 2025-11-25) with `initialize` and
//! `Mcp-Session-Id` sessions stored in the database, and 2026-07-28 stateless requests (`server/discover`).
pub mod events;
pub mod guard;
pub mod server;
pub mod session_store;
pub mod streams;
pub mod tools;

use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use self::server::McpServer;
use self::session_store::DbSessionStore;
use crate::state::State;

/// Largest JSON-RPC body `/mcp` accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn service(state: State, shutdown: CancellationToken) -> StreamableHttpService<McpServer, LocalSessionManager> {
    let config = &state.config;
    let mut http = StreamableHttpServerConfig::default()
        .with_allowed_hosts(config.allowed_hosts())
        .with_allowed_origins(config.allowed_origins_with_ports())
        .enforce_origin_validation()
        .with_legacy_session_mode(true)
        .with_json_response(true)
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_cancellation_token(shutdown);
    http.session_store =
        Some(Arc::new(DbSessionStore::new(state.store.clone(), config.mcp_session_ttl.as_secs() as i64)));
    // In memory a session lives as long as in the database, so an idle session is not silently restored
    // (losing its subscriptions) before its time is up.
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(config.mcp_session_ttl);
    let factory_state = state.clone();
    let routers = McpServer::routers(&state);
    StreamableHttpService::new(move || Ok(McpServer::new(factory_state.clone(), &routers)), Arc::new(sessions), http)
}
