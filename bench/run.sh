#!/usr/bin/env bash
# The benchmark harness. Builds the release binary, runs it on a fresh database per backend, mints tokens
# with the CLI, and drives each scenario with wrk (bench/load.lua) or, for whole authorization flows, with
# bench/flow.mjs. The server is pinned to one core and the load generator to another (taskset).
#
#   bench/run.sh                 all scenarios, SQLite and PostgreSQL, 10 s each, median of 3 runs
#   bench/run.sh --smoke         1 s each, one run, SQLite only, debug binary: fails only on errors (CI)
#   bench/run.sh --write         also writes bench/RESULTS.md
#
# Options: --duration S, --reps N, --connections C, --no-postgres, --only REGEX (scenarios whose name
# matches, e.g. '^\((b|e)\)|ceiling'). BENCH_BIN=path runs that binary instead of building one (to compare
# two commits in one sitting). PostgreSQL: BENCH_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/postgres); the harness creates and drops its own database.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=10 REPS=3 CONNECTIONS=64 POSTGRES=1 SMOKE=0 WRITE=0 ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --no-postgres) POSTGRES=0; shift ;;
    --smoke) SMOKE=1; DURATION=1; REPS=1; POSTGRES=0; shift ;;
    --write) WRITE=1; shift ;;
    --only) ONLY="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

for tool in wrk taskset node curl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install wrk util-linux nodejs curl)" >&2; exit 1; }
done
if [ "$SMOKE" = 1 ]; then
  BIN="${BENCH_BIN:-target/debug/mcp-gateway}"
  [ -x "$BIN" ] || cargo build --quiet
else
  [ -n "${BENCH_BIN:-}" ] || cargo build --release --locked --quiet
  BIN="${BENCH_BIN:-target/release/mcp-gateway}"
fi
if [ "$(nproc)" -ge 2 ]; then SERVER_CPUS=0 LOAD_CPUS=1; else SERVER_CPUS=0 LOAD_CPUS=0; fi
PG_ADMIN="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
WORK=$(mktemp -d)
ROWS="$WORK/rows"
: >"$ROWS"
SERVER_PID=""
PG_DB=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "$PG_DB" ] && psql "$PG_ADMIN" -qc "drop database if exists \"$PG_DB\"" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
URL="http://127.0.0.1:$PORT"
# Limits off: the load comes from one address and one person (64 legacy sessions of one user in (c)).
export PORT AUTH_ISSUER="$URL" RATE_LIMITS=off MCP_MAX_SESSIONS_PER_USER=10000 RUST_LOG=error LOG_FORMAT=json \
  PASSWORD_HASH_COST=default
PASSWORD="bench-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')"
HZ=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
peak_rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
# The part of the resident size that is mapped files (the binary's code, libraries): shared, clean pages.
file_rss_kb() { awk '/RssFile/ {print $2}' "/proc/$1/status"; }

# Starts the server on $DATABASE_URL and waits until /readyz answers; sets SERVER_PID and STARTUP_MS.
# SERVER_ENV (arguments of env(1), e.g. "-u RUST_LOG") changes its environment for one scenario.
SERVER_ENV=""
start_server() {
  local t0
  t0=$(date +%s%N)
  # shellcheck disable=SC2086 # SERVER_ENV is a list of env(1) arguments
  taskset -c "$SERVER_CPUS" env $SERVER_ENV "$BIN" >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 400); do
    curl -sf -o /dev/null "$URL/readyz" && break
    sleep 0.005
  done
  curl -sf -o /dev/null "$URL/readyz" || { cat "$WORK/server.log" >&2; exit 1; }
  STARTUP_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# Prepares a database: the bench user, a public client, an access token.
