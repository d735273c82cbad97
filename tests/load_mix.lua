-- The request mix of `make load` (tests/load.py), for wrk.
--
-- tests/load.py writes the requests into a file beside this script (`requests.lua`), one
-- table per request. Every request carries its own x-ms-client-request-id, which the vault
-- endpoint echoes and records as the activity entry's correlation id: each thread writes the
-- id and status of every answer it gets, so the answers can be matched to the entries
-- written, one by one.
--
-- Arguments (after --): the directory of requests.lua and of the answer files, and the
-- phase's name.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("number", #threads)
end

function init(args)
  directory, phase = args[1], args[2]
  mix = dofile(directory .. "/requests.lua")
  sent = 0
  statuses = {}
  answers = io.open(string.format("%s/answers-%s-%d.txt", directory, phase, number), "w")
end

function request()
  sent = sent + 1
  local chosen = mix.requests[(sent + number) % #mix.requests + 1]
  local headers = {
    ["Host"] = chosen.host,
    ["Authorization"] = mix.authorization,
    ["x-ms-client-request-id"] = string.format("load-%s-%d-%d", phase, number, sent),
  }
  if chosen.body then
    headers["Content-Type"] = "application/json"
  end
  return wrk.format(chosen.method, chosen.path, headers, chosen.body)
end

function response(status, headers, body)
  local id = headers["x-ms-client-request-id"] or headers["X-Ms-Client-Request-Id"] or "-"
  answers:write(id, " ", status, "\n")
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counted = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      counted[tostring(status)] = (counted[tostring(status)] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(counted) do
    table.insert(parts, string.format('"%s": %d', status, count))
  end
  local errors = summary.errors
  io.write(string.format(
    'LOAD-SUMMARY {"requests": %d, "seconds": %.3f, "statuses": {%s}, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, '
      .. '"p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, table.concat(parts, ", "),
    errors.connect, errors.read, errors.write, errors.timeout,
    latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3
  ))
end
