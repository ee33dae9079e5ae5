-- S2 chat turn: POST /chat/message {"session_id": ID, "message": "hello"} with "Authorization: Bearer TOKEN".
-- Used by bench/chat.sh as:
--   CHAT_TOKEN=... CHAT_SESSIONS=ID[,ID...] wrk -t2 -c16 -d10s -s bench/chat_turn.lua http://HOST:PORT/chat/message
-- CHAT_TOKEN     the bearer token (required)
-- CHAT_SESSIONS  one or more conversation ids, comma-separated (required); requests go round-robin over them
-- CHAT_STOP_AFTER  optional: each thread stops after this many responses (to add a fixed number of turns)
-- Counts response status codes and prints them in done() as "CHAT status CODE N" lines for chat.sh to parse.
-- The same script (and so the same client-side cost) is used for every server and every S2 run.

local token = os.getenv("CHAT_TOKEN")
local ids = os.getenv("CHAT_SESSIONS")
if not token or token == "" then error("chat_turn.lua: CHAT_TOKEN is not set") end
if not ids or ids == "" then error("chat_turn.lua: CHAT_SESSIONS is not set") end
local stop_after = tonumber(os.getenv("CHAT_STOP_AFTER") or "")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_no", #threads)
end

-- One preformatted request per conversation; request() cycles through them.
local prepared = {}
local next_request = 1

function init(args)
   for id in string.gmatch(ids, "[^,]+") do
      local body = '{"session_id":"' .. id .. '","message":"hello"}'
      table.insert(prepared, wrk.format(nil, nil, nil, body))
   end
   -- Threads start at different places in the list (thread_no is set by setup()), not all at the first.
   next_request = ((thread_no or 1) - 1) * 7919 % #prepared + 1
end

function request()
   local r = prepared[next_request]
   next_request = next_request % #prepared + 1
   return r
end

-- Global (not local) so done() can read it from each thread with thread:get().
counts = {}
local responses = 0

function response(status, headers, body)
   counts[status] = (counts[status] or 0) + 1
   responses = responses + 1
   if stop_after and responses >= stop_after then
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
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
      io.write(string.format("CHAT status %d %d\n", status, merged[status]))
   end
end
