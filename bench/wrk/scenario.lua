-- wrk script for the session benchmark.
-- Arguments after "--": <path> [cookie file]. With a cookie file (one "name=value" per line) every
-- request carries the next cookie of the pool, round robin, so the load spreads over many sessions
-- the way real users do; without one the request is static and wrk builds it only once.

local requests = {}
local count = 0
local index = 0

function init(args)
  local path = args[1] or "/"
  local file = args[2]
  if file ~= nil and file ~= "" then
    for line in io.lines(file) do
      if line ~= "" then
        count = count + 1
        -- Pre-formatted once here, so request() costs wrk a table lookup and not a string build.
        requests[count] = wrk.format("GET", path, { ["Cookie"] = line })
      end
    end
  end
  if count == 0 then
    wrk.path = path
  else
    -- Defined only for pooled cookies: wrk treats a script without request() as static and cheaper.
    request = function()
      index = index % count + 1
      return requests[index]
    end
  end
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d," ..
    "\"errors\":{\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d}," ..
    "\"latency_us\":{\"p50\":%d,\"p90\":%d,\"p99\":%d,\"mean\":%.1f,\"max\":%d}}\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
