-- wrk script for bench/run.py.
--   wrk ... -s bench/wrk.lua <url> -- <threads> [<bodies file>]
-- With a bodies file (lines "<X-Signature>\t<JSON body>"), every thread POSTs its own share of
-- the lines to /webhook in turn, cycling; without one, it GETs the URL's path. done() prints one
-- line "BENCH_JSON {...}" with the counts and latency percentiles (microseconds).

local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local requests = nil
local position = 0

function init(args)
  local threads = tonumber(args[1] or "1")
  local path = args[2]
  if path == nil or path == "" then
    return
  end
  requests = {}
  local index = 0
  for line in io.lines(path) do
    if index % threads == id then
      local tab = string.find(line, "\t", 1, true)
      local signature = string.sub(line, 1, tab - 1)
      local body = string.sub(line, tab + 1)
      requests[#requests + 1] = wrk.format("POST", "/webhook", {
        ["Content-Type"] = "application/json",
        ["X-Signature"] = signature,
      }, body)
    end
    index = index + 1
  end
  if #requests == 0 then
    requests = nil
  end
end

function request()
  if requests == nil then
    return wrk.request()
  end
  position = position % #requests + 1
  return requests[position]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "mean": %.1f, "stdev": %.1f, "max": %d, ' ..
    '"p50": %d, "p90": %d, "p99": %d, "p999": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
