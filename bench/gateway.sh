#!/usr/bin/env bash
# The gateway benchmark: what mcp-gateway adds to a tools/call it forwards to an upstream MCP server, next
# to the same call made directly and the same call through other MCP gateways, all in one run.
#
#   bench/gateway.sh             10 s per route at 64 connections, with the peers
#   bench/gateway.sh --smoke     1 s per route, mcp-gateway only, debug binary: fails only on errors (CI)
#
# Options: --duration S, --connections C, --pace-ms P, --no-peers (mcp-gateway's routes only). BENCH_BIN=path
# runs that binary instead of building one.
#
# Closed loop (as fast as each route answers) the p99 of a saturated route is mostly its queue. So the
# routes of mcp-gateway are also measured paced: each connection sends its next call on average P ms
# (default 40; uniformly 0 to 2P, so the connections do not send in lockstep) after the last answer, the
# same load for the direct and the proxied route, well below either's saturation; the added p99 there is
# what the gateway adds to one call.
#
# Upstreams: a second mcp-gateway instance (its built-in tool `whoami`, cheap, so the proxy's cost dominates)
# as the HTTP upstream, and @modelcontextprotocol/server-everything over stdio (tool `echo`), pinned in
# tests/gateway. Peers, pinned in bench/gateway (bench/gateway/install.sh): supergateway (npm, stdio ->
# Streamable HTTP, no authentication; stateful, one session per connection), FastMCP's proxy
# (bench/gateway/fastmcp_proxy.py, its JWT bearer verifier on; its default fresh backend session per request
# and its opt-in shared session) and IBM's ContextForge (its JWT authentication on, otherwise its defaults
# but for its rate limiter, which answers 429 past 100 MCP calls a minute and then locks the account out;
# stdio through its own translate bridge). mcp-gateway gets the sessionless 2026-07-28 tools/call; the peers,
# whose SDKs refuse that shape, a sessionless 2025-11-25 one (supergateway: within a session).
#
# The proxy is pinned to one core; wrk and every upstream to the other, so "direct" and "proxied" see the
# upstream in the same place. CPU per request is utime+stime of the proxy's own processes only (never the
# stdio child it runs, nor the upstream) over the run, divided by the requests; RSS is its VmHWM.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

DURATION=10 CONNECTIONS=64 SMOKE=0 PACE_MS=40 PEERS_ON=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --pace-ms) PACE_MS="$2"; shift 2 ;;
    --no-peers) PEERS_ON=0; shift ;;
    --smoke) SMOKE=1; DURATION=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

for tool in wrk taskset setsid node npm curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
if [ "$SMOKE" = 1 ]; then
  BIN="${BENCH_BIN:-target/debug/mcp-gateway}"
  [ -x "$BIN" ] || cargo build --quiet
else
  [ -n "${BENCH_BIN:-}" ] || cargo build --release --locked --quiet
  BIN="${BENCH_BIN:-target/release/mcp-gateway}"
fi
BIN="$(realpath "$BIN")"
EVERYTHING="$(tests/gateway/install.sh)/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
[ "$SMOKE" = 1 ] || [ "$PEERS_ON" = 0 ] || PEERS="$(bench/gateway/install.sh)"
if [ "$(nproc)" -ge 2 ]; then SERVER_CPUS=0 LOAD_CPUS=1; else SERVER_CPUS=0 LOAD_CPUS=0; fi
NODE="$(command -v node)" TASKSET="$(command -v taskset)"
# The stdio upstream, kept off the proxy's core wherever a proxy starts it.
STDIO_UPSTREAM=("$TASKSET" -c "$LOAD_CPUS" "$NODE" "$EVERYTHING" stdio)
HZ=$(getconf CLK_TCK)
WORK=$(mktemp -d)
ROWS="$WORK/rows"
NOTES="$WORK/notes"
: >"$ROWS"
: >"$NOTES"

