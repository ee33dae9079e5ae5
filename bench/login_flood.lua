-- S4 login flood: POST /auth/login with a wrong password, so every request costs a full password hash.
-- Used by bench/run.sh as: wrk -t1 -c50 -s bench/login_flood.lua http://HOST:PORT/auth/login
-- Counts response status codes per thread and prints them in done() as "FLOOD ..." lines for run.sh to parse.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username":"admin","password":"wrong-password"}'

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

-- Global (not local) so done() can read it from each thread with thread:get().
counts = {}

function response(status, headers, body)
   counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
   local secs = summary.duration / 1e6
   local errs = summary.errors
   io.write(string.format("FLOOD requests %d seconds %.2f rate %.1f\n",
      summary.requests, secs, summary.requests / secs))
   io.write(string.format("FLOOD errors connect %d read %d write %d timeout %d\n",
      errs.connect, errs.read, errs.write, errs.timeout))
   io.write(string.format("FLOOD latency_ms p50 %.2f p99 %.2f\n",
      latency:percentile(50) / 1000, latency:percentile(99) / 1000))
   local merged = {}
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("counts") or {}) do
         merged[status] = (merged[status] or 0) + n
      end
   end
   local codes = {}
   for status in pairs(merged) do table.insert(codes, status) end
   table.sort(codes)
   for _, status in ipairs(codes) do
      io.write(string.format("FLOOD status %d %d\n", status, merged[status]))
   end
end
