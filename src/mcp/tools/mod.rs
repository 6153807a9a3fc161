//! The tools, one file per family. A tool's `read_only_hint` decides the scope it needs: read-only
//! tools need `mcp:read`, every other tool also `mcp:write` (checked by the guard and again here).
pub mod conformance;
pub mod notes;
pub mod whoami;

use std::collections::HashMap;
use std::sync::LazyLock;

use poem::http::request::Parts;

use super::server::{McpServer, caller};
use crate::oauth::jwt::AccessClaims;
use crate::oauth::scope::{MCP_READ, MCP_WRITE};

/// The caller of a tool that changes data, refused (as a tool error) without `mcp:write`.
pub(crate) fn writer(parts: &Parts) -> Result<&AccessClaims, String> {
    let me = caller(parts).map_err(|e| e.message.to_string())?;
    if me.has_scope(MCP_WRITE) { Ok(me) } else { Err(format!("this tool needs the {MCP_WRITE} scope")) }
}

pub(crate) fn reader(parts: &Parts) -> Result<&AccessClaims, String> {
    caller(parts).map_err(|e| e.message.to_string())
}

/// The scopes a `tools/call` of `name` needs: `mcp:read`, plus `mcp:write` unless the tool is read-only.
/// Decided by each tool's own `read_only_hint`, so a new tool cannot be forgotten here.
pub fn scopes_for_tool(name: &str) -> &'static [&'static str] {
    static READ_ONLY: LazyLock<HashMap<String, bool>> = LazyLock::new(|| {
        McpServer::tools(true)
            .list_all()
            .into_iter()
            .map(|t| (t.name.to_string(), t.annotations.as_ref().and_then(|a| a.read_only_hint).unwrap_or(false)))
            .collect()
    });
    match READ_ONLY.get(name) {
        Some(false) => &[MCP_READ, MCP_WRITE],
        _ => &[MCP_READ],
    }
}
