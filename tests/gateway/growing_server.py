"""A stdio MCP server built on the official Python SDK (`mcp`, pinned in requirements.txt) whose tool list
grows: its tool `grow` adds a tool named `extra` and tells the client that its tool list changed. The gateway
tests run it once per person (`--env-per-user`), to see a change one person's process announces reach
everyone's list.

Usage: python growing_server.py
"""
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("growing-server")


def extra() -> str:
    """A tool that was not there at first."""
    return "extra"


@server.tool()
async def grow(ctx: Context) -> str:
    """Adds the tool `extra` and says that the tool list changed."""
    server.add_tool(extra)
    await ctx.session.send_tool_list_changed()
    return "grown"


server.run()
