-- wrk script for bench/run.sh. One request shape per run, from the environment:
--   BENCH_METHOD, BENCH_PATH, BENCH_BODY, BENCH_HEADERS (one "name: value" per line),
--   BENCH_EXPECT (the status every answer must have; anything else counts as an error),
--   BENCH_REFRESH_FILE (optional): one refresh token per line; each request redeems one and the token
--   in its answer joins the pool, so every connection rotates its own chain (grant_type=refresh_token).
--   BENCH_SESSIONS_FILE (optional): one Mcp-Session-Id per line; requests take them in turn.
--   BENCH_TOKENS_FILE (optional): one bearer token per line (each its own user); requests take them in turn.
--   BENCH_UNIQUE_IDS (optional): each request gets a JSON-RPC id of its own (the first "id":N of the body), for
--   servers that match answers to requests by id within a session when two connections share one.
-- A 200 whose body is a tool result with "isError":true (a tool that refused) counts as an error too.
--   BENCH_THREADS: wrk's -t, to share the refresh tokens between threads.
--   BENCH_PACE_MS (optional): each connection waits on average this long (uniformly 0 to twice it) after an
--   answer before its next request, so the load is a steady pace below saturation rather than as fast as
--   the server answers.
-- done() prints: RESULT <requests/s> <p50 ms> <p99 ms> <errors> <requests>
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
  table.insert(threads, thread)
end

function init(args)
  unexpected = 0
  expect = tonumber(os.getenv("BENCH_EXPECT") or "200")
  local headers = {}
  for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
    local name, value = string.match(line, "^([^:]+):%s*(.*)$")
    if name then headers[name] = value end
  end
  local path = os.getenv("BENCH_PATH") or "/"
  local refresh_file = os.getenv("BENCH_REFRESH_FILE")
  if refresh_file then
    local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
    client_id = os.getenv("BENCH_CLIENT_ID")
    refresh_headers = headers
    refresh_path = path
    pool = {}
    local i = 0
    for line in io.lines(refresh_file) do
      if (i % nthreads) == (thread_id - 1) then table.insert(pool, line) end
      i = i + 1
    end
  elseif os.getenv("BENCH_SESSIONS_FILE") or os.getenv("BENCH_TOKENS_FILE") then
    local file, header, prefix = os.getenv("BENCH_SESSIONS_FILE"), "mcp-session-id", ""
    if not file then file, header, prefix = os.getenv("BENCH_TOKENS_FILE"), "authorization", "Bearer " end
    sessions = {}
    for line in io.lines(file) do
      headers[header] = prefix .. line
      if os.getenv("BENCH_UNIQUE_IDS") then
        local own = {}
        for k, v in pairs(headers) do own[k] = v end
        table.insert(sessions, own)
      else
        table.insert(sessions, wrk.format(os.getenv("BENCH_METHOD"), path, headers, os.getenv("BENCH_BODY")))
      end
    end
    turn = 0
    if os.getenv("BENCH_UNIQUE_IDS") then
      unique_method, unique_path, unique_count = os.getenv("BENCH_METHOD"), path, 0
      unique_body = os.getenv("BENCH_BODY")
    end
  else
    fixed = wrk.format(os.getenv("BENCH_METHOD") or "GET", path, headers, os.getenv("BENCH_BODY"))
  end
end

local pace = tonumber(os.getenv("BENCH_PACE_MS") or "0")
if pace > 0 then
  -- Uniform over 0..2×pace: on average pace, and the connections drift apart instead of sending in
  -- lockstep bursts (which would measure a queue of all of them at once).
  function delay() return math.random(0, 2 * pace) end
end

function request()
  if fixed then return fixed end
  if sessions then
    turn = turn % #sessions + 1
    if unique_body then
      unique_count = unique_count + 1
      local body = string.gsub(unique_body, '"id":%d+', '"id":' .. (thread_id * 1000000000 + unique_count), 1)
      return wrk.format(unique_method, unique_path, sessions[turn], body)
    end
    return sessions[turn]
  end
  local token = table.remove(pool) or "pool-exhausted"
  local body = "grant_type=refresh_token&client_id=" .. client_id .. "&refresh_token=" .. token
  return wrk.format("POST", refresh_path, refresh_headers, body)
end

function response(status, headers, body)
  if status ~= expect or (body and string.find(body, '"isError":true', 1, true)) then
    unexpected = unexpected + 1
  end
  if pool and status == 200 then
    local token = string.match(body, '"refresh_token":"([^"]+)"')
    if token then table.insert(pool, token) end
  end
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  for _, thread in ipairs(threads) do errors = errors + thread:get("unexpected") end
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors, summary.requests))
end
