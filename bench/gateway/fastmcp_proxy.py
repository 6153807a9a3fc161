"""FastMCP's proxy for bench/gateway.sh: one backend, served as Streamable HTTP on 127.0.0.1, with FastMCP's
own bearer authentication on (JWTVerifier, ES256: the algorithm mcp-gateway signs with).

    python fastmcp_proxy.py PORT TOKEN_FILE http URL [HEADER_VALUE_OF_AUTHORIZATION]
    python fastmcp_proxy.py PORT TOKEN_FILE stdio PROGRAM [ARG ...]

Writes an access token the proxy accepts to TOKEN_FILE before it starts listening. By default the proxy opens
a fresh backend session per request (FastMCP's default, for isolation); with FASTMCP_SHARED=1 it connects one
client first and every request reuses its session (FastMCP's opt-in, which it warns may mix contexts).
"""

import asyncio
import os
import sys
import time

from fastmcp import Client
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport
from fastmcp.server import create_proxy
from fastmcp.server.auth.providers.jwt import JWTVerifier
from joserfc import jwk, jwt

port, token_file, kind, target, *rest = sys.argv[1:]
ISSUER, AUDIENCE = "http://bench.invalid", "fastmcp-bench"

# A key of our own stands in for an authorization server: the verifier only needs the public half.
key = jwk.ECKey.generate_key("P-256")
now = int(time.time())
claims = {"sub": "bench", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 86400, "scope": "mcp"}
with open(token_file, "w") as f:
    f.write(jwt.encode({"alg": "ES256"}, claims, key))
auth = JWTVerifier(
    public_key=key.as_pem(private=False).decode(), algorithm="ES256", issuer=ISSUER, audience=AUDIENCE
)

if kind == "http":
    headers = {"Authorization": rest[0]} if rest else {}
    backend = StreamableHttpTransport(target, headers=headers)
else:
    backend = StdioTransport(command=target, args=rest)


# Stateless with JSON answers: no session to set up per connection, the cheapest way it serves. Errors-only
# logging, like the other servers in the bench (no access log line per request).
SERVE = dict(
    transport="http",
    host="127.0.0.1",
    port=int(port),
    stateless_http=True,
    json_response=True,
    show_banner=False,
    log_level="error",
    uvicorn_config={"access_log": False},
)


async def shared():
    async with Client(backend) as client:
        await create_proxy(client, name="bench", auth=auth).run_http_async(**SERVE)


if os.environ.get("FASTMCP_SHARED") == "1":
    asyncio.run(shared())
else:
    create_proxy(backend, name="bench", auth=auth).run(**SERVE)
