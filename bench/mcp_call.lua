-- S3: one MCP JSON-RPC `tools/call` of add(5, 3) per request, over Streamable HTTP (stateless, JSON responses).
-- Used by bench/mcp.sh as:
--   MCP_TOOL=add [MCP_TOKEN=...] wrk -t2 -c16 -d5s -s bench/mcp_call.lua http://HOST:PORT/mcp
-- MCP_TOOL   the tool to call (required): `add` on the upstream directly, `mcp__add` through Warden's /mcp
-- MCP_TOKEN  optional bearer token, sent as "Authorization: Bearer ..." when set and not empty
-- Headers: Content-Type: application/json, Accept: application/json, text/event-stream,
--          MCP-Protocol-Version: 2025-06-18. Every request carries its own JSON-RPC id (unique across threads).
-- done() prints, for mcp.sh to parse:
--   MCP status CODE N             responses per HTTP status code
--   MCP result8 N                 responses whose body holds "structuredContent":{"result":8}
--   MCP latency_ms P50 P90 P99 MAX  (wrk's latency histogram, in ms with microsecond resolution)
-- The same script (and so the same client-side cost) is used for every run, direct or through the gateway.

local tool = os.getenv("MCP_TOOL")
if not tool or tool == "" then error("mcp_call.lua: MCP_TOOL is not set") end
local token = os.getenv("MCP_TOKEN") or ""

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end

local body_head = '{"jsonrpc":"2.0","id":'
local body_tail = ',"method":"tools/call","params":{"name":"' .. tool .. '","arguments":{"a":5,"b":3}}}'

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_no", #threads)
end

local seq = 0

function init(args)
   -- Thread k numbers its requests k*10^9 + 1, + 2, ...: unique across the threads of a run.
   seq = (thread_no or 1) * 1000000000
end

function request()
   seq = seq + 1
   -- nil headers: wrk.format uses wrk.headers (set above) and adds Content-Length.
   return wrk.format(nil, nil, nil, body_head .. string.format("%d", seq) .. body_tail)
end

-- Globals (not locals) so done() can read them from each thread with thread:get().
counts = {}
result8 = 0

function response(status, headers, body)
   counts[status] = (counts[status] or 0) + 1
   if status == 200 and body and string.find(body, '"structuredContent":{"result":8}', 1, true) then
      result8 = result8 + 1
   end
end

function done(summary, latency, requests)
   local merged, ok = {}, 0
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("counts") or {}) do
         merged[status] = (merged[status] or 0) + n
      end
      ok = ok + (thread:get("result8") or 0)
   end
   local codes = {}
   for status in pairs(merged) do table.insert(codes, status) end
   table.sort(codes)
   for _, status in ipairs(codes) do
      io.write(string.format("MCP status %d %d\n", status, merged[status]))
   end
   io.write(string.format("MCP result8 %d\n", ok))
   io.write(string.format("MCP latency_ms %.3f %.3f %.3f %.3f\n", latency:percentile(50) / 1000,
      latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