STARTED=() # process ids, each the leader of a process group of its own (setsid)
cleanup() {
  local pid
  for pid in "${STARTED[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
  for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
cpu_ticks() { local pid sum=0; for pid in "$@"; do sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$sum"; }
peak_rss_kb() { local pid sum=0; for pid in "$@"; do sum=$((sum + $(awk '/VmHWM/ {print $2}' "/proc/$pid/status"))); done; echo "$sum"; }

# start NAME CPUS PROGRAM ARGS...: runs it in a process group of its own (so that stopping it stops what it
# spawned too), output in $WORK/NAME.log; sets PID.
start() {
  local name="$1" cpus="$2"
  shift 2
  setsid "$TASKSET" -c "$cpus" "$@" >>"$WORK/$name.log" 2>&1 &
  PID=$!
  STARTED+=("$PID")
}
stop() { kill -- "-$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# wait_http URL SECONDS: until something answers HTTP there.
wait_http() {
  local deadline=$((SECONDS + $2))
  while [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 000 ]; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# The environment of an instance of our binary (server and CLI): mcpgw_env DB PORT sets MCPGW_ENV. Limits off:
# the load comes from one address and one person.
mcpgw_env() {
  MCPGW_ENV=(PORT="$2" AUTH_ISSUER="http://127.0.0.1:$2" DATABASE_URL="sqlite://$WORK/$1.db?mode=rwc" RATE_LIMITS=off
    MCP_MAX_SESSIONS_PER_USER=10000 RUST_LOG=error LOG_FORMAT=json PASSWORD_HASH_COST=low UPSTREAM_RELOAD_SECS=1)
}
mcpgw() { env "${MCPGW_ENV[@]}" "$BIN" "$@"; }
# A user, a client and an access token on the database of MCPGW_ENV; prints the token.
mcpgw_token() {
  local client
  mcpgw user add bench --password "bench-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')" >/dev/null
  client=$(mcpgw client add --name bench --redirect-uri http://127.0.0.1:9/callback | awk '/^client_id:/ {print $2}')
  mcpgw token mint --user bench --client "$client" --scope "mcp:read mcp:write" --ttl 86400
}

wrk_env() { # method path expect headers body
  export BENCH_METHOD="$1" BENCH_PATH="$2" BENCH_EXPECT="$3" BENCH_HEADERS="$4" BENCH_BODY="$5" BENCH_THREADS=1
  unset BENCH_REFRESH_FILE BENCH_CLIENT_ID BENCH_SESSIONS_FILE BENCH_TOKENS_FILE BENCH_UNIQUE_IDS
}
ACCEPT="content-type: application/json
accept: application/json, text/event-stream"
# The sessionless tools/call of the 2026-07-28 revision (mcp-gateway's cheapest): call_modern TOKEN TOOL ARGS.
call_modern() {
  wrk_env POST /mcp 200 "$ACCEPT
authorization: Bearer $1
mcp-protocol-version: 2026-07-28
mcp-method: tools/call
mcp-name: $2" "$(printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s","arguments":%s,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}' "$2" "$3")"
}
# A 2025-11-25 tools/call, for the peers (their SDKs do not take the 2026-07-28 shape): call_legacy PATH
# HEADERS TOOL ARGS. Without a session where the peer serves stateless HTTP, else in BENCH_SESSIONS_FILE's.
call_legacy() {
  wrk_env POST "$1" 200 "$ACCEPT
${2:+$2
}mcp-protocol-version: 2025-11-25" "$(printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s","arguments":%s}}' "$3" "$4")"
}

# probe URL: one request of the prepared shape; fails (printing the answer) unless it is a 200 tool result.
probe() {
  local args=() line session
  while IFS= read -r line; do [ -n "$line" ] && args+=(-H "$line"); done <<<"$BENCH_HEADERS"
  if [ -n "${BENCH_SESSIONS_FILE:-}" ]; then
    session=$(head -1 "$BENCH_SESSIONS_FILE")
    args+=(-H "mcp-session-id: $session")
  fi
  PROBE=$(curl -s -m 30 -w '\n%{http_code}' -X "$BENCH_METHOD" "${args[@]}" --data-raw "$BENCH_BODY" "$1$BENCH_PATH")
  [ "$(tail -1 <<<"$PROBE")" = 200 ] && grep -q '"result"' <<<"$PROBE" && ! grep -q '"isError":true' <<<"$PROBE"
}

# measure ROUTE URL PIDS...: probes, then runs wrk with the prepared shape; appends a row.
measure() {
  local route="$1" url="$2" before after rps p50 p99 errors requests cpu_us=0
  shift 2
  if ! probe "$url"; then
    note "$route: not measured, a single call failed: $(tr '\n' ' ' <<<"$PROBE" | cut -c1-300)"
    return 0
  fi
  before=$(cpu_ticks "$@")
  read -r _ rps p50 p99 errors requests < <(taskset -c "$LOAD_CPUS" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
    --timeout 10s -s bench/load.lua "$url" | awk '/^RESULT/')
  after=$(cpu_ticks "$@")
  [ "${requests:-0}" -gt 0 ] && cpu_us=$(((after - before) * 1000000 / HZ / requests))
  echo "$route|$rps|$p50|$p99|$errors|$cpu_us|$(($(peak_rss_kb "$@") / 1024))|$requests" >>"$ROWS"
  printf '  %-34s %9s req/s  p50 %8s ms  p99 %8s ms  errors %s\n' "$route" "$rps" "$p50" "$p99" "$errors" >&2
}
note() { echo "- $*" >>"$NOTES"; echo "  note: $*" >&2; }

# open_sessions URL N [HEADER]: N initialized legacy sessions (in parallel: each may start a process);
# their ids in $WORK/sessions.
open_sessions() {
  local url="$1" n="$2" header="${3:-x-bench: 1}"
  seq 1 "$n" | xargs -P 8 -n 1 sh -c '
    s=$(curl -s -m 60 -D - -o /dev/null "$1" -H "$2" -H "content-type: application/json" \
      -H "accept: application/json, text/event-stream" \
      -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"1\"}}}" |
      awk "tolower(\$1) == \"mcp-session-id:\" {print \$2}" | tr -d "\r")
    curl -s -m 60 -o /dev/null "$1" -H "$2" -H "content-type: application/json" -H "accept: application/json, text/event-stream" \
      -H "mcp-session-id: $s" -H "mcp-protocol-version: 2025-11-25" -d "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"
    echo "$s"' _ "$url" "$header" >"$WORK/sessions"
  [ "$(grep -c . "$WORK/sessions")" = "$n" ]
}

echo "gateway benchmark: $BIN, ${DURATION}s per route, $CONNECTIONS connections, proxy on CPU $SERVER_CPUS," \
  "wrk and upstreams on CPU $LOAD_CPUS" >&2

# --- mcp-gateway, and the direct baseline -------------------------------------------------------------------
UP_PORT=$(free_port)
mcpgw_env up "$UP_PORT"
UP_TOKEN=$(mcpgw_token)
start upstream "$LOAD_CPUS" env "${MCPGW_ENV[@]}" "$BIN"
UP_PID=$PID
UP_URL="http://127.0.0.1:$UP_PORT"
wait_http "$UP_URL/readyz" 30 || { cat "$WORK/upstream.log" >&2; exit 1; }
# The third upstream of the RSS target: server-everything over Streamable HTTP.
EV_PORT=$(free_port)
start everything-http "$LOAD_CPUS" env PORT="$EV_PORT" "$NODE" "$EVERYTHING" streamableHttp
wait_http "http://127.0.0.1:$EV_PORT/mcp" 30 || { cat "$WORK/everything-http.log" >&2; exit 1; }

GW_PORT=$(free_port)
GW_URL="http://127.0.0.1:$GW_PORT"
mcpgw_env gw "$GW_PORT"
GW_TOKEN=$(mcpgw_token)
mcpgw upstream add own --url "$UP_URL/mcp" --header "Authorization: Bearer $UP_TOKEN" >/dev/null
STDIO_ARGS=()
for a in "${STDIO_UPSTREAM[@]:1}"; do STDIO_ARGS+=(--arg "$a"); done
mcpgw upstream add ev --command "${STDIO_UPSTREAM[0]}" "${STDIO_ARGS[@]}" >/dev/null
mcpgw upstream add evhttp --url "http://127.0.0.1:$EV_PORT/mcp" >/dev/null
start mcp-gateway "$SERVER_CPUS" env "${MCPGW_ENV[@]}" "$BIN"
GW_PID=$PID
wait_http "$GW_URL/readyz" 30 || { cat "$WORK/mcp-gateway.log" >&2; exit 1; }
for _ in $(seq 1 300); do
  connected=$(curl -s "$GW_URL/readyz" | python3 -c 'import json,sys
print(sum(u.get("state") == "connected" for u in json.load(sys.stdin).get("upstreams", [])))' || echo 0)
  [ "$connected" = 3 ] && break
  sleep 0.1
done
[ "$connected" = 3 ] || { echo "upstreams not connected: $(curl -s "$GW_URL/readyz")" >&2; exit 1; }

call_modern "$UP_TOKEN" whoami '{}'
measure "HTTP upstream direct" "$UP_URL" "$UP_PID"
call_modern "$GW_TOKEN" own__whoami '{}'
measure "mcp-gateway → HTTP upstream" "$GW_URL" "$GW_PID"
call_modern "$GW_TOKEN" ev__echo '{"message":"hi"}'
measure "mcp-gateway → stdio" "$GW_URL" "$GW_PID"
if [ "$SMOKE" = 0 ]; then
  export BENCH_PACE_MS="$PACE_MS"
  call_modern "$UP_TOKEN" whoami '{}'
  measure "HTTP upstream direct, paced" "$UP_URL" "$UP_PID"
  call_modern "$GW_TOKEN" own__whoami '{}'
  measure "mcp-gateway → HTTP upstream, paced" "$GW_URL" "$GW_PID"
  call_modern "$GW_TOKEN" ev__echo '{"message":"hi"}'
  measure "mcp-gateway → stdio, paced" "$GW_URL" "$GW_PID"
  unset BENCH_PACE_MS
fi

# --- the peers ----------------------------------------------------------------------------------------------
peer_supergateway() {
  local port url
  port=$(free_port)
  url="http://127.0.0.1:$port"
  # Stateful: its stateless mode starts a process per request. One session (and child) per connection, as
  # each client would have; two connections may share a session at a moment, hence unique JSON-RPC ids.
  start supergateway "$SERVER_CPUS" "$NODE" "$PEERS/node_modules/supergateway/dist/index.js" \
    --stdio "${STDIO_UPSTREAM[*]}" --outputTransport streamableHttp --stateful --port "$port" --logLevel none
  local pid=$PID
  wait_http "$url/mcp" 60 || { note "supergateway did not start: $(tail -3 "$WORK/supergateway.log")"; return; }
  open_sessions "$url/mcp" "$CONNECTIONS" || { note "supergateway: could not open $CONNECTIONS sessions"; stop "$pid"; return; }
  call_legacy /mcp "" echo '{"message":"hi"}'
  export BENCH_SESSIONS_FILE="$WORK/sessions" BENCH_UNIQUE_IDS=1
  measure "supergateway → stdio (no auth)" "$url" "$pid"
  stop "$pid"
}

# fastmcp_row ROUTE TOOL ARGS BACKEND...: FastMCP's proxy in front of one backend (see fastmcp_proxy.py).
fastmcp_row() {
  local route="$1" tool="$2" args="$3" port url
  shift 3
  port=$(free_port)
  url="http://127.0.0.1:$port"
  rm -f "$WORK/fastmcp.token"
  start fastmcp "$SERVER_CPUS" "$PEERS/fastmcp/bin/python" bench/gateway/fastmcp_proxy.py "$port" "$WORK/fastmcp.token" "$@"
  local pid=$PID
  wait_http "$url/mcp" 60 || { note "$route: FastMCP did not start: $(tail -3 "$WORK/fastmcp.log")"; return; }
  call_legacy /mcp "authorization: Bearer $(cat "$WORK/fastmcp.token")" "$tool" "$args"
  measure "$route" "$url" "$pid"
  stop "$pid"
}

# ContextForge keeps its state in its database; upstreams are registered through its admin API.
contextforge_start() {
  local dir="$WORK/contextforge" secret
  mkdir -p "$dir"
  secret="$(head -c 32 /dev/urandom | base64 | tr -d '/+=')"
  CF_PORT=$(free_port)
  CF_URL="http://127.0.0.1:$CF_PORT"
  CF_ENV=(JWT_SECRET_KEY="$secret" AUTH_ENCRYPTION_SECRET="$(head -c 32 /dev/urandom | base64 | tr -d '/+=')"
    PLATFORM_ADMIN_EMAIL=admin@example.com PLATFORM_ADMIN_PASSWORD="Bench-$secret"
    BASIC_AUTH_PASSWORD="Basic-$secret" DATABASE_URL="sqlite:///$dir/contextforge.db"
    MCPGATEWAY_UI_ENABLED=false MCPGATEWAY_ADMIN_API_ENABLED=true SSRF_ALLOW_LOCALHOST=true LOG_LEVEL=ERROR
    RATE_LIMITING_ENABLED=false)
  start contextforge "$SERVER_CPUS" env -C "$dir" "${CF_ENV[@]}" "$PEERS/contextforge/bin/mcpgateway" \
    --host 127.0.0.1 --port "$CF_PORT"
  CF_PID=$PID
  wait_http "$CF_URL/health" 180 || { note "ContextForge did not start: $(tail -3 "$WORK/contextforge.log")"; return 1; }
  # Its token utility, signing with the instance's secret: the platform admin, 1 day.
  CF_TOKEN=$(env -C "$dir" "${CF_ENV[@]}" "$PEERS/contextforge/bin/python" -m mcpgateway.utils.create_jwt_token \
    --username admin@example.com --exp 1440 --secret "$secret" 2>/dev/null | tail -1)
}
cf_api() { curl -s -m 60 -H "Authorization: Bearer $CF_TOKEN" -H 'content-type: application/json' "$@"; }
# contextforge_row ROUTE UPSTREAM_NAME UPSTREAM_URL TOOL ARGS [BEARER] EXTRA_PIDS...: registers the upstream,
# a virtual server with its tool, and measures a call to that server's MCP endpoint.
contextforge_row() {
  local route="$1" name="$2" target="$3" tool="$4" args="$5" bearer="$6" auth="" gateway tool_id tool_name server
  shift 6
  [ -n "$bearer" ] && auth=",\"auth_type\":\"bearer\",\"auth_token\":\"$bearer\""
  cf_api -X POST "$CF_URL/gateways" -d "{\"name\":\"$name\",\"url\":\"$target\",\"transport\":\"STREAMABLEHTTP\"$auth}" \
    >"$WORK/cf-gateway.json"
  gateway=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("id", ""))' "$WORK/cf-gateway.json" || true)
  read -r tool_id tool_name < <(cf_api "$CF_URL/tools" | python3 -c 'import json,sys
for t in json.load(sys.stdin):
    if t.get("gatewayId") == sys.argv[1] and t.get("originalName") == sys.argv[2]:
        print(t["id"], t["name"])' "$gateway" "$tool") || true
  if [ -z "${tool_id:-}" ]; then
    note "$route: ContextForge did not list the tool $tool: $(head -c 300 "$WORK/cf-gateway.json")"
    return
  fi
  server=$(cf_api -X POST "$CF_URL/servers" -d "{\"server\":{\"name\":\"bench-$name\",\"associated_tools\":[\"$tool_id\"]}}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])') || { note "$route: no virtual server"; return; }
  call_legacy "/servers/$server/mcp" "authorization: Bearer $CF_TOKEN" "$tool_name" "$args"
  measure "$route" "$CF_URL" "$CF_PID" "$@"
}
peer_contextforge() {
  contextforge_start || return 0
  contextforge_row "contextforge → HTTP upstream" own "$UP_URL/mcp" whoami '{}' "$UP_TOKEN"
  # It registers only remote servers; a stdio server goes behind its translate bridge, a process of its own
  # whose CPU and memory count as the proxy's too.
  local port
  port=$(free_port)
  start contextforge-translate "$SERVER_CPUS" env -C "$WORK/contextforge" "${CF_ENV[@]}" "$PEERS/contextforge/bin/python" -m mcpgateway.translate \
    --stdio "${STDIO_UPSTREAM[*]}" --expose-streamable-http --host 127.0.0.1 --port "$port"
  local bridge=$PID
  if wait_http "http://127.0.0.1:$port/mcp" 60; then
    contextforge_row "contextforge → stdio (translate)" ev "http://127.0.0.1:$port/mcp" echo '{"message":"hi"}' "" "$bridge"
  else
    note "ContextForge's translate bridge did not start: $(tail -3 "$WORK/contextforge-translate.log")"
  fi
  stop "$bridge"
  stop "$CF_PID"
}

if [ "$SMOKE" = 0 ] && [ "$PEERS_ON" = 1 ]; then
  peer_supergateway
  fastmcp_row "fastmcp proxy → HTTP upstream" whoami '{}' http "$UP_URL/mcp" "Bearer $UP_TOKEN"
  fastmcp_row "fastmcp proxy → stdio" echo '{"message":"hi"}' stdio "${STDIO_UPSTREAM[@]}"
  export FASTMCP_SHARED=1 # its opt-in: one backend session for every request
  fastmcp_row "fastmcp proxy, shared session → HTTP upstream" whoami '{}' http "$UP_URL/mcp" "Bearer $UP_TOKEN"
  fastmcp_row "fastmcp proxy, shared session → stdio" echo '{"message":"hi"}' stdio "${STDIO_UPSTREAM[@]}"
  unset FASTMCP_SHARED
  peer_contextforge
fi
GW_RSS_MB=$(($(peak_rss_kb "$GW_PID") / 1024))

# --- report -------------------------------------------------------------------------------------------------
echo
echo "| route | requests/s | p50 ms | p99 ms | errors | proxy CPU µs/req | peak RSS MB |"
echo "|---|---:|---:|---:|---:|---:|---:|"
awk -F'|' '$8 == 0 {printf "| %s | no call answered within the run | | | | | %s |\n", $1, $7; next}
  {printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7}' "$ROWS"
echo
echo "CPU and RSS: the proxy's own processes (the direct row: the upstream itself). $CONNECTIONS connections, ${DURATION}s."
# Rows: route|rps|p50|p99|errors|cpu|rss|requests. A peer with more than 1% errors, or none answered, is no
# yardstick.
awk -F'|' -v gw_rss="$GW_RSS_MB" -v conns="$CONNECTIONS" -v pace="$PACE_MS" '
  function ratio(ours, peer) {
    if (!(ours in cpu)) return
    if (peer == "") { printf "- %s: no peer measured to compare with\n", ours; return }
    printf "- our CPU per proxied call / best peer'"'"'s, %s vs %s: %s / %s µs = %.3f (target ≤ 0.1)\n", ours, peer,
      cpu[ours], cpu[peer], (cpu[peer] > 0 ? cpu[ours] / cpu[peer] : 0)
  }
  { p99[$1] = $4; cpu[$1] = $6; order[NR] = $1 }
  $1 ~ /^(mcp-gateway|HTTP upstream direct)/ || $8 == 0 || $5 > $8 / 100 { next }
  $1 ~ /HTTP upstream$/ && (best_http == "" || $6 < cpu[best_http]) { best_http = $1 }
  $1 ~ /stdio/ && (best_stdio == "" || $6 < cpu[best_stdio]) { best_stdio = $1 }
  END {
    d = "HTTP upstream direct"
    for (i = 1; i <= NR; i++)
      if ((d in p99) && order[i] ~ /HTTP upstream$/ && order[i] != d && p99[order[i]] > 0)
        printf "- added p99, %s: %.3f ms (%s − %s)%s\n", order[i], p99[order[i]] - p99[d], p99[order[i]], p99[d],
          (order[i] ~ /^mcp-gateway/ ? " (closed loop: mostly queueing at saturation)" : "")
    pd = "HTTP upstream direct, paced"; pg = "mcp-gateway → HTTP upstream, paced"
    if ((pd in p99) && (pg in p99))
      printf "- added p99 at the same paced load (%s connections, next call on average %s ms after an answer): %.3f ms (%s − %s) (target ≤ 5 ms)\n",
        conns, pace, p99[pg] - p99[pd], p99[pg], p99[pd]
    ratio("mcp-gateway → HTTP upstream", best_http)
    ratio("mcp-gateway → stdio", best_stdio)
    printf "- mcp-gateway peak RSS with 3 upstreams (HTTP, stdio, HTTP) after the load: %s MB (target ≤ 60 MB)\n", gw_rss
  }' "$ROWS"
cat "$NOTES"

ERRORS=$(awk -F'|' '$1 ~ /^(mcp-gateway|HTTP upstream direct)/ {s += $5} END {print s + 0}' "$ROWS")
OURS=$(grep -c '^mcp-gateway\|^HTTP upstream direct' "$ROWS" || true)
WANTED=3
[ "$SMOKE" = 1 ] || WANTED=6
if [ "$ERRORS" -gt 0 ] || [ "$OURS" != "$WANTED" ]; then
  echo "mcp-gateway routes: $ERRORS errors, $OURS of $WANTED measured" >&2
  tail -20 "$WORK/mcp-gateway.log" >&2
  exit 1
fi
