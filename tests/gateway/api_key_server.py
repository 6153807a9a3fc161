"""A Streamable HTTP MCP server built on the official Python SDK (`mcp`, pinned in requirements.txt) that
requires a static API key: every request without `X-API-Key: <key>` is refused with 401. The gateway tests
put it behind the gateway with the key as a static upstream header.

Usage: python api_key_server.py PORT KEY
"""
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from starlette.responses import JSONResponse

port, key = int(sys.argv[1]), sys.argv[2]
server = MCPServer("api-key-server")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """Returns the text in capitals (not read-only, so it needs mcp:write)."""
    return text.upper()


app = server.streamable_http_app()


class RequireKey:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if headers.get(b"x-api-key", b"").decode() != key:
                response = JSONResponse({"error": "a valid X-API-Key header is required"}, status_code=401)
                await response(scope, receive, send)
                return
        await self.inner(scope, receive, send)


uvicorn.run(RequireKey(app), host="127.0.0.1", port=port, log_level="warning")
