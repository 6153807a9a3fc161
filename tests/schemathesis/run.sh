#!/usr/bin/env bash
# Schema-driven fuzzing of the HTTP API: schemathesis (PyPI) generates requests from openapi/openapi.json,
# valid and invalid, sends them to a live server on a fresh SQLite database, and fails on any 5xx or any
# response that its schema does not describe (status code, content type, body).
#
#   tests/schemathesis/run.sh           100 examples per operation
#   tests/schemathesis/run.sh 20        a short run (.ci/run)
#
# schemathesis is installed into target/schemathesis-venv from tests/schemathesis/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
EXAMPLES="${1:-100}"
VENV=target/schemathesis-venv
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/schemathesis/requirements.txt
fi
BIN="${SCHEMATHESIS_BIN:-target/debug/mcp-gateway}"
[ -x "$BIN" ] || cargo build --quiet
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
URL="http://127.0.0.1:$PORT"
export PORT AUTH_ISSUER="$URL" DATABASE_URL="sqlite://$WORK/gateway.db?mode=rwc" RATE_LIMITS=off \
  PASSWORD_HASH_COST=low RUST_LOG=warn LOG_FORMAT=json
"$BIN" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 200); do curl -sf -o /dev/null "$URL/readyz" && break; sleep 0.05; done
curl -sf -o /dev/null "$URL/readyz" || { cat "$WORK/server.log" >&2; exit 1; }

status=0
"$VENV/bin/schemathesis" run openapi/openapi.json --url "$URL" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$EXAMPLES" --seed 7316 --generation-database none --no-color --workers 2 \
  --request-timeout 10 || status=$?
if grep -q '"level":"ERROR"' "$WORK/server.log"; then
  echo "the server logged errors during the run:" >&2
  grep '"level":"ERROR"' "$WORK/server.log" | head -20 >&2
  status=1
fi
exit "$status"
