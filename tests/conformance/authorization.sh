#!/usr/bin/env bash
# Runs the official conformance suite's authorization-server scenarios (`conformance authorization`, the
# pinned 0.2.0-alpha.12: authorization-server-metadata-endpoint and authorization-code-grant) against the
# real server. The code grant needs a person: sign_in_and_consent.py signs in on the login page, approves
# on the consent page and hands the redirect to the suite's callback server. The client is public (PKCE):
# this suite version sends a secret only to servers that do not offer `none`, and sends the RFC 8707
# resource. Fails on any failed check.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN="${MCP_GATEWAY_BIN:-$PWD/target/debug/mcp-gateway}"
# shellcheck source=tests/conformance/install.sh
source tests/conformance/install.sh
[ -x "$BIN" ] || cargo build --quiet

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
PORT=$(free_port)
CALLBACK_PORT=$(free_port)
DATA=$(mktemp -d)
cleanup() { kill "${SERVER_PID:-}" "${SUITE_PID:-}" 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT

ISSUER="http://127.0.0.1:$PORT"
export DATABASE_URL="sqlite://$DATA/gateway.db?mode=rwc" PORT AUTH_ISSUER="$ISSUER" PASSWORD_HASH_COST=low RUST_LOG=warn
PASSWORD="conformance-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
"$BIN" user add conformance --password "$PASSWORD" >/dev/null
CLIENT_ID=$("$BIN" client add --name "MCP conformance suite" --redirect-uri "http://127.0.0.1:$CALLBACK_PORT/callback" |
  awk '/^client_id:/ {print $2}')
"$BIN" >"$WORK/authorization-server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 50); do curl -sf -o /dev/null "$ISSUER/.well-known/oauth-authorization-server" && break; sleep 0.2; done

LOG="$WORK/conformance-authorization.log"
rm -rf "$WORK/results-authorization"
"$WORK/suite/node_modules/.bin/conformance" authorization --url "$ISSUER" --client-id "$CLIENT_ID" \
  --resource "$ISSUER/mcp" --port "$CALLBACK_PORT" \
  -o "$WORK/results-authorization" >"$LOG" 2>&1 &
SUITE_PID=$!
URL=""
for _ in $(seq 1 300); do
  URL=$(grep -m1 -o "^$ISSUER/oauth/authorize?[^ ]*" "$LOG" || true)
  [ -n "$URL" ] && break
  kill -0 "$SUITE_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$URL" ] || { cat "$LOG"; echo "the suite never asked for the authorization step" >&2; exit 1; }
python3 tests/conformance/sign_in_and_consent.py "$ISSUER" conformance "$PASSWORD" "$URL"
code=0
wait "$SUITE_PID" || code=$?
SUITE_PID=""
sed -n '/=== SUMMARY ===/,$p' "$LOG"
# Every check, warnings included (the exit code counts failures only).
if grep -h -o '"status": *"[A-Z]*"' "$WORK"/results-authorization/*/checks.json | grep -v SUCCESS; then code=1; fi
exit "$code"
