//! The MCP face: rmcp's Streamable HTTP service behind the bearer guard.
//!
//! Both eras are served on one endpoint: legacy revisions (2024-11-05 … 2025-11-25) with `initialize` and
//! `Mcp-Session-Id` sessions stored in the database, and 2026-07-28 stateless requests (`server/discover`).
pub mod error;
pub mod events;
pub mod fixtures;
pub mod gateway;
pub mod guard;
pub mod server;
pub mod session_store;
pub mod streams;
pub mod tasks;
pub mod tools;
pub mod trust;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rmcp::ServerHandler;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use self::events::{ListChanges, NoteEvents};
use self::session_store::DbSessionStore;
use self::streams::OpenStreams;
use crate::domain::scope::{MCP_READ, MCP_WRITE};
use crate::store::Store;

/// Largest JSON-RPC body `/mcp` accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every MCP server value shares: the store and the fan-out of changes to open streams.
pub struct McpContext {
    pub store: Store,
    pub note_events: NoteEvents,
    pub list_changes: ListChanges,
    pub open_streams: OpenStreams,
    /// Most open 2026-07-28 notification streams one person may hold on this instance.
    pub max_streams_per_user: usize,
    /// Notified when another instance announces a change of the upstream configuration (Postgres).
    pub upstream_changes: Arc<tokio::sync::Notify>,
    /// Tool calls run as tasks, kept in the database.
    pub tasks: tasks::Tasks,
}

/// How the transport is set up (from the server and MCP sections of the configuration).
pub struct TransportSettings {
    /// `Host` values `/mcp` answers to (DNS-rebinding protection).
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call `/mcp`, each with its port written out.
    pub allowed_origins: Vec<String>,
    /// A legacy session unused this long is not restored.
    pub session_ttl: Duration,
}

/// rmcp's Streamable HTTP service for handlers made by `factory`: legacy sessions kept in the database,
/// JSON answers, and `shutdown` to end open streams.
pub fn service<S>(
    factory: impl Fn() -> S + Send + Sync + 'static,
    store: Store,
    settings: TransportSettings,
    shutdown: CancellationToken,
) -> StreamableHttpService<S, LocalSessionManager>
where
    S: ServerHandler + Send + 'static,
{
    let mut http = StreamableHttpServerConfig::default()
        .with_allowed_hosts(settings.allowed_hosts)
        .with_allowed_origins(settings.allowed_origins)
        .enforce_origin_validation()
        .with_legacy_session_mode(true)
        .with_json_response(true)
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_cancellation_token(shutdown);
    http.session_store = Some(Arc::new(DbSessionStore::new(store, settings.session_ttl)));
    // In memory a session lives as long as in the database, so an idle session is not silently restored
    // (losing its subscriptions) before its time is up.
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(settings.session_ttl);
    StreamableHttpService::new(move || Ok(factory()), Arc::new(sessions), http)
}

/// The scopes a `tools/call` of each tool needs: for the built-ins, `mcp:read`, plus `mcp:write` unless the
/// tool is read-only (decided by each tool's own `read_only_hint`, so a new tool cannot be forgotten here);
/// for the gateway's upstream tools, what the catalog says (it changes while the server runs).
#[derive(Debug, Clone, Default)]
pub struct ToolScopes {
    writes: HashMap<String, bool>,
    upstream: Arc<RwLock<HashMap<String, Arc<[String]>>>>,
}

impl ToolScopes {
    /// The scopes of every tool `routers` route.
    pub fn of<S: Send + Sync + 'static>(routers: &[&ToolRouter<S>]) -> ToolScopes {
        let mut writes = HashMap::new();
        for router in routers {
            for tool in router.list_all() {
                let read_only = tool.annotations.as_ref().and_then(|a| a.read_only_hint).unwrap_or(false);
                writes.insert(tool.name.to_string(), !read_only);
            }
        }
        ToolScopes { writes, upstream: Arc::default() }
    }

    /// Adds the tools of another router (the fixtures').
    pub fn with<S: Send + Sync + 'static>(mut self, router: &ToolRouter<S>) -> ToolScopes {
        self.writes.extend(ToolScopes::of(&[router]).writes);
        self
    }

    /// Forgets the built-ins (`MCP_BUILTIN_TOOLS=off`).
    pub fn without_builtins(mut self) -> ToolScopes {
        self.writes.clear();
        self
    }

    /// The names of the built-in tools.
    pub fn builtin_names(&self) -> std::collections::HashSet<String> {
        self.writes.keys().cloned().collect()
    }

    /// Replaces the scopes of the upstream tools (every clone sees the change).
    pub fn set_upstream(&self, needs: HashMap<String, Arc<[String]>>) {
        *self.upstream.write().expect("tool scopes lock") = needs;
    }

    /// Adds the scopes calling `name` needs to `needed`.
    pub fn add_needs(&self, name: &str, needed: &mut Vec<String>) {
        match self.writes.get(name) {
            Some(true) => needed.push(MCP_WRITE.to_owned()),
            Some(false) => {}
            None => {
                if let Some(needs) = self.upstream.read().expect("tool scopes lock").get(name) {
                    needed.extend(needs.iter().filter(|s| s.as_str() != MCP_READ).cloned());
                }
            }
        }
    }
}
