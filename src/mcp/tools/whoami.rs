//! `whoami`: who the access token belongs to.
use poem::http::request::Parts;
use rmcp::handler::server::tool::Extension;
use rmcp::{Json, schemars, tool, tool_router};
use serde::Serialize;

use crate::mcp::guard::Caller;
use crate::mcp::server::{McpServer, caller};

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct WhoAmI {
    /// The user id (`sub`); for a client acting for itself (client credentials), the client id.
    pub subject: String,
    /// The person's username; absent when the token acts for the client itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `person`, or `client` for a token a client obtained for itself (client credentials).
    pub acts_for: &'static str,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    pub scopes: Vec<String>,
    /// When the access token expires (RFC 3339, UTC).
    pub expires_at: String,
}

#[tool_router(router = whoami_router, vis = "pub(crate)")]
impl McpServer {
    /// Who the access token belongs to: user (or the client itself), client, scopes and expiry.
    #[tool(
        name = "whoami",
        title = "Who am I",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn whoami(&self, Extension(parts): Extension<Parts>) -> Result<Json<WhoAmI>, String> {
        let me = caller(&parts).map_err(|e| e.message.to_string())?;
        let holder = parts.extensions.get::<Caller>().ok_or("the caller was not identified")?;
        Ok(Json(WhoAmI {
            subject: me.sub.clone(),
            username: holder.username().map(str::to_owned),
            acts_for: if holder.username().is_some() { "person" } else { "client" },
            client_id: me.client_id.clone(),
            scopes: me.scopes().into_iter().map(str::to_owned).collect(),
            expires_at: me.expires_at().rfc3339(),
        }))
    }
}
