//! `whoami`: who the access token belongs to.
use poem::http::request::Parts;
use rmcp::handler::server::tool::Extension;
use rmcp::{Json, schemars, tool, tool_router};
use serde::Serialize;

use super::reader;
use crate::mcp::guard::Caller;
use crate::mcp::server::McpServer;

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct WhoAmI {
    /// The user id (`sub`).
    pub subject: String,
    pub username: String,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    pub scopes: Vec<String>,
    /// When the access token expires (RFC 3339, UTC).
    pub expires_at: String,
}

#[tool_router(router = whoami_router, vis = "pub(crate)")]
impl McpServer {
    /// Who the access token belongs to: user, client, scopes and expiry.
    #[tool(
        name = "whoami",
        title = "Who am I",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn whoami(&self, Extension(parts): Extension<Parts>) -> Result<Json<WhoAmI>, String> {
        let me = reader(&parts)?;
        let caller = parts.extensions.get::<Caller>().ok_or("the caller was not identified")?;
        Ok(Json(WhoAmI {
            subject: me.sub.clone(),
            username: caller.username.clone(),
            client_id: me.client_id.clone(),
            scopes: me.scopes().into_iter().map(str::to_owned).collect(),
            expires_at: me.expires_at().rfc3339(),
        }))
    }
}
