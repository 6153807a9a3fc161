#!/usr/bin/env bash
# Dependency audit against a local copy of the RustSec advisory database (https://github.com/rustsec/advisory-db),
# for machines that cannot fetch it themselves:
#
#   git clone https://github.com/rustsec/advisory-db /path/to/advisory-db   # wherever GitHub is reachable
#   scripts/audit.sh /path/to/advisory-db
#
# Runs `cargo audit` (advisories for every crate in Cargo.lock; exceptions with reasons in audit.toml) and
# `cargo deny check advisories bans licenses sources` (the same database, plus the licence, source and
# duplicate policy in deny.toml). Installs either tool from crates.io when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DB="${1:?usage: scripts/audit.sh ADVISORY_DB_DIR}"
DB="$(cd "$DB" && pwd)"
[ -d "$DB/crates" ] || { echo "$DB does not look like the advisory-db repository (no crates/)" >&2; exit 2; }

command -v cargo-audit >/dev/null || cargo install --locked cargo-audit
command -v cargo-deny >/dev/null || cargo install --locked cargo-deny

echo "== cargo audit (database: $DB)"
cargo audit --db "$DB" --no-fetch

# cargo-deny keeps its advisory databases in a directory of its own: give it a scratch one, and let its fetch
# (git) read the local clone in place of GitHub (url.insteadOf). Crate metadata still comes from crates.io.
DENY_HOME="$(mktemp -d)"
trap 'rm -rf "$DENY_HOME"' EXIT
sed -e "s|^db-path = .*|db-path = \"$DENY_HOME/advisory-dbs\"|" deny.toml >"$DENY_HOME/deny.toml"
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="url.file://$DB.insteadOf" GIT_CONFIG_VALUE_0="https://github.com/rustsec/advisory-db"
echo "== cargo deny check advisories bans licenses sources"
cargo deny --config "$DENY_HOME/deny.toml" check advisories bans licenses sources
