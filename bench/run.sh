#!/usr/bin/env bash
# Warden benchmark (DESIGN.md "Performance model"): B0 bare axum baseline, S1 authenticated status check,
# S1/B0 ratio, S4 S1 latency during a login flood, and process memory. Prints a markdown table.
#
# Usage: bench/run.sh            (from anywhere; builds the release binary first)
# Knobs (env): WRK_THREADS=2 WRK_CONNS=32 WRK_DURATION=5s ROUNDS=3 WARMUP=2s FLOOD_CONNS=50
#              CARGO_TARGET_DIR=/root/.cache/warden-target
#              WARDEN_BIN=/path/to/warden      (skip the build and use this binary)
#              BENCH_SERVER_ENV="K=V K2=V2"     (extra environment for `warden serve`, for experiments)
#
# The machines are noisy (2 cores, shared): compare the ratios from one run, not absolute numbers across runs.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$REPO/bench"
WRK_THREADS="${WRK_THREADS:-2}"
WRK_CONNS="${WRK_CONNS:-32}"
WRK_DURATION="${WRK_DURATION:-5s}"
ROUNDS="${ROUNDS:-3}"
WARMUP="${WARMUP:-2s}"
FLOOD_CONNS="${FLOOD_CONNS:-50}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/warden-target}"
ADMIN_PASSWORD="bench-admin-password"
read -ra EXTRA_ENV <<<"${BENCH_SERVER_ENV:-}"

say() { printf '%s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# --- Tools ------------------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    say "wrk not found; trying: apt-get install -y wrk"
    apt-get install -y wrk >/dev/null 2>&1 || true
    command -v wrk >/dev/null 2>&1 || die "wrk is not installed and 'apt-get install -y wrk' failed; install wrk (Debian/Ubuntu package 'wrk') and rerun"
fi
command -v curl >/dev/null 2>&1 || die "curl is required"

# --- Cleanup: stop only what this script started, by PID; remove the temp dir --------------------------
TMP="$(mktemp -d -t warden-bench.XXXXXX)"
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT
    if [[ $rc -ne 0 && -f "$TMP/warden.log" ]]; then
        echo "--- last lines of the warden log ---" >&2
        tail -n 20 "$TMP/warden.log" >&2 || true
    fi
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        # Give each up to 5 s to exit cleanly, then force it.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Helpers ----------------------------------------------------------------------------------------------
# A port nothing listens on (connect refused). Ports already handed out are skipped.
USED_PORTS=" "
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        [[ "$USED_PORTS" == *" $p "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            USED_PORTS+="$p "
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

# Poll URL until it answers 200: 100 x 0.1 s, failing early if the process died.
wait_ready() {
    local url=$1 pid=$2 name=$3
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup"
        [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)" == 200 ]] && return 0
        sleep 0.1
    done
    die "$name did not answer 200 on $url within 10 s"
}

rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
hwm_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# wrk prints latencies as 123.45us / 1.23ms / 1.02s / 1.00m; convert to ms.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v; sub(/[a-z]+$/, "", n); u = v; sub(/^[0-9.]+/, "", u)
        f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : -1
        if (v == "" || f < 0) print "?"; else printf "%.2f", n * f }'
}

# Parsers for a saved wrk output file.
wrk_rps()     { awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$1"; }
wrk_pct()     { to_ms "$(awk -v p="$2%" '$1 == p { print $2 }' "$1")"; }
wrk_non2xx()  { awk '/Non-2xx or 3xx responses:/ { n = $NF } END { print n + 0 }' "$1"; }
# Sum of connect/read/write/timeout socket errors.
wrk_errors()  { awk '/Socket errors:/ { gsub(/,/, ""); n = $4 + $6 + $8 + $10 } END { print n + 0 }' "$1"; }

# "10s" / "1m" / "10" -> whole seconds (wrk's duration syntax).
dur_secs() {
    case "$1" in
        *s) echo "${1%s}" ;;
        *m) echo $(("${1%m}" * 60)) ;;
        *h) echo $(("${1%h}" * 3600)) ;;
        *) echo "$1" ;;
    esac
}

# Show a command exactly as run (the session cookie as ${COOKIE}), then run it.
show() {
    local line
    line="$(printf '%q ' "$@")"
    [[ -n "${COOKIE:-}" ]] && line="${line//"$COOKIE"/\$\{COOKIE\}}"
    say "\$ ${line% }"
}

