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
command -v python3 >/dev/null 2>&1 || die "python3 is required"
command -v curl >/dev/null 2>&1 || die "curl is required"
bench_tmp
bench_build

free_port UP_PORT
free_port GW_PORT
"$BIN" bench-mcp-upstream --bind "127.0.0.1:$UP_PORT" >"$TMP/upstream.log" 2>&1 &
PIDS+=($!)
mkdir -p "$TMP/data"
# Instrumentation starts off (`--instr-atstart=no`) and is switched on for the measured calls only.
(cd "$TMP" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" WARDEN_BIND="127.0.0.1:$GW_PORT" \
    WARDEN_DATA_DIR="$TMP/data" ADMIN_PASSWORD="$ADMIN_PASSWORD" LOG_LEVEL=warn LOGIN_IP_PER_MINUTE=100000 \
    ACCESS_TOKEN_EXPIRE_MINUTES=60 MCP_SERVER_URL="http://127.0.0.1:$UP_PORT/mcp" \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$TMP/callgrind.out" "$BIN" serve) \
    >"$TMP/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_ready "http://127.0.0.1:$GW_PORT/health" "$GW_PID" "warden serve under valgrind" 600

login="{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}"
TOKEN="$(curl -sS -H 'Content-Type: application/json' --data "$login" "http://127.0.0.1:$GW_PORT/auth/login" |
    grep -o '"access_token":"[^"]*"' | cut -d'"' -f4 || true)"
[[ -n "$TOKEN" ]] || die "no access_token in the login response"
for _ in $(seq 300); do
    curl -sS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GW_PORT/api/servers" 2>/dev/null |
        grep -q '"status":"up"' && break
    sleep 0.1
done

# calls N: N tools/call mcp__add(5, 3) on one keep-alive connection; each must answer 200 with the result 8.
calls() {
    python3 - "$GW_PORT" "$TOKEN" "$1" <<'PY'
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
total="$(callgrind_measure "$GW_PID" calls "$CALLS")"
say "| Binary | Calls | Instructions | Instructions per call |"
say "|---|---:|---:|---:|"
say "| $BIN | $CALLS | $total | $((total / CALLS)) |"
