#!/usr/bin/env bash
# Installs the gateways bench/gateway.sh compares with, pinned, into target/bench-peers: supergateway from npm
# (package-lock.json) and, each in a virtual environment of its own (their `mcp` pins conflict), FastMCP and
# IBM's ContextForge from PyPI. Idempotent: a second run with the same pins does nothing. Prints the directory.
set -euo pipefail
cd "$(dirname "$0")"
DEST="${BENCH_PEERS_DIR:-$PWD/../../target/bench-peers}"
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
PINS="$(cat package.json package-lock.json fastmcp-requirements.txt contextforge-requirements.txt | sha256sum | cut -c1-16)"
if [ "$(cat "$DEST/.pins" 2>/dev/null)" != "$PINS" ]; then
  (
    exec 9>"$DEST/.lock"
    flock 9
    if [ "$(cat "$DEST/.pins" 2>/dev/null)" != "$PINS" ]; then
      cp package.json package-lock.json "$DEST/"
      (cd "$DEST" && npm ci --silent --no-audit --no-fund --ignore-scripts >/dev/null)
      for peer in fastmcp contextforge; do
        python3 -m venv "$DEST/$peer"
        "$DEST/$peer/bin/pip" install --quiet --disable-pip-version-check -r "$peer-requirements.txt"
      done
      echo "$PINS" >"$DEST/.pins"
    fi
  ) >&2
fi
echo "$DEST"