# --- Build ------------------------------------------------------------------------------------------------
if [[ -n "${WARDEN_BIN:-}" ]]; then
    BIN="$WARDEN_BIN"
else
    say "\$ (cd $REPO && CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release)"
    (cd "$REPO" && cargo build --release) || die "release build failed"
    BIN="$CARGO_TARGET_DIR/release/warden"
fi
[[ -x "$BIN" ]] || die "no binary at $BIN"

# --- Start the servers --------------------------------------------------------------------------------------
WARDEN_PORT="$(free_port)"
BASE_PORT="$(free_port)"
WARDEN="http://127.0.0.1:$WARDEN_PORT"
BASE="http://127.0.0.1:$BASE_PORT"
mkdir -p "$TMP/data"

# A clean environment (env -i) so the caller's DATABASE_URL, REDIS_URL, ENVIRONMENT, RUST_LOG... do not leak in;
# cwd is the temp dir so no .env file is picked up and default paths (./logs) land there.
# LOGIN_IP_PER_MINUTE is raised so the S4 flood really hashes passwords instead of being answered 429 by the
# per-address limit (all flood connections come from 127.0.0.1).
SERVER_ENV=(
    PATH="$PATH" HOME="${HOME:-/root}"
    WARDEN_BIND="127.0.0.1:$WARDEN_PORT" WARDEN_DATA_DIR="$TMP/data"
    ADMIN_PASSWORD="$ADMIN_PASSWORD" LOG_LEVEL=warn LOGIN_IP_PER_MINUTE=100000000
    "${EXTRA_ENV[@]}"
)
say "# server: cd \$TMP && env -i ${SERVER_ENV[*]:2} $BIN serve   (TMP=$TMP)"
(cd "$TMP" && exec env -i "${SERVER_ENV[@]}" "$BIN" serve) >"$TMP/warden.log" 2>&1 &
WARDEN_PID=$!
PIDS+=("$WARDEN_PID")

