#!/usr/bin/env bash
# Installs the real upstream MCP servers the gateway tests use, pinned, into target/gateway-upstreams:
# @modelcontextprotocol/server-everything and server-filesystem from npm (package-lock.json), and the
# official Python SDK (requirements.txt) in a virtual environment for api_key_server.py. Idempotent: a
# second run with the same pins does nothing. Prints the directory.
set -euo pipefail
cd "$(dirname "$0")"
HERE="$PWD"
DEST="${GATEWAY_UPSTREAMS_DIR:-$HERE/../../target/gateway-upstreams}"
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
PINS="$(cat package.json package-lock.json requirements.txt | sha256sum | cut -c1-16)"
if [ "$(cat "$DEST/.pins" 2>/dev/null)" != "$PINS" ]; then
  (
    exec 9>"$DEST/.lock"
    flock 9
    if [ "$(cat "$DEST/.pins" 2>/dev/null)" != "$PINS" ]; then
      cp package.json package-lock.json "$DEST/"
      (cd "$DEST" && npm ci --silent --no-audit --no-fund --ignore-scripts >/dev/null)
      python3 -m venv "$DEST/venv"
      "$DEST/venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
      echo "$PINS" >"$DEST/.pins"
    fi
  ) >&2
fi
echo "$DEST"
