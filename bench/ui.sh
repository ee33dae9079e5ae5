#!/usr/bin/env bash
# The web UI's performance (issue 11), in Debian's Chromium (headless) against an instant mock model
# (`warden bench-llm`, which stamps its send time into the streamed token):
#   - what the chat page's first load transfers (every response: headers and body as sent), against 150 KB;
#   - how long a streamed token takes from the model to the page (bench-llm's send time to the moment the text
#     is in the DOM, both on this machine's clock), over TURNS turns, against 50 ms.
# Needs Chromium and the npm packages that .ci/run installs (/root/.cache/warden-ci/browser).
#   WARDEN_BIN=target/release/warden bash bench/ui.sh        Knobs: TURNS (30)
set -euo pipefail
TURNS="${TURNS:-30}"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
MODULES="${WARDEN_TEST_BROWSER_MODULES:-/root/.cache/warden-ci/browser/node_modules}"
[[ -d "$MODULES/playwright-core" ]] || die "no playwright-core in $MODULES: run .ci/run (or npm ci in tests/browser)"
command -v chromium >/dev/null 2>&1 || die "no chromium: apt-get install -y chromium"
bench_tmp
bench_build

free_port LLM_PORT
free_port WARDEN_PORT
WARDEN="http://127.0.0.1:$WARDEN_PORT"
mkdir -p "$TMP/data"
(cd "$TMP" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" LOG_LEVEL=warn "$BIN" bench-llm --bind "127.0.0.1:$LLM_PORT") \
    >"$TMP/llm.log" 2>&1 &
LLM_PID=$!
PIDS+=("$LLM_PID")
SERVER_ENV=(
    PATH="$PATH" HOME="${HOME:-/root}"
    WARDEN_BIND="127.0.0.1:$WARDEN_PORT" WARDEN_DATA_DIR="$TMP/data"
    ADMIN_PASSWORD="$ADMIN_PASSWORD" LOG_LEVEL=warn
    LLM_PROVIDER=openai LLM_API_URL="http://127.0.0.1:$LLM_PORT/v1" LLM_MODEL=bench OPENAI_API_KEY=bench-key
)
say "# server: cd \$TMP && env -i ${SERVER_ENV[*]:2} $BIN serve"
(cd "$TMP" && exec env -i "${SERVER_ENV[@]}" "$BIN" serve) >"$TMP/warden.log" 2>&1 &
WARDEN_PID=$!
PIDS+=("$WARDEN_PID")
wait_ready "http://127.0.0.1:$LLM_PORT/v1/chat/completions" "$LLM_PID" "warden bench-llm" 100 -X POST
wait_ready "$WARDEN/health" "$WARDEN_PID" "warden serve"

CONFIG="{\"base\":\"$WARDEN\",\"scenario\":\"first_token\",\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\",\"turns\":$TURNS,\"screenshots\":\"$TMP/shots\"}"
say "# NODE_PATH=$MODULES node tests/browser/run.cjs '{... \"scenario\": \"first_token\", \"turns\": $TURNS}'"
NODE_PATH="$MODULES" node "$REPO/tests/browser/run.cjs" "$CONFIG" >"$TMP/report.json"
python3 - "$TMP/report.json" <<'PY'
import json, statistics, sys
r = json.load(open(sys.argv[1]))
if r.get("error"):
    sys.exit("the scenario failed: " + r["error"])
ms = sorted(r["firstTokenMs"])
p95 = ms[min(len(ms) - 1, int(round(0.95 * len(ms))) - 1)]
kb = r["firstLoad"]["bytes"] / 1024
print()
print("| Web UI | Value | Target | Result |")
print("|---|---:|---|---|")
print(f"| chat page first load: {r['firstLoad']['requests']} requests, bytes sent (uncompressed; no compression) | {kb:.1f} KB | < 150 KB | {'PASS' if kb < 150 else 'FAIL'} |")
print(f"| model token to page, median of {len(ms)} turns | {statistics.median(ms):.0f} ms | < 50 ms | {'PASS' if statistics.median(ms) < 50 else 'FAIL'} |")
print(f"| model token to page, p95 / max | {p95:.0f} / {ms[-1]:.0f} ms | | |")
print(f"| errors: console {len(r['consoleErrors'])}, page {len(r['pageErrors'])}, CSP {len(r['cspViolations'])}, other hosts {len(r['foreignRequests'])} | | 0 | {'PASS' if not (r['consoleErrors'] or r['pageErrors'] or r['cspViolations'] or r['foreignRequests']) else 'FAIL'} |")
PY