say "# baseline: cd \$TMP && env -i PATH=... LOG_LEVEL=warn $BIN bench-baseline --bind 127.0.0.1:$BASE_PORT"
(cd "$TMP" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" LOG_LEVEL=warn "$BIN" bench-baseline --bind "127.0.0.1:$BASE_PORT") \
    >"$TMP/baseline.log" 2>&1 &
BASE_PID=$!
PIDS+=("$BASE_PID")

wait_ready "$WARDEN/health" "$WARDEN_PID" "warden serve"
wait_ready "$BASE/" "$BASE_PID" "warden bench-baseline"
# The PIDs are the binaries themselves (exec), so /proc/PID/status is the server's memory.
[[ "$(readlink "/proc/$WARDEN_PID/exe")" == "$(readlink -f "$BIN")"* ]] || die "PID $WARDEN_PID is not the warden binary"

sleep 1 # let startup work (migrations, admin creation, background tasks) settle before the idle reading
RSS_IDLE="$(rss_mb "$WARDEN_PID")"
RSS_BASE="$(rss_mb "$BASE_PID")"

# --- Log in (browser cookie mode) ----------------------------------------------------------------------------
LOGIN_BODY="{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\",\"mode\":\"cookie\"}"
show curl -sS -D "\$TMP/login.headers" -o "\$TMP/login.json" -H 'Content-Type: application/json' \
    --data "$LOGIN_BODY" "$WARDEN/auth/login"
code="$(curl -sS -D "$TMP/login.headers" -o "$TMP/login.json" -w '%{http_code}' \
    -H 'Content-Type: application/json' --data "$LOGIN_BODY" "$WARDEN/auth/login")"
[[ "$code" == 200 ]] || die "login answered $code: $(cat "$TMP/login.json")"
# Set-Cookie: auth_token=VALUE; HttpOnly; ... (the name outside production)
COOKIE="$(tr -d '\r' <"$TMP/login.headers" | sed -n 's/^[Ss]et-[Cc]ookie: auth_token=\([^;]*\).*/\1/p' | head -n 1)"
[[ -n "$COOKIE" ]] || die "no auth_token cookie in the login response: $(cat "$TMP/login.headers")"
sleep 0.5
RSS_LOGIN="$(rss_mb "$WARDEN_PID")"

# S1 must really be the authenticated path, not the anonymous answer.
STATUS_JSON="$(curl -sS -H "Cookie: auth_token=$COOKIE" "$WARDEN/api/status")"
[[ "$STATUS_JSON" == *'"authenticated":true'* ]] || die "/api/status with the cookie is not authenticated: $STATUS_JSON"
[[ "$STATUS_JSON" == *'"csrf_token":"'* ]] || die "/api/status did not derive a CSRF token: $STATUS_JSON"

# --- B0 and S1: identical wrk settings, back to back ------------------------------------------------------------
WRK=(wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WRK_DURATION" --timeout 10s --latency)
COOKIE_H=(-H "Cookie: auth_token=$COOKIE")

say ""
say "# warm-up (not reported)"
WARM=(wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WARMUP")
show "${WARM[@]}" "$BASE/"
"${WARM[@]}" "$BASE/" >/dev/null
show "${WARM[@]}" "${COOKIE_H[@]}" "$WARDEN/api/status"
"${WARM[@]}" "${COOKIE_H[@]}" "$WARDEN/api/status" >/dev/null

# Alternating rounds: the machine's speed drifts by tens of percent within a minute, so one B0 run and one S1
# run can land in different weather. Each round pairs them back to back; the median round's ratio is reported.
for r in $(seq "$ROUNDS"); do
    say "# round $r/$ROUNDS, B0: bare axum handler"
    show "${WRK[@]}" "$BASE/"
    "${WRK[@]}" "$BASE/" >"$TMP/b0_$r.txt"
    say "# round $r/$ROUNDS, S1: authenticated status check (COOKIE is the auth_token value from the login above)"
    show "${WRK[@]}" "${COOKIE_H[@]}" "$WARDEN/api/status"
    "${WRK[@]}" "${COOKIE_H[@]}" "$WARDEN/api/status" >"$TMP/s1_$r.txt"
done
# The median round by S1/B0 ratio; its two runs are the rows of the table.
MEDIAN_ROUND="$(for r in $(seq "$ROUNDS"); do
    awk -v r="$r" -v a="$(wrk_rps "$TMP/s1_$r.txt")" -v b="$(wrk_rps "$TMP/b0_$r.txt")" 'BEGIN { printf "%.4f %s\n", a / b, r }'
done | sort -n | awk -v n="$ROUNDS" 'NR == int((n + 1) / 2) { print $2 }')"
ALL_RATIOS="$(for r in $(seq "$ROUNDS"); do
    awk -v a="$(wrk_rps "$TMP/s1_$r.txt")" -v b="$(wrk_rps "$TMP/b0_$r.txt")" 'BEGIN { printf "%.2f ", a / b }'
done)"
cp "$TMP/b0_$MEDIAN_ROUND.txt" "$TMP/b0.txt"
cp "$TMP/s1_$MEDIAN_ROUND.txt" "$TMP/s1.txt"
sleep 1
RSS_S1="$(rss_mb "$WARDEN_PID")" # separates S1's effect on memory from the flood's

# --- S4: S1 while a login flood runs --------------------------------------------------------------------------------
# The flood starts first and outlasts S1 (2 s lead, ~2 s tail), so S1's whole window is under flood.
# A long --timeout so slow (queued) logins are counted as answers rather than wrk timeouts.
FLOOD_SECS=$(($(dur_secs "$WRK_DURATION") + 4))
FLOOD=(wrk -t1 -c"$FLOOD_CONNS" -d"${FLOOD_SECS}s" --timeout 30s --latency -s "$BENCH/login_flood.lua" "$WARDEN/auth/login")
say "# S4: login flood (wrong passwords) in the background"
show "${FLOOD[@]}"
"${FLOOD[@]}" >"$TMP/flood.txt" 2>&1 &
FLOOD_PID=$!
PIDS+=("$FLOOD_PID")
sleep 2
say "# S4: S1 during the flood"
show "${WRK[@]}" "${COOKIE_H[@]}" "$WARDEN/api/status"
"${WRK[@]}" "${COOKIE_H[@]}" "$WARDEN/api/status" >"$TMP/s4.txt"
wait "$FLOOD_PID" || die "the flood wrk failed: $(cat "$TMP/flood.txt")"

sleep 1
RSS_LOADED="$(rss_mb "$WARDEN_PID")"
HWM="$(hwm_mb "$WARDEN_PID")"
kill -0 "$WARDEN_PID" 2>/dev/null || die "warden exited during the benchmark"

# --- Report ------------------------------------------------------------------------------------------------------------
B0_RPS="$(wrk_rps "$TMP/b0.txt")"
S1_RPS="$(wrk_rps "$TMP/s1.txt")"
S4_RPS="$(wrk_rps "$TMP/s4.txt")"
RATIO="$(awk -v a="$S1_RPS" -v b="$B0_RPS" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }')"
S4_P99="$(wrk_pct "$TMP/s4.txt" 99)"
FLOOD_RATE="$(awk '$1 == "FLOOD" && $2 == "requests" { print $7 }' "$TMP/flood.txt")"
FLOOD_P50="$(awk '$1 == "FLOOD" && $2 == "latency_ms" { print $4 }' "$TMP/flood.txt")"
FLOOD_P99="$(awk '$1 == "FLOOD" && $2 == "latency_ms" { print $6 }' "$TMP/flood.txt")"
FLOOD_MIX="$(awk '$1 == "FLOOD" && $2 == "status" { printf "%s%s x%s", sep, $3, $4; sep = ", " }' "$TMP/flood.txt")"
FLOOD_ERR="$(awk '$1 == "FLOOD" && $2 == "errors" { print $4 + $6 + $8 + $10 }' "$TMP/flood.txt")"
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    if (v == "?" || v == "") { print "?"; exit }
    ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 < t + 0); print ok ? "PASS" : "FAIL" }'; }
