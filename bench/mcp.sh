#!/usr/bin/env bash
# Warden benchmark, S3: an MCP `tools/call` of add(5, 3) through Warden's gateway `/mcp` to an upstream MCP server,
# against calling that upstream directly (DESIGN.md "Performance model"). Prints markdown tables.
#
#   upstream  `warden bench-mcp-upstream`: a Rust MCP server at /mcp (Streamable HTTP, stateless, JSON responses)
#             with one tool, add(a, b).
#   gateway   `warden serve` with MCP_SERVER_URL pointing at it: the tool is in the catalog as `mcp__add`; a call
#             to Warden's /mcp (bearer token of the admin) checks the token and the permission, logs the call and
#             forwards it upstream.
#   Same client (wrk + bench/mcp_call.lua), same settings, same run: direct and gateway alternate in ROUNDS rounds,
#   at -t$WRK_THREADS -c$WRK_CONNS (throughput; target gateway/direct reported) and at -t1 -c1 (serial latency;
#   target, issue 12: the gateway adds <= 0.1 ms to p50). Medians over the rounds.
#
#   CONTEXTFORGE=1 (slow, ~6 min, needs PyPI the first time): also
#     (a) runs /work/shared/peers/contextforge/bench.sh once (IBM ContextForge, PyPI mcp-contextforge-gateway, in
#         front of a Python MCP upstream) and captures its summary table, then
#     (b) measures Warden's gateway in front of the SAME Python upstream (upstream_add.py, MCP Python SDK 2.3.0)
#         with the ContextForge script's wrk settings (-t2 -c16 -d10s, -t1 -c1 -d5s), so the ratio
#         Warden/ContextForge (target >= 10) compares like with like. Warden's own Rust upstream and gateway are
#         stopped first, so the machine is as quiet for ContextForge as for (b).
#
# Usage: bench/mcp.sh                 (from anywhere; builds the release binary first; ~1 min after the build)
#        CONTEXTFORGE=1 bench/mcp.sh
# Knobs (env): WRK_THREADS=2 WRK_CONNS=16 WRK_DURATION=5s SERIAL_DURATION=3s ROUNDS=3 WARMUP=1s
#              LADDER_DURATION=3s (the c=4 and c=64 runs)
#              CARGO_TARGET_DIR=/root/.cache/warden-target
#              WARDEN_BIN=/path/to/warden      (skip the build and use this binary)
#              BENCH_SERVER_ENV="K=V K2=V2"     (extra environment for `warden serve`, for experiments)
#              CONTEXTFORGE=1 CF_DIR=/work/shared/peers/contextforge CF_ROUNDS=$ROUNDS
#              CF_WRK_DURATION=10s CF_SERIAL_DURATION=5s  (the ContextForge script's defaults; -t2 -c16 and -t1 -c1)
#              CF_VENV=/root/.cache/warden-bench/cf-venv UP_VENV=/root/.cache/warden-bench/up-venv
#                                               (ContextForge's venvs; its script creates them with pip if missing)
#              PY_UPSTREAM_PYTHON=/root/.cache/warden-ci/venv/bin/python   (a python with mcp 2.3.0, for (b);
#                                               falls back to $UP_VENV/bin/python)
#              CF_SKIP_RUN=1                    (skip (a), e.g. without PyPI; (b) still runs)
#
# The machines are noisy (2 cores, shared by wrk, the gateway and the upstream): compare the ratios from one run,
# not absolute numbers across runs.
set -euo pipefail

WRK_THREADS="${WRK_THREADS:-2}"
WRK_CONNS="${WRK_CONNS:-16}"
WRK_DURATION="${WRK_DURATION:-5s}"
SERIAL_DURATION="${SERIAL_DURATION:-3s}"
LADDER_DURATION="${LADDER_DURATION:-3s}"
ROUNDS="${ROUNDS:-3}"
WARMUP="${WARMUP:-1s}"
CONTEXTFORGE="${CONTEXTFORGE:-0}"
CF_DIR="${CF_DIR:-/work/shared/peers/contextforge}"
CF_ROUNDS="${CF_ROUNDS:-$ROUNDS}"
CF_WRK_THREADS=2
CF_WRK_CONNS=16
CF_WRK_DURATION="${CF_WRK_DURATION:-10s}"
CF_SERIAL_DURATION="${CF_SERIAL_DURATION:-5s}"
CF_VENV="${CF_VENV:-/root/.cache/warden-bench/cf-venv}"
UP_VENV="${UP_VENV:-/root/.cache/warden-bench/up-venv}"
PY_UPSTREAM_PYTHON="${PY_UPSTREAM_PYTHON:-/root/.cache/warden-ci/venv/bin/python}"
CF_SKIP_RUN="${CF_SKIP_RUN:-0}"
read -ra EXTRA_ENV <<<"${BENCH_SERVER_ENV:-}"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # REPO, BENCH, CARGO_TARGET_DIR, ADMIN_PASSWORD, helpers
REDACT=(TOKEN)                                  # show() prints the bearer token as ${TOKEN}

