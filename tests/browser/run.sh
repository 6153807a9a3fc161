#!/usr/bin/env bash
# Real-browser tests: Debian's headless Chromium, driven by playwright-core (tests/browser/flow.mjs),
# against the real server. Screenshots of every page go to target/browser-screenshots (not committed).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${MCP_GATEWAY_BIN:-$PWD/target/debug/mcp-gateway}"
[ -x "$BIN" ] || cargo build --quiet
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  echo "Chromium is missing: apt-get install chromium chromium-driver" >&2
  exit 1
fi
(cd tests/browser && npm install --silent --no-audit --no-fund --ignore-scripts)

PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
DATA=$(mktemp -d)
SHOTS="$PWD/target/browser-screenshots"
rm -rf "$SHOTS"
cleanup() { kill "${SERVER_PID:-}" "${UPSTREAM_PID:-}" 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT
export DATABASE_URL="sqlite://$DATA/gateway.db?mode=rwc" PORT AUTH_ISSUER="http://127.0.0.1:$PORT" PASSWORD_HASH_COST=low RUST_LOG=warn
ADMIN_PASSWORD="admin-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
"$BIN" user add admin --admin --password "$ADMIN_PASSWORD" >/dev/null
"$BIN" >"$DATA/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 50); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
  sleep 0.2
done
CHROMIUM="$CHROMIUM" node tests/browser/flow.mjs "http://127.0.0.1:$PORT" admin "$ADMIN_PASSWORD" "$SHOTS" \
  || { cat "$DATA/server.log" >&2; exit 1; }

# A person connects their own account at an OAuth-protected upstream: a second mcp-gateway with its own people,
# named localhost (the gateway is 127.0.0.1) because browsers share cookies between ports of one host.
UPORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
UPSTREAM_ENV=(DATABASE_URL="sqlite://$DATA/upstream.db?mode=rwc" PORT="$UPORT" AUTH_ISSUER="http://localhost:$UPORT")
PERSON_PASSWORD="p-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
env "${UPSTREAM_ENV[@]}" "$BIN" user add xavier --password "$PERSON_PASSWORD" >/dev/null
env "${UPSTREAM_ENV[@]}" "$BIN" >"$DATA/upstream.log" 2>&1 &
UPSTREAM_PID=$!
for _ in $(seq 1 50); do
  curl -sf -o /dev/null "http://127.0.0.1:$UPORT/healthz" && break
  sleep 0.2
done
"$BIN" user add anna --password "$PERSON_PASSWORD" >/dev/null
"$BIN" upstream add remote --url "http://localhost:$UPORT/mcp" --auth oauth >/dev/null
CHROMIUM="$CHROMIUM" node tests/browser/connect.mjs "http://127.0.0.1:$PORT" anna "$PERSON_PASSWORD" \
  "http://localhost:$UPORT" xavier "$PERSON_PASSWORD" "$SHOTS" \
  || { cat "$DATA/server.log" "$DATA/upstream.log" >&2; exit 1; }

# Signing in through a real OpenID Connect provider (oidc-provider from npm, pinned in tests/gateway) and
# linking it to an account that has a password.
KIT=$(tests/gateway/install.sh)
IPORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
cp tests/gateway/oidc_provider.mjs "$KIT/oidc_provider-browser-$IPORT.mjs"
echo '{"erin": {"email": "erin@example.com", "groups": ["engineering"]}, "anna": {"email": "anna@example.com"}}' >"$DATA/people.json"
IDP_SECRET="s-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
(cd "$KIT" && exec node "oidc_provider-browser-$IPORT.mjs" "$IPORT" corp-client "$IDP_SECRET" \
  "http://127.0.0.1:$PORT/login/idp/corp/callback" "$DATA/people.json") >"$DATA/idp.log" 2>&1 &
IDP_PID=$!
trap 'cleanup; kill "${IDP_PID:-}" 2>/dev/null || true; rm -f "$KIT/oidc_provider-browser-$IPORT.mjs"' EXIT
for _ in $(seq 1 50); do
  curl -sf -o /dev/null "http://127.0.0.1:$IPORT/.well-known/openid-configuration" && break
  sleep 0.2
done
"$BIN" idp add corp --issuer "http://127.0.0.1:$IPORT" --client-id corp-client --client-secret "$IDP_SECRET" \
  --scopes "openid email profile groups" --groups-claim groups --allowed-domains example.com >/dev/null
CHROMIUM="$CHROMIUM" node tests/browser/sign_in.mjs "http://127.0.0.1:$PORT" "http://127.0.0.1:$IPORT" anna \
  "$PERSON_PASSWORD" "$SHOTS" \
  || { cat "$DATA/server.log" "$DATA/idp.log" >&2; exit 1; }
