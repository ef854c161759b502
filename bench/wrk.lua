-- One wrk script for every HTTP figure, configured through the environment (bench/load.py sets it):
--   BENCH_METHOD, BENCH_PATH (with "{id}" replaced per request), BENCH_IDS (file, one id a line),
--   BENCH_ONCE ("1": each id is used by one request only; the ids are split between threads),
--   BENCH_BODY (with "{belvo}" replaced by a fresh Belvo session id), BENCH_AUTH (Authorization),
--   BENCH_THREADS, BENCH_NONCE, BENCH_OUT (JSON summary written by done()).
-- The environment, not `-- args`, because done() runs in wrk's main Lua state, which gets no args.

local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local body = os.getenv("BENCH_BODY") or ""
local auth = os.getenv("BENCH_AUTH") or ""
local once = os.getenv("BENCH_ONCE") == "1"
local threads = tonumber(os.getenv("BENCH_THREADS") or "1")
local nonce = os.getenv("BENCH_NONCE") or "0"

local next_tid = 0
function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

local ids, pos, count = {}, 0, 0
local headers = {}

function init(args)
  local file = os.getenv("BENCH_IDS")
  if file and file ~= "" then
    local all = {}
    for line in io.lines(file) do
      if line ~= "" then all[#all + 1] = line end
    end
    -- With BENCH_ONCE each thread takes every threads-th id, so no id is submitted twice.
    for i = 1, #all do
      if not once or (i - 1) % threads == tid then ids[#ids + 1] = all[i] end
    end
  end
  if auth ~= "" then headers["Authorization"] = auth end
  if body ~= "" then headers["Content-Type"] = "application/json" end
end

function request()
  local p = path
  if #ids > 0 then
    pos = pos % #ids + 1
    p = p:gsub("{id}", ids[pos])
  end
  local b = nil
  if body ~= "" then
    count = count + 1
    b = body:gsub("{belvo}", string.format("%s%02d%012d", nonce, tid, count))
  end
  return wrk.format(method, p, headers, b)
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("BENCH_OUT"), "w")
  local e = summary.errors
  out:write(string.format(
    '{"duration_us": %d, "requests": %d, "bytes": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "latency_us": {"min": %d, "max": %d, "mean": %f, ' ..
    '"stdev": %f}, "percentiles_us": [',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.min, latency.max, latency.mean, latency.stdev))
  local ps = {}
  for p = 1, 99 do ps[#ps + 1] = p end
  for _, p in ipairs({99.5, 99.9, 99.99, 100}) do ps[#ps + 1] = p end
  for i, p in ipairs(ps) do
    out:write(string.format('%s[%s, %d]', i > 1 and ", " or "", p, latency:percentile(p)))
  end
  out:write("]}\n")
  out:close()
end