bench_tools
bench_tmp
bench_build

PROTO_VERSION="2025-06-18"
MCP_HEADERS=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'
    -H "MCP-Protocol-Version: $PROTO_VERSION")
RESULT8='"structuredContent":{"result":8}'

# --- Helpers ------------------------------------------------------------------------------------------------------
# forget_pid PID: drop PID from the list the EXIT cleanup stops.
forget_pid() {
    local p keep=()
    for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
# stop_pid PID: stop one process this script started (TERM, up to 5 s, then KILL) and forget it.
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
}

mcp_body() { printf '{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"%s","arguments":{"a":5,"b":3}}}' "$2" "$1"; }

# mcp_post OUT URL TOOL [BEARER]: one tools/call add(5,3) with curl (shown); the body in OUT; prints the status.
mcp_post() {
    local out=$1 url=$2 tool=$3 bearer=${4:-}
    local cmd=(curl -sS -o "$out" -w '%{http_code}' --max-time 10 -X POST "${MCP_HEADERS[@]}")
    [[ -n "$bearer" ]] && cmd+=(-H "Authorization: Bearer $bearer")
    cmd+=(--data "$(mcp_body "$tool" 1)" "$url")
    show "${cmd[@]}" >&2
    "${cmd[@]}" || true
}

# mcp_check LABEL URL TOOL [BEARER]: the call must answer 200 with structuredContent {"result":8}.
mcp_check() {
    local label=$1 code
    code="$(mcp_post "$TMP/check.json" "$2" "$3" "${4:-}")"
    [[ "$code" == 200 && "$(cat "$TMP/check.json")" == *"$RESULT8"* ]] ||
        die "$label answered $code, not 200 with $RESULT8: $(head -c 500 "$TMP/check.json")"
    say "# ok: $label -> 200: $(head -c 300 "$TMP/check.json")"
}

# wait_mcp URL PID NAME TRIES: poll until a direct tools/call add answers 200 (TRIES x 0.1 s).
wait_mcp() {
    local url=$1 pid=$2 name=$3 tries=$4
    for _ in $(seq "$tries"); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup"
        [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 -X POST "${MCP_HEADERS[@]}" \
            --data "$(mcp_body add 0)" "$url" || true)" == 200 ]] && return 0
        sleep 0.1
    done
    die "$name did not answer a tools/call on $url within $((tries / 10)) s"
}