row() { # name rps p50 p99 non2xx errors target result
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$@"; }

say ""
say "## Warden benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION)"
say ""
say "| Scenario | Req/s | p50 ms | p99 ms | Non-2xx | Socket errors | Target | Result |"
say "|---|---:|---:|---:|---:|---:|---|---|"
for s in b0 s1; do
    case $s in b0) name="B0 bare axum \`GET /\`" ;; s1) name="S1 \`GET /api/status\` (cookie + CSRF)" ;; esac
    row "$name" "$(wrk_rps "$TMP/$s.txt")" "$(wrk_pct "$TMP/$s.txt" 50)" "$(wrk_pct "$TMP/$s.txt" 99)" \
        "$(wrk_non2xx "$TMP/$s.txt")" "$(wrk_errors "$TMP/$s.txt")" "" ""
done
row "S1 / B0 ratio (median of $ROUNDS rounds: $ALL_RATIOS)" "$RATIO" "" "" "" "" ">= 0.60" "$(verdict "$RATIO" ">=" 0.60)"
row "S4 S1 during login flood" "$S4_RPS" "$(wrk_pct "$TMP/s4.txt" 50)" "$S4_P99" \
    "$(wrk_non2xx "$TMP/s4.txt")" "$(wrk_errors "$TMP/s4.txt")" "p99 < 20 ms" "$(verdict "$S4_P99" "<" 20)"
row "S4 flood: \`POST /auth/login\` wrong pw, -c$FLOOD_CONNS (statuses: ${FLOOD_MIX:-none})" \
    "${FLOOD_RATE:-?}" "${FLOOD_P50:-?}" "${FLOOD_P99:-?}" "$(wrk_non2xx "$TMP/flood.txt")" "${FLOOD_ERR:-?}" "" ""
say ""
say "| Memory (VmRSS of the warden process) | MB | Target | Result |"
say "|---|---:|---|---|"
say "| idle, after start | $RSS_IDLE | < 40 | $(verdict "$RSS_IDLE" "<" 40) |"
say "| idle, after one login | $RSS_LOGIN | < 40 | $(verdict "$RSS_LOGIN" "<" 40) |"
say "| after S1 load (before the flood) | $RSS_S1 | | |"
say "| after all load (S1, then S4 flood) | $RSS_LOADED | | |"
say "| peak (VmHWM) | $HWM | | |"
say "| reference: bench-baseline process, idle | $RSS_BASE | | |"
say ""
say "Notes: LOGIN_IP_PER_MINUTE=100000000 so the flood is hashed, not rate-limited (429); the admin account locks"
say "after LOGIN_MAX_FAILURES failures, and locked attempts do the same hashing work. Flood req/s covers the flood's"
say "whole ${FLOOD_SECS}s window (it starts 2 s before S4's S1 run). B0 and S1 ran back to back with the same wrk"
say "settings; the ratio is the comparable number on a noisy machine."

# Anything the server logged at warn/error level during the run.
if [[ -s "$TMP/warden.log" ]]; then
    say ""
    say "Server log (LOG_LEVEL=warn): $(wc -l <"$TMP/warden.log") lines; most frequent messages:"
    sed -E 's/^[^ ]+ +//; s/[0-9a-f-]{36}/<id>/g' "$TMP/warden.log" | sort | uniq -c | sort -rn | head -n 10 | sed 's/^/    /'
else
    say ""
    say "Server log (LOG_LEVEL=warn): empty"
fi
