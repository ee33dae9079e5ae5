#!/usr/bin/env bash
# Warden benchmark, S3 by instruction count: the CPU instructions `warden serve` executes (user space, counted by
# valgrind's callgrind, which does not count time) per MCP `tools/call` through `/mcp` to `warden
# bench-mcp-upstream`, over CALLS calls from one keep-alive client after a warm-up.
# Background work that the calls cause in the window (the tool-call log and request-log writers) is counted too,
# and its cost per call depends on how many rows each batch gathers, which depends on timing: run it on a quiet
# machine (with a compile beside it the count rose by 5%, and by 11% for GET /api/status, whose request-log
# writer did twice the work). Use it to compare two builds on this 2-core machine, where wrk's throughput swings
# ±10% between runs; it does not count the kernel's share (system calls, loopback TCP), which bench/mcp.sh's
# throughput includes.
# valgrind hides the CPU's SHA extensions, so token verification weighs more here than on the real CPU.
#
# Usage: bench/mcp_instructions.sh                 (builds the release binary first)
#        WARDEN_BIN=/path/to/warden bench/mcp_instructions.sh
# Knobs (env): CALLS=4000 WARMUP_CALLS=200
#              KEEP_CALLGRIND=/path/out   (keep the callgrind dump, for callgrind_annotate)
set -euo pipefail

CALLS="${CALLS:-4000}"
WARMUP_CALLS="${WARMUP_CALLS:-200}"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # REPO, BENCH, CARGO_TARGET_DIR, ADMIN_PASSWORD, helpers
REDACT=(TOKEN)

callgrind_tools
bench_tmp
bench_build

free_port UP_PORT
"$BIN" bench-mcp-upstream --bind "127.0.0.1:$UP_PORT" >"$TMP/upstream.log" 2>&1 &
PIDS+=($!)
callgrind_serve gateway.log MCP_SERVER_URL="http://127.0.0.1:$UP_PORT/mcp"
for _ in $(seq 300); do
    curl -sS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$SERVE_PORT/api/servers" 2>/dev/null |
        grep -q '"status":"up"' && break
    sleep 0.1
done

# calls N: N tools/call mcp__add(5, 3) on one keep-alive connection; each must answer 200 with the result 8.
calls() {
    python3 - "$SERVE_PORT" "$TOKEN" "$1" <<'PY'
import http.client, json, sys
port, token, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "mcp__add", "arguments": {"a": 5, "b": 3}}})
headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "MCP-Protocol-Version": "2025-06-18", "Authorization": "Bearer " + token}
conn = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    conn.request("POST", "/mcp", body, headers)
    response = conn.getresponse()
    data = response.read()
    if response.status != 200 or b'"structuredContent":{"result":8}' not in data:
        sys.exit(f"a call answered {response.status}: {data[:300]!r}")
PY
}

calls "$WARMUP_CALLS" || die "the warm-up calls failed"
total="$(callgrind_measure "$SERVE_PID" calls "$CALLS")"
say "| Binary | Calls | Instructions | Instructions per call |"
say "|---|---:|---:|---:|"
say "| $BIN | $CALLS | $total | $((total / CALLS)) |"
