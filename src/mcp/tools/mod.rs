//! The built-in tools, one file per family. A tool's `read_only_hint` decides the scope it needs:
//! read-only tools need `mcp:read`, every other tool also `mcp:write` (checked by the guard, see
//! `ToolScopes`, and again here).
pub mod notes;
pub mod whoami;

use poem::http::request::Parts;

use super::server::caller;
use crate::domain::scope::MCP_WRITE;
use crate::domain::tokens::AccessClaims;

/// The caller of a tool that changes data, refused (as a tool error) without `mcp:write`.
pub(crate) fn writer(parts: &Parts) -> Result<&AccessClaims, String> {
    let me = caller(parts).map_err(|e| e.message.to_string())?;
    if me.has_scope(MCP_WRITE) { Ok(me) } else { Err(format!("this tool needs the {MCP_WRITE} scope")) }
}

pub(crate) fn reader(parts: &Parts) -> Result<&AccessClaims, String> {
    caller(parts).map_err(|e| e.message.to_string())
}