prepare() {
  "$BIN" user add bench --password "$PASSWORD" >/dev/null
  CLIENT_ID=$("$BIN" client add --name bench --redirect-uri http://127.0.0.1:9/callback | awk '/^client_id:/ {print $2}')
  TOKEN=$("$BIN" token mint --user bench --client "$CLIENT_ID" --scope "mcp:read mcp:write" --ttl 86400)
}

MCP_HEADERS_BASE="content-type: application/json
accept: application/json, text/event-stream
authorization: Bearer "
stateless_call() { # tool name, arguments JSON
  printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s","arguments":%s,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}' "$1" "$2"
}

# Runs one load command against the running server; appends "rps p50 p99 errors requests cpu_us" to $1.
measure() {
  local out="$1" before after line
  shift
  before=$(cpu_ticks "$SERVER_PID")
  line=$(taskset -c "$LOAD_CPUS" "$@" | awk '/^RESULT/')
  after=$(cpu_ticks "$SERVER_PID")
  set -- $line
  local cpu_us=0
  [ "${6:-0}" -gt 0 ] && cpu_us=$(( (after - before) * 1000000 / HZ / $6 ))
  echo "$2 $3 $4 $5 $6 $cpu_us" >>"$out"
}
measure_wrk() { measure "$1" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s bench/load.lua "$URL"; }
measure_flow() { measure "$1" node bench/flow.mjs "$URL" bench "$PASSWORD" "$DURATION" 8 "$2"; }

# scenario <backend> <name> <setup function>: runs REPS times, each on a freshly started server, and
# records the medians, the worst error count and the highest peak RSS.
scenario() {
  local backend="$1" name="$2" setup="$3" runs="$WORK/runs" rss=0 file=0 errors=0 startup=0
  : >"$runs"
  for _ in $(seq 1 "$REPS"); do
    start_server
    [ "$STARTUP_MS" -gt "$startup" ] && startup=$STARTUP_MS
    "$setup" "$runs"
    local r
    r=$(peak_rss_kb "$SERVER_PID")
    [ "$r" -gt "$rss" ] && rss=$r
    r=$(file_rss_kb "$SERVER_PID")
    [ "$r" -gt "$file" ] && file=$r
    stop_server
  done
  local med_rps med_p50 med_p99 max_err med_cpu
  med_rps=$(sort -n -k1,1 "$runs" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  med_p50=$(sort -n -k2,2 "$runs" | awk '{a[NR]=$2} END {print a[int((NR+1)/2)]}')
  med_p99=$(sort -n -k3,3 "$runs" | awk '{a[NR]=$3} END {print a[int((NR+1)/2)]}')
  max_err=$(sort -n -k4,4 "$runs" | awk 'END {print $4}')
  med_cpu=$(sort -n -k6,6 "$runs" | awk '{a[NR]=$6} END {print a[int((NR+1)/2)]}')
  printf '%s|%s|%s|%s|%s|%s|%s|%s|%s|%s\n' "$backend" "$name" "$med_rps" "$med_p50" "$med_p99" "$max_err" \
    "$((rss / 1024))" "$med_cpu" "$startup" "$((file / 1024))" >>"$ROWS"
  printf '  %-8s %-46s %10s req/s  p50 %7s ms  p99 %7s ms  errors %s\n' "$backend" "$name" "$med_rps" "$med_p50" \
    "$med_p99" "$max_err" >&2
}

wrk_env() { # method path expect headers body
  export BENCH_METHOD="$1" BENCH_PATH="$2" BENCH_EXPECT="$3" BENCH_HEADERS="$4" BENCH_BODY="$5" BENCH_THREADS=1
  unset BENCH_REFRESH_FILE BENCH_CLIENT_ID BENCH_SESSIONS_FILE BENCH_TOKENS_FILE
}

run_ceiling() { wrk_env GET /healthz 200 "" ""; measure_wrk "$1"; }
run_unauthenticated() {
  wrk_env POST /mcp 401 "content-type: application/json
accept: application/json, text/event-stream" '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
  measure_wrk "$1"
}
run_stateless() {
  wrk_env POST /mcp 200 "$MCP_HEADERS_BASE$TOKEN
mcp-protocol-version: 2026-07-28
mcp-method: tools/call
mcp-name: whoami" "$(stateless_call whoami '{}')"
  measure_wrk "$1"
}
run_session() { # one legacy session per connection, each initialized like a real client
  local sessions="$WORK/sessions" session
  : >"$sessions"
  for _ in $(seq 1 "$CONNECTIONS"); do
    session=$(curl -s -D - -o /dev/null "$URL/mcp" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
      -H 'accept: application/json, text/event-stream' \
      -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
      | awk 'tolower($1) == "mcp-session-id:" {print $2}' | tr -d '\r')
    curl -s -o /dev/null "$URL/mcp" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
      -H 'accept: application/json, text/event-stream' -H "mcp-session-id: $session" -H 'mcp-protocol-version: 2025-11-25' \
      -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
    echo "$session" >>"$sessions"
  done
  wrk_env POST /mcp 200 "$MCP_HEADERS_BASE$TOKEN
mcp-protocol-version: 2025-11-25" '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
  export BENCH_SESSIONS_FILE="$sessions"
  measure_wrk "$1"
}
WRITERS=0
run_write() { # each run writes as 16 new users: one person may keep at most 10,000 notes
  local tokens="$WORK/writer-tokens" k user
  : >"$tokens"
  for k in $(seq 1 16); do
    WRITERS=$((WRITERS + 1))
    user="writer$WRITERS"
    PASSWORD_HASH_COST=low "$BIN" user add "$user" --password "$PASSWORD" >/dev/null
    "$BIN" token mint --user "$user" --client "$CLIENT_ID" --scope "mcp:read mcp:write" --ttl 86400 >>"$tokens"
  done
  wrk_env POST /mcp 200 "content-type: application/json
accept: application/json, text/event-stream
mcp-protocol-version: 2026-07-28
mcp-method: tools/call
mcp-name: notes_create" "$(stateless_call notes_create '{"title":"bench","body":"written under load"}')"
  export BENCH_TOKENS_FILE="$tokens"
  measure_wrk "$1"
}
run_refresh() {
  local pool="$WORK/refresh-tokens"
  "$BIN" token mint --user bench --client "$CLIENT_ID" --scope "mcp:read mcp:write" --refresh --count "$((CONNECTIONS * 2))" \
    | awk '{print $2}' >"$pool"
  wrk_env POST /oauth/token 200 "content-type: application/x-www-form-urlencoded" ""
  export BENCH_REFRESH_FILE="$pool" BENCH_CLIENT_ID="$CLIENT_ID"
  measure_wrk "$1"
}
run_metadata() { wrk_env GET /.well-known/oauth-authorization-server 200 "" ""; measure_wrk "$1"; }
run_flow_full() { measure_flow "$1" full; }
run_flow_signed_in() { measure_flow "$1" signed-in; }

backend() { # name database_url scenarios...
  local name="$1"
  export DATABASE_URL="$2"
  shift 2
  prepare
  local rest
  for entry in "$@"; do
    if [ -n "$ONLY" ] && ! grep -qE -- "$ONLY" <<<"${entry%%=*}"; then continue; fi
    # name=setup, or name=setup=env(1) arguments for the server of this scenario
    rest="${entry#*=}"
    SERVER_ENV=""
    [ "$rest" != "${rest#*=}" ] && SERVER_ENV="${rest#*=}"
    scenario "$name" "${entry%%=*}" "${rest%%=*}"
  done
  SERVER_ENV=""
}

echo "benchmark: $BIN, ${DURATION}s per run, median of $REPS, $CONNECTIONS connections, server on CPU $SERVER_CPUS, load on CPU $LOAD_CPUS" >&2
COMMON=(
  "ceiling: GET /healthz=run_ceiling"
  "(b) tools/call whoami, stateless 2026-07-28=run_stateless"
  "(c) tools/call whoami, legacy sessions (one per connection)=run_session"
  "(d) tools/call notes_create (writes)=run_write"
  "(e) refresh_token grant=run_refresh"
)
# The default logging (no RUST_LOG, pretty lines on stderr, here a file): what a newcomer runs.
backend sqlite "sqlite://$WORK/bench.db?mode=rwc" \
  "${COMMON[@]}" \
  "(b) tools/call whoami, stateless, default logging=run_stateless=-u RUST_LOG -u LOG_FORMAT" \
  "(a) POST /mcp without a token (401)=run_unauthenticated" \
  "(f) GET authorization server metadata=run_metadata" \
  "(g) authorization-code flows, signed in=run_flow_signed_in" \
  "(g) authorization-code flows with login (argon2id)=run_flow_full"
if [ "$POSTGRES" = 1 ]; then
  PG_DB="mcpgw_bench_$$"
  psql "$PG_ADMIN" -qc "create database \"$PG_DB\"" >/dev/null
  backend postgres "${PG_ADMIN%/*}/$PG_DB" "${COMMON[@]}"
fi

# Startup on an existing database (the SQLite one, already migrated).
export DATABASE_URL="sqlite://$WORK/bench.db?mode=rwc"
best_start=999999
for _ in 1 2 3; do start_server; [ "$STARTUP_MS" -lt "$best_start" ] && best_start=$STARTUP_MS; stop_server; done

TABLE=$(
  echo "| backend | scenario | requests/s | p50 ms | p99 ms | errors | peak RSS MB | of it mapped files MB | server CPU µs/req |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  awk -F'|' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $10, $8}' "$ROWS"
)
ratios() {
  awk -F'|' -v best_start="$best_start" '
    $2 ~ /^ceiling/ {ceil[$1] = $3}
    {rows[NR] = $0}
    END {
      for (i = 1; i <= NR; i++) {
        split(rows[i], f, "|")
        if (f[2] ~ /^\((b|c)\)/ && ceil[f[1]] > 0) printf "- %s %s: %.0f%% of the ceiling, p99 %s ms\n", f[1], f[2], 100 * f[3] / ceil[f[1]], f[5]
        if (f[2] ~ /^\(e\)/) printf "- %s refresh: %s/s\n", f[1], f[3]
        if (f[7] > maxrss) maxrss = f[7]
      }
      printf "- highest server peak RSS: %s MB\n- startup to ready on an existing database: %s ms\n", maxrss, best_start
    }' "$ROWS"
}
echo
echo "$TABLE"
echo
ratios

if [ "$WRITE" = 1 ]; then
  {
    echo "# Benchmark results"
    echo
    echo "Written by \`bench/run.sh --write\` on $(date -u +%Y-%m-%d), commit \`$(git rev-parse --short HEAD)\`."
    echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)),"
    echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr); server on CPU $SERVER_CPUS, wrk on CPU $LOAD_CPUS."
    echo "Each row: median of $REPS runs of ${DURATION}s at $CONNECTIONS connections (flows: 8 workers), a freshly"
    echo "started release server per run; peak RSS is the highest of the runs, \"of it mapped files\" the resident"
    echo "pages of the binary and libraries (shared and clean) at the end of a run."
    echo
    echo "$TABLE"
    echo
    echo "Headline (same run):"
    echo
    ratios
  } >bench/RESULTS.md.new
  mv bench/RESULTS.md.new bench/RESULTS.md
fi

ERRORS=$(awk -F'|' '{s += $6} END {print s + 0}' "$ROWS")
if [ "$ERRORS" -gt 0 ]; then
  echo "benchmark scenarios returned $ERRORS errors" >&2
  tail -20 "$WORK/server.log" >&2
  exit 1
fi
