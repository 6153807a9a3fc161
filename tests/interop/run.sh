#!/usr/bin/env bash
# Interop: the official MCP TypeScript SDK client (tests/interop/ts-client.mjs) against the real server,
# through discovery, registration, login and consent, token, tools/call and refresh.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${MCP_GATEWAY_BIN:-$PWD/target/debug/mcp-gateway}"
[ -x "$BIN" ] || cargo build --quiet
(cd tests/interop && npm install --silent --no-audit --no-fund --ignore-scripts)

PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
DATA=$(mktemp -d)
cleanup() { kill "${SERVER_PID:-}" 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT
export DATABASE_URL="sqlite://$DATA/gateway.db?mode=rwc" PORT AUTH_ISSUER="http://127.0.0.1:$PORT" PASSWORD_HASH_COST=low RATE_LIMITS=off RUST_LOG=warn
PASSWORD="interop-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
"$BIN" user add interop --password "$PASSWORD" >/dev/null
"$BIN" >"$DATA/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 50); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/.well-known/oauth-protected-resource" && break
  sleep 0.2
done
node tests/interop/ts-client.mjs "http://127.0.0.1:$PORT" interop "$PASSWORD" || { cat "$DATA/server.log" >&2; exit 1; }
