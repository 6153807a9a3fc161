//! The built-in tools, one file per family. A tool's `read_only_hint` decides the scope it needs:
//! read-only tools need `mcp:read`, every other tool also `mcp:write` (checked by the guard, see
//! `ToolScopes`, and again here).
pub mod notes;
pub mod whoami;

use poem::http::request::Parts;

use super::server::person;
use crate::domain::scope::MCP_WRITE;
use crate::domain::tokens::AccessClaims;

/// The person calling a tool that changes their data, refused (as a tool error) without `mcp:write` or
/// when the token acts for a client itself (client credentials).
pub(crate) fn writer(parts: &Parts) -> Result<&AccessClaims, String> {
    let me = person(parts).map_err(|e| e.message.to_string())?;
    if me.has_scope(MCP_WRITE) { Ok(me) } else { Err(format!("this tool needs the {MCP_WRITE} scope")) }
}

/// The person calling a tool that reads their data (refused, as a tool error, for a client's own token).
pub(crate) fn reader(parts: &Parts) -> Result<&AccessClaims, String> {
    person(parts).map_err(|e| e.message.to_string())
}
