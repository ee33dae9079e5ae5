#!/usr/bin/env bash
# Warden benchmark, S2 by instruction count: the CPU instructions `warden serve` executes (user space, counted by
# valgrind's callgrind, which does not count time) per chat turn (`POST /chat/message`, bearer, one conversation)
# against the instant mock model (`warden bench-llm`), over TURNS turns from CLIENTS keep-alive clients at once
# after a warm-up. The group commit gathers the turns that arrive together, so the count per turn depends on
# CLIENTS (keep it the same when comparing builds); the background writers (request log) are counted too.
# Use it to compare two builds: it is repeatable where bench/chat.sh's wrk figures swing ±10% between runs, but
# it does not count the kernel's share (system calls, loopback TCP) or the database server's work (PostgreSQL).
#
# Usage: bench/chat_instructions.sh                 (builds the release binary first)
#        WARDEN_BIN=/path/to/warden bench/chat_instructions.sh
# Knobs (env): TURNS=2000 WARMUP_TURNS=200 CLIENTS=4
#              KEEP_CALLGRIND=/path/out   (keep the callgrind dump, for callgrind_annotate)
#              BENCH_SERVER_ENV="DATABASE_URL=postgres://..."   (extra environment for `warden serve`)
set -euo pipefail

TURNS="${TURNS:-2000}"
WARMUP_TURNS="${WARMUP_TURNS:-200}"
CLIENTS="${CLIENTS:-4}"
read -ra EXTRA_ENV <<<"${BENCH_SERVER_ENV:-}"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # REPO, BENCH, CARGO_TARGET_DIR, ADMIN_PASSWORD, helpers
REDACT=(TOKEN)

callgrind_tools
bench_tmp
bench_build

free_port LLM_PORT
(cd "$TMP" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" LOG_LEVEL=warn "$BIN" bench-llm --bind "127.0.0.1:$LLM_PORT") \
    >"$TMP/llm.log" 2>&1 &
PIDS+=($!)
callgrind_serve warden.log LLM_PROVIDER=openai LLM_API_URL="http://127.0.0.1:$LLM_PORT/v1" LLM_MODEL=bench \
    OPENAI_API_KEY=bench-key "${EXTRA_ENV[@]}"
SID="$(curl -sS -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" --data '{"title":"bench"}' \
    "http://127.0.0.1:$SERVE_PORT/chat/session/new" | grep -o '"session_id":"[^"]*"' | cut -d'"' -f4 || true)"
[[ -n "$SID" ]] || die "no session_id from /chat/session/new"

# turns N: N turns in the conversation from CLIENTS threads, each on its own keep-alive connection; each turn must
# answer 200 with the mock's "ok".
turns() {
    python3 - "$SERVE_PORT" "$TOKEN" "$SID" "$1" "$CLIENTS" <<'PY'
import http.client, json, sys, threading
port, token, sid, n, clients = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
body = json.dumps({"session_id": sid, "message": "hello"})
headers = {"Content-Type": "application/json", "Authorization": "Bearer " + token}
failed = []
def client(count):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(count):
        conn.request("POST", "/chat/message", body, headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200 or b'"content":"ok"' not in data:
            failed.append(f"a turn answered {response.status}: {data[:300]!r}")
            return
threads = [threading.Thread(target=client, args=(n // clients + (i < n % clients),)) for i in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
if failed: sys.exit(failed[0])
PY
}

turns "$WARMUP_TURNS" || die "the warm-up turns failed"
total="$(callgrind_measure "$SERVE_PID" turns "$TURNS")"
say "| Binary | Clients | Turns | Instructions | Instructions per turn |"
say "|---|---:|---:|---:|---:|"
say "| $BIN | $CLIENTS | $TURNS | $total | $((total / TURNS)) |"
