//! The fixtures the official MCP conformance suite expects (`MCP_CONFORMANCE_FIXTURES=on`).
use rmcp::{tool, tool_router};

use crate::mcp::server::McpServer;

#[tool_router(router = conformance_router, vis = "pub(crate)")]
impl McpServer {
    /// A tool that returns simple text content.
    #[tool(name = "test_simple_text", annotations(read_only_hint = true))]
    async fn test_simple_text(&self) -> String {
        "This is a simple text response for testing.".to_owned()
    }
}