# start_warden NAME UPSTREAM_URL: `warden serve` in front of UPSTREAM_URL, its log $TMP/NAME.log; logs in as the
# admin (TOKEN) and waits (bounded) until GET /api/servers shows the upstream `mcp` up with its tool mcp__add.
# Sets WARDEN_PID, WARDEN (base URL), TOKEN.
start_warden() {
    local name=$1 upstream=$2 port
    free_port port
    WARDEN="http://127.0.0.1:$port"
    mkdir -p "$TMP/$name-data"
    # A clean environment (env -i) so the caller's DATABASE_URL, REDIS_URL, MCP_*... do not leak in; cwd is the temp
    # dir so no .env file is picked up. A fresh SQLite database in $TMP/NAME-data.
    local server_env=(
        PATH="$PATH" HOME="${HOME:-/root}"
        WARDEN_BIND="127.0.0.1:$port" WARDEN_DATA_DIR="$TMP/$name-data"
        ADMIN_PASSWORD="$ADMIN_PASSWORD" LOG_LEVEL=warn LOGIN_IP_PER_MINUTE=100000 ACCESS_TOKEN_EXPIRE_MINUTES=60
        MCP_SERVER_URL="$upstream"
        "${EXTRA_ENV[@]}"
    )
    say "# gateway: cd \$TMP && env -i ${server_env[*]:2} $BIN serve   (TMP=$TMP)"
    (cd "$TMP" && exec env -i "${server_env[@]}" "$BIN" serve) >"$TMP/$name.log" 2>&1 &
    WARDEN_PID=$!
    PIDS+=("$WARDEN_PID")
    wait_ready "$WARDEN/health" "$WARDEN_PID" "warden serve ($name)"
    [[ "$(readlink "/proc/$WARDEN_PID/exe")" == "$(readlink -f "$BIN")"* ]] || die "PID $WARDEN_PID is not the warden binary"

    local login="{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" code
    show curl -sS -o "\$TMP/login.json" -H 'Content-Type: application/json' --data "$login" "$WARDEN/auth/login"
    code="$(curl -sS -o "$TMP/login.json" -w '%{http_code}' -H 'Content-Type: application/json' --data "$login" \
        "$WARDEN/auth/login" || true)"
    [[ "$code" == 200 ]] || die "login answered $code: $(cat "$TMP/login.json")"
    TOKEN="$(grep -o '"access_token":"[^"]*"' "$TMP/login.json" | head -n 1 | cut -d'"' -f4 || true)"
    [[ -n "$TOKEN" ]] || die "no access_token in the login response"

    say "# wait until the upstream is up (TOKEN is the admin's access_token; at most 20 s):"
    show curl -sS -H "Authorization: Bearer $TOKEN" "$WARDEN/api/servers"
    local entry=""
    for _ in $(seq 200); do
        kill -0 "$WARDEN_PID" 2>/dev/null || die "warden serve ($name) exited"
        curl -sS --max-time 2 -o "$TMP/servers.json" -H "Authorization: Bearer $TOKEN" "$WARDEN/api/servers" || true
        # The entry of server `mcp`: an object without nested objects (its `tools` is an array of strings).
        entry="$(grep -o '{[^{}]*"server_name":"mcp"[^{}]*}' "$TMP/servers.json" 2>/dev/null | head -n 1 || true)"
        [[ "$entry" == *'"status":"up"'* ]] && break
        sleep 0.1
    done
    [[ "$entry" == *'"status":"up"'* ]] || die "the upstream is not up in GET /api/servers after 20 s: $(cat "$TMP/servers.json")"
    [[ "$entry" == *'"mcp__add"'* ]] || die "GET /api/servers shows no tool mcp__add: $entry"
    say "# ok: $entry"
}

# mcp_wrk OUT URL TOOL BEARER THREADS CONNS DURATION: wrk with mcp_call.lua (shown), output (and stderr) in OUT.
mcp_wrk() {
    local out=$1 url=$2 tool=$3 bearer=$4 threads=$5 conns=$6 duration=$7
    local cmd=(env MCP_TOOL="$tool")
    [[ -n "$bearer" ]] && cmd+=(MCP_TOKEN="$bearer")
    cmd+=(wrk -t"$threads" -c"$conns" -d"$duration" --timeout 10s --latency -s "$BENCH/mcp_call.lua" "$url")
    show "${cmd[@]}"
    "${cmd[@]}" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
    grep -q 'mcp_call.lua' "$out" && die "the wrk script failed: $(grep 'mcp_call.lua' "$out" | head -n 3)"
    grep -q '^MCP latency_ms' "$out" || die "no MCP lines in the wrk output: $(cat "$out")"
}

# Parsers of one mcp_wrk output. lat FILE K: K = 1 p50, 2 p90, 3 p99, 4 max (ms).
lat()      { awk -v k="$2" '$1 == "MCP" && $2 == "latency_ms" { print $(2 + k) }' "$1"; }
count_of() { awk -v s="$2" '$1 == "MCP" && $2 == "status" && $3 == s { n = $4 } END { print n + 0 }' "$1"; }
result8()  { awk '$1 == "MCP" && $2 == "result8" { print $3 }' "$1"; }
# Over several files: "200 x12345, 401 x2".
statuses() { awk '$1 == "MCP" && $2 == "status" { n[$3] += $4 } END { for (s in n) printf "%s x%s\n", s, n[s] }' "$@" |
    sort -n | paste -sd, - | sed 's/,/, /g'; }
sum_of()   { local f=$1 t=0 x; shift; for x in "$@"; do t=$((t + $("$f" "$x"))); done; echo "$t"; }
median()   { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio_of() { awk -v a="$1" -v b="$2" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.2f", a / b; else print "?" }'; }
diff_of()  { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.3f", a - b }'; }

# compare KEY DIRECT_URL GATEWAY_URL THREADS CONNS DURATION SERIAL_DURATION ROUNDS: direct (tool add, no token)
# and gateway (tool mcp__add, TOKEN) at -tTHREADS -cCONNS -dDURATION and at -t1 -c1 -dSERIAL_DURATION, in ROUNDS
# rounds; odd rounds run direct first, even rounds the gateway first. Outputs: $TMP/KEY_{d,g}{N,1}_ROUND.txt.
compare() {
    local key=$1 d_url=$2 g_url=$3 threads=$4 conns=$5 dur=$6 sdur=$7 rounds=$8 r side order
    say ""
    say "# warm-up (not reported)"
    mcp_wrk "$TMP/${key}_warm_d.txt" "$d_url" add "" "$threads" "$conns" "$WARMUP"
    mcp_wrk "$TMP/${key}_warm_g.txt" "$g_url" mcp__add "$TOKEN" "$threads" "$conns" "$WARMUP"
    for r in $(seq "$rounds"); do
        order=(d g)
        ((r % 2 == 0)) && order=(g d)
        for side in "${order[@]}"; do
            say "# round $r/$rounds, $([[ $side == d ]] && echo direct || echo gateway), c=$conns"
            if [[ $side == d ]]; then
                mcp_wrk "$TMP/${key}_d${conns}_$r.txt" "$d_url" add "" "$threads" "$conns" "$dur"
            else
                mcp_wrk "$TMP/${key}_g${conns}_$r.txt" "$g_url" mcp__add "$TOKEN" "$threads" "$conns" "$dur"
            fi
        done
        for side in "${order[@]}"; do
            say "# round $r/$rounds, $([[ $side == d ]] && echo direct || echo gateway), c=1 (serial)"
            if [[ $side == d ]]; then
                mcp_wrk "$TMP/${key}_d1_$r.txt" "$d_url" add "" 1 1 "$sdur"
            else
                mcp_wrk "$TMP/${key}_g1_$r.txt" "$g_url" mcp__add "$TOKEN" 1 1 "$sdur"
            fi
        done
    done
}

# summarize KEY SIDE CONNS ROUNDS: sets S_RPS S_P50 S_P99 (medians over the rounds), S_NON2XX S_ERR S_OK S_R8
# (sums) and S_STATUSES for the runs $TMP/KEY_SIDECONNS_*.txt.
summarize() {
    local key=$1 side=$2 conns=$3 rounds=$4 r files=() rps=() p50=() p99=()
    for r in $(seq "$rounds"); do
        local f="$TMP/${key}_${side}${conns}_$r.txt"
        files+=("$f")
        rps+=("$(wrk_rps "$f")")
        p50+=("$(lat "$f" 1)")
        p99+=("$(lat "$f" 3)")
    done
    S_RPS="$(median "${rps[@]}")"
    S_P50="$(median "${p50[@]}")"
    S_P99="$(median "${p99[@]}")"
    S_RPS_ALL="${rps[*]}"
    S_NON2XX="$(sum_of wrk_non2xx "${files[@]}")"
    S_ERR="$(sum_of wrk_errors "${files[@]}")"
    S_OK=0 S_R8=0
    for f in "${files[@]}"; do S_OK=$((S_OK + $(count_of "$f" 200))) S_R8=$((S_R8 + $(result8 "$f"))); done
    S_STATUSES="$(statuses "${files[@]}")"
}

# paired KEY CONNS ROUNDS: per-round gateway/direct req/s ratios (P_RATIOS, median P_RATIO) and gateway - direct
# p50 differences in ms (P_DIFFS, median P_DIFF).
paired() {
    local key=$1 conns=$2 rounds=$3 r ratios=() diffs=()
    for r in $(seq "$rounds"); do
        ratios+=("$(ratio_of "$(wrk_rps "$TMP/${key}_g${conns}_$r.txt")" "$(wrk_rps "$TMP/${key}_d${conns}_$r.txt")")")
        diffs+=("$(diff_of "$(lat "$TMP/${key}_g${conns}_$r.txt" 1)" "$(lat "$TMP/${key}_d${conns}_$r.txt" 1)")")
    done
    P_RATIOS="${ratios[*]}" P_DIFFS="${diffs[*]}"
    P_RATIO="$(median "${ratios[@]}")"
    P_DIFF="$(printf '%+.3f' "$(median "${diffs[@]}")")"
}

# drain_note LOG...: explain rmcp's "failed to send pending response during drain" if a log holds it.
drain_note() {
    grep -qs 'failed to send pending response during drain' "$@" || return 0
    say "rmcp's \"failed to send pending response during drain\" (ERROR) is logged when a client closes a connection with a"
    say "call in flight: wrk does at the end of each run with several connections (the upstream logs it too when hit directly)."
}

BAD_BODIES=() # "label: N of M" for runs where some 200 answers lacked the result 8
# table_rows KEY CONNS ROUNDS DIRECT_LABEL GATEWAY_LABEL: the rows of the c=CONNS and c=1 runs, the ratio and the
# added p50.
table_rows() {
    local key=$1 conns=$2 rounds=$3 dlabel=$4 glabel=$5 side c label
    for c in "$conns" 1; do
        for side in d g; do
            summarize "$key" "$side" "$c" "$rounds"
            label="$([[ $side == d ]] && echo "$dlabel" || echo "$glabel"), c=$c"
            row "$label (rounds: $S_RPS_ALL req/s; statuses: $S_STATUSES)" "$S_RPS" "$S_P50" "$S_P99" "$S_NON2XX" "$S_ERR" "" ""
            [[ "$S_R8" == "$S_OK" ]] || BAD_BODIES+=("$label: $((S_OK - S_R8)) of $S_OK 200 answers without the result 8")
        done
        if [[ "$c" != 1 ]]; then
            paired "$key" "$c" "$rounds"
            row "gateway / direct throughput, c=$c (median of the rounds' ratios: $P_RATIOS)" "$P_RATIO" "" "" "" "" "" ""
        fi
    done
    paired "$key" 1 "$rounds"
    row "gateway adds to p50 at c=1, ms (median of the rounds' differences: $P_DIFFS)" "" "$P_DIFF" "" "" "" \
        "<= 0.1 ms" "$(verdict "$P_DIFF" "<=" 0.1)"
}

# =====================================================================================================================
# Part 1: the Rust upstream, direct and through Warden.
# =====================================================================================================================
free_port UP_PORT
UP_URL="http://127.0.0.1:$UP_PORT/mcp"
say "# upstream: cd \$TMP && env -i PATH=... LOG_LEVEL=warn $BIN bench-mcp-upstream --bind 127.0.0.1:$UP_PORT"
(cd "$TMP" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" LOG_LEVEL=warn "$BIN" bench-mcp-upstream \
    --bind "127.0.0.1:$UP_PORT") >"$TMP/upstream.log" 2>&1 &
UP_PID=$!
PIDS+=("$UP_PID")
wait_mcp "$UP_URL" "$UP_PID" "warden bench-mcp-upstream" 100
start_warden warden "$UP_URL"
GW_URL="$WARDEN/mcp"

say ""
say "# checks: a direct call, a call through the gateway, and the gateway without a token"
mcp_check "direct tools/call add(5,3)" "$UP_URL" add
mcp_check "gateway tools/call mcp__add(5,3)" "$GW_URL" mcp__add "$TOKEN"
code="$(mcp_post "$TMP/noauth.json" "$GW_URL" mcp__add)"
[[ "$code" == 401 ]] || die "the gateway without a token answered $code, not 401: $(head -c 300 "$TMP/noauth.json")"
say "# ok: gateway without a token -> 401"
RSS_IDLE="$(rss_mb "$WARDEN_PID")"

compare s3 "$UP_URL" "$GW_URL" "$WRK_THREADS" "$WRK_CONNS" "$WRK_DURATION" "$SERIAL_DURATION" "$ROUNDS"
kill -0 "$WARDEN_PID" 2>/dev/null || die "warden exited during S3"
kill -0 "$UP_PID" 2>/dev/null || die "the upstream exited during S3"
RSS_LOADED="$(rss_mb "$WARDEN_PID")"
RSS_UP="$(rss_mb "$UP_PID")"

# The ladder (issue 12): the latency the gateway adds at c=4 and c=64 too, one run of each side per level, and the
# gateway's peak RSS (VmHWM) once c=64 has run.
for c in 4 64; do
    say "# ladder, c=$c: direct, then gateway"
    mcp_wrk "$TMP/ladder_d$c.txt" "$UP_URL" add "" 2 "$c" "$LADDER_DURATION"
    mcp_wrk "$TMP/ladder_g$c.txt" "$GW_URL" mcp__add "$TOKEN" 2 "$c" "$LADDER_DURATION"
done
kill -0 "$WARDEN_PID" 2>/dev/null || die "warden exited during the ladder"
HWM_C64="$(hwm_mb "$WARDEN_PID")"

REPORT1="$TMP/report1.md"
{
    say ""
    say "## Warden benchmark S3 ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION and -t1 -c1 -d$SERIAL_DURATION, $ROUNDS alternating rounds, medians)"
    say ""
    say "MCP \`tools/call\` add(5,3), Streamable HTTP (stateless, JSON responses, MCP-Protocol-Version $PROTO_VERSION)."
    say "Upstream: \`warden bench-mcp-upstream\` (Rust). Gateway: \`warden serve\` \`/mcp\`, admin bearer token, tool \`mcp__add\`."
    say ""
    say "| Scenario | Req/s | p50 ms | p99 ms | Non-2xx | Socket errors | Target | Result |"
    say "|---|---:|---:|---:|---:|---:|---|---|"
    table_rows s3 "$WRK_CONNS" "$ROUNDS" "S3 direct: upstream \`POST /mcp\` \`add\`" \
        "S3 gateway: Warden \`POST /mcp\` \`mcp__add\` → upstream"
    say ""
    say "Ladder (-t2 -d$LADDER_DURATION, one run per side and level): the p50 and p99 the gateway adds."
    say ""
    say "| Connections | direct p50 ms | gateway p50 ms | added p50 ms | direct p99 ms | gateway p99 ms | added p99 ms | gateway / direct req/s |"
    say "|---:|---:|---:|---:|---:|---:|---:|---:|"
    for c in 4 64; do
        d="$TMP/ladder_d$c.txt" g="$TMP/ladder_g$c.txt"
        say "| $c | $(lat "$d" 1) | $(lat "$g" 1) | $(diff_of "$(lat "$g" 1)" "$(lat "$d" 1)") | $(lat "$d" 3) | $(lat "$g" 3) | $(diff_of "$(lat "$g" 3)" "$(lat "$d" 3)") | $(ratio_of "$(wrk_rps "$g")" "$(wrk_rps "$d")") |"
    done
    say ""
    say "Memory (VmRSS): warden serve idle $RSS_IDLE MB, after S3 $RSS_LOADED MB; upstream after S3 $RSS_UP MB. Peak (VmHWM) of warden serve after the c=64 ladder: $HWM_C64 MB (target < 64)."
    say "Non-2xx and socket errors are sums over all rounds; req/s, p50 and p99 are medians over the rounds."
    if ((${#BAD_BODIES[@]})); then
        say "Answers 200 without \"structuredContent\":{\"result\":8}: ${BAD_BODIES[*]}"
    else
        say "Every 200 answer of every measured run held \"structuredContent\":{\"result\":8} (checked in mcp_call.lua)."
    fi
    drain_note "$TMP/warden.log" "$TMP/upstream.log"
    say ""
    log_summary "$TMP/warden.log" "Warden log (LOG_LEVEL=warn)"
    log_summary "$TMP/upstream.log" "Upstream log"
} >"$REPORT1"
cat "$REPORT1"

[[ "$CONTEXTFORGE" == 1 ]] || {
    say $'\nThe ContextForge comparison (slow, ~6 min): CONTEXTFORGE=1 bench/mcp.sh'
    exit 0
}

# =====================================================================================================================
# Part 2 (CONTEXTFORGE=1): ContextForge's own recipe, then Warden in front of the same Python upstream.
# =====================================================================================================================
say ""
say "# ContextForge comparison: stop the Rust upstream and the gateway first (PIDs $UP_PID $WARDEN_PID)"
stop_pid "$WARDEN_PID"
stop_pid "$UP_PID"

CF_STATUS="not run"
CF_RESULTS=""
CF_SUMMARY=""
CF_FAIL_LOGS=""
if [[ "$CF_SKIP_RUN" == 1 ]]; then
    CF_STATUS="skipped (CF_SKIP_RUN=1)"
elif [[ ! -f "$CF_DIR/bench.sh" ]]; then
    CF_STATUS="not run: no $CF_DIR/bench.sh"
else
    # Its temp folder (cfbench.XXXXXX: logs, wrk.log, summary.txt) goes under $TMP/cf, removed at exit. Its wrk
    # settings are set explicitly so a caller's WRK_* cannot change them. At most 20 min (pip installs included).
    mkdir -p "$TMP/cf" "$(dirname "$CF_VENV")" "$(dirname "$UP_VENV")"
    CF_CMD=(env TMPDIR="$TMP/cf" CF_VENV="$CF_VENV" UP_VENV="$UP_VENV" WRK_THREADS="$CF_WRK_THREADS"
        WRK_CONNS="$CF_WRK_CONNS" WRK_DURATION="$CF_WRK_DURATION" SERIAL_DURATION="$CF_SERIAL_DURATION"
        timeout 1200 bash "$CF_DIR/bench.sh")
    say "# ContextForge: its own recipe, once (~3 min; TMPDIR=\$TMP/cf)"
    show "${CF_CMD[@]}"
    "${CF_CMD[@]}" >"$TMP/cf.out" 2>"$TMP/cf.err" &
    CF_PID=$!
    PIDS+=("$CF_PID")
    cf_rc=0
    wait "$CF_PID" || cf_rc=$?
    forget_pid "$CF_PID"
    CF_WORK="$(ls -d "$TMP"/cf/cfbench.* 2>/dev/null | head -n 1 || true)"
    if [[ $cf_rc == 0 && -n "$CF_WORK" && -s "$CF_WORK/results.txt" ]]; then
        CF_STATUS="ran (exit 0)"
        CF_RESULTS="$CF_WORK/results.txt"
        CF_SUMMARY="$CF_WORK/summary.txt"
    else
        # Its last log line tells the step it stopped after (a failing command under its `set -e` logs nothing).
        CF_STATUS="failed (exit $cf_rc$([[ $cf_rc == 124 ]] && echo ', timed out after 20 min')): $(grep -m1 'FAILED' "$TMP/cf.err" ||
            grep -v 'logs and results kept' "$TMP/cf.err" | tail -n 1)"
        for f in "${CF_WORK:-/nonexistent}"/cf-*.log "${CF_WORK:-/nonexistent}"/upstream.log "${CF_WORK:-/nonexistent}"/pip-*.log; do
            [[ -s "$f" ]] || continue
            CF_FAIL_LOGS+=$'\n'"--- last lines of ContextForge's $(basename "$f") ---"$'\n'"$(tail -n 15 "$f" | sed 's/\x1b\[[0-9;]*m//g')"
        done
    fi
    say "# ContextForge: $CF_STATUS"
fi

# --- Warden in front of the same Python upstream, with the ContextForge script's wrk settings --------------------------
PY="$PY_UPSTREAM_PYTHON"
if ! "$PY" -c 'from mcp.server.mcpserver import MCPServer' 2>/dev/null; then
    PY="$UP_VENV/bin/python"
    "$PY" -c 'from mcp.server.mcpserver import MCPServer' 2>/dev/null ||
        die "no python with mcp 2.3.0 (tried $PY_UPSTREAM_PYTHON and $PY): pip install \"mcp==2.3.0\" in a venv and set PY_UPSTREAM_PYTHON"
fi
PY_MCP="$("$PY" -c 'from importlib.metadata import version; print(version("mcp"))')"
free_port PY_PORT
PY_URL="http://127.0.0.1:$PY_PORT/mcp"
say ""
say "# Python upstream (MCP SDK $PY_MCP): cd \$TMP && env -i PATH=... $PY $CF_DIR/upstream_add.py $PY_PORT"
(cd "$TMP" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" "$PY" "$CF_DIR/upstream_add.py" "$PY_PORT") \
    >"$TMP/py-upstream.log" 2>&1 &
PY_PID=$!
PIDS+=("$PY_PID")
wait_mcp "$PY_URL" "$PY_PID" "the Python upstream" 300
start_warden warden-py "$PY_URL"
GW_URL="$WARDEN/mcp"
mcp_check "direct tools/call add(5,3) (Python upstream)" "$PY_URL" add
mcp_check "gateway tools/call mcp__add(5,3) (Python upstream)" "$GW_URL" mcp__add "$TOKEN"

compare py "$PY_URL" "$GW_URL" "$CF_WRK_THREADS" "$CF_WRK_CONNS" "$CF_WRK_DURATION" "$CF_SERIAL_DURATION" "$CF_ROUNDS"
kill -0 "$WARDEN_PID" 2>/dev/null || die "warden exited during the Python-upstream runs"
kill -0 "$PY_PID" 2>/dev/null || die "the Python upstream exited during its runs"

# ContextForge's numbers from its results.txt: "LABEL|CONNS|RESULT rps=... p50_ms=... p99_ms=... non2xx=... sock_err=...".
cf_field() { # LABEL CONNS FIELD
    [[ -n "$CF_RESULTS" ]] || { echo "?"; return; }
    awk -F'|' -v l="$1" -v c="$2" '$1 == l && $2 == c { print $3 }' "$CF_RESULTS" |
        sed -nE "s/.*(^| )$3=([0-9.]+).*/\2/p" | head -n 1 | grep . || echo "?"
}
CF_STATELESS="CF stateless (default)"
CF_STATEFUL="CF stateful sessions"

cat "$REPORT1"
say ""
say "## S3 against ContextForge: the same Python upstream (\`upstream_add.py\`, MCP SDK $PY_MCP), wrk -t$CF_WRK_THREADS -c$CF_WRK_CONNS -d$CF_WRK_DURATION and -t1 -c1 -d$CF_SERIAL_DURATION"
say ""
say "ContextForge: $CF_STATUS."
[[ -z "$CF_FAIL_LOGS" ]] || printf '```%s\n```\n' "$CF_FAIL_LOGS"
if [[ -n "$CF_SUMMARY" && -s "$CF_SUMMARY" ]]; then
    say ""
    say "ContextForge's own summary (\`$CF_DIR/bench.sh\`, one run, its own client $CF_DIR/mcp_call.lua):"
    say '```'
    sed '/^$/d' "$CF_SUMMARY"
    say '```'
fi
say ""
say "Warden in front of the same upstream ($CF_ROUNDS alternating rounds, medians; this script's mcp_call.lua):"
say ""
say "| Scenario | Req/s | p50 ms | p99 ms | Non-2xx | Socket errors | Target | Result |"
say "|---|---:|---:|---:|---:|---:|---|---|"
BAD_BODIES=()
table_rows py "$CF_WRK_CONNS" "$CF_ROUNDS" "Python upstream direct \`add\`" "Warden \`/mcp\` \`mcp__add\` → Python upstream"
summarize py g "$CF_WRK_CONNS" "$CF_ROUNDS"
W_RPS="$S_RPS"
paired py 1 "$CF_ROUNDS"
W_ADD="$P_DIFF"
say ""
say "| Warden vs ContextForge (same upstream, same wrk settings) | Value | Target | Result |"
say "|---|---:|---|---|"
for mode in "$CF_STATELESS" "$CF_STATEFUL"; do
    cf_rps="$(cf_field "$mode" "$CF_WRK_CONNS" rps)"
    ratio="$(ratio_of "$W_RPS" "$cf_rps")"
    say "| Warden req/s / $mode req/s at c=$CF_WRK_CONNS ($W_RPS / $cf_rps) | $ratio | >= 10 | $(verdict "$ratio" ">=" 10) |"
done
for mode in "$CF_STATELESS" "$CF_STATEFUL"; do
    cf_add="$(awk -v a="$(cf_field "$mode" 1 p50_ms)" -v b="$(cf_field "upstream direct" 1 p50_ms)" \
        'BEGIN { if (a == "?" || b == "?") print "?"; else printf "%+.2f", a - b }')"
    say "| added p50 at c=1, ms: Warden $W_ADD vs $mode $cf_add | | | |"
done
say ""
say "Notes: ContextForge's rows come from one run of its script (its upstream-direct rows are its own measurement of the"
say "same upstream, in its run); Warden's from $CF_ROUNDS rounds right after it, with the ContextForge script's wrk"
say "settings. Warden's Rust upstream and gateway were stopped before ContextForge ran. Both clients send the same"
say "tools/call with a unique JSON-RPC id per request; ContextForge's script sends MCP-Protocol-Version 2025-11-25,"
say "this one $PROTO_VERSION. ContextForge runs with rate limiting off and one uvicorn worker (its CLI default)."
if ((${#BAD_BODIES[@]})); then
    say "Answers 200 without \"structuredContent\":{\"result\":8}: ${BAD_BODIES[*]}"
else
    say "Every 200 answer of every measured Warden/Python-upstream run held \"structuredContent\":{\"result\":8}."
fi
drain_note "$TMP/warden-py.log"
say ""
log_summary "$TMP/warden-py.log" "Warden log, Python upstream (LOG_LEVEL=warn)"
log_summary "$TMP/py-upstream.log" "Python upstream log"
if [[ -s "$TMP/cf.err" ]]; then
    say "ContextForge script's log (stderr):"
    sed 's/^/    /; s/logs and results kept in .*/& (removed by bench\/mcp.sh at exit)/' "$TMP/cf.err"
fi
# ContextForge's logs: mostly start-up text and one-line JSON records; count the ERROR records and show the most
# frequent of their messages (ids folded).
cf_log_brief() {
    local f=$1 n e
    n="$(wc -l <"$f")"
    e="$(grep -c -E '"levelname": "ERROR"|[[:space:]]ERROR[[:space:]]' "$f" || true)"
    say "ContextForge run, $(basename "$f"): $n lines, $e at ERROR level$([[ $e == 0 ]] || echo '; most frequent:')"
    [[ $e == 0 ]] && return 0
    grep -E '"levelname": "ERROR"|[[:space:]]ERROR[[:space:]]' "$f" |
        sed -E 's/\x1b\[[0-9;]*m//g; s/.*"message": "([^"]*)".*/\1/; s/[0-9a-f]{32}/<id>/g; s/[0-9a-f-]{36}/<id>/g' |
        cut -c1-200 | sort | uniq -c | sort -rn | awk 'NR <= 5' | sed 's/^/    /'
}
if [[ -n "${CF_WORK:-}" ]]; then
    for f in "$CF_WORK"/cf-*.log "$CF_WORK"/upstream.log; do
        [[ -f "$f" ]] && cf_log_brief "$f"
    done
fi
