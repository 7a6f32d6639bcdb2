-- wrk script for bench/loadgen.py: POSTs one signed body with a unique X-GitHub-Delivery per
-- request, tallies response statuses per thread, and prints a parseable summary in done().
-- Arguments (after `--`): BODY_FILE SIGNATURE DELIVERY_PREFIX

local threads = {}          -- main state only: every thread, for done()
local counter = 0           -- per thread: requests built so far
local prefix, before, after -- the request is before .. delivery id .. after

function setup(thread)
   table.insert(threads, thread)
   thread:set("stream", #threads)
   thread:set("statuses", {})
end

function init(args)
   local file = assert(io.open(args[1], "rb"))
   local body = file:read("*a")
   file:close()
   prefix = args[3]
   before = table.concat({
      "POST " .. wrk.path .. " HTTP/1.1",
      "Host: " .. wrk.host .. ":" .. wrk.port,
      "Content-Type: application/json",
      "User-Agent: GitHub-Hookshot/bench",
      "X-GitHub-Event: pull_request",
      "X-Hub-Signature-256: " .. args[2],
      "Content-Length: " .. #body,
      "X-GitHub-Delivery: ",
   }, "\r\n")
   after = "\r\n\r\n" .. body
end

function request()
   counter = counter + 1
   -- same shape as bench/payload.py delivery_id(): prefix-stream-counter
   return before .. string.format("%s-%04x-%012x", prefix, stream, counter) .. after
end

function response(status, _, _)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, _)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
   io.write(string.format("BENCH_LATENCY_US p50=%d p99=%d max=%d\n",
      latency:percentile(50), latency:percentile(99), latency.max))
   local totals = {}
   for _, thread in ipairs(threads) do
      for code, n in pairs(thread:get("statuses")) do
         totals[code] = (totals[code] or 0) + n
      end
   end
   local parts = {}
   for code, n in pairs(totals) do
      table.insert(parts, string.format("%d=%d", code, n))
   end
   io.write("BENCH_STATUS " .. table.concat(parts, " ") .. "\n")
end
