#!/usr/bin/env bash
# Warden benchmark (DESIGN.md "Performance model"): B0 bare axum baseline, S1 authenticated status check,
# S1/B0 ratio, S1 with analytics on against a second server with ANALYTICS_ENABLED=false (issue 10: within 10%),
# S4 S1 latency during a login flood, and process memory. Prints a markdown table.
#
# Usage: bench/run.sh            (from anywhere; builds the release binary first)
# Knobs (env): WRK_THREADS=2 WRK_CONNS=32 WRK_DURATION=5s ROUNDS=3 WARMUP=2s FLOOD_CONNS=50
#              CARGO_TARGET_DIR=/root/.cache/warden-target
#              WARDEN_BIN=/path/to/warden      (skip the build and use this binary)
#              BENCH_SERVER_ENV="K=V K2=V2"     (extra environment for `warden serve`, for experiments)
#
# The machines are noisy (2 cores, shared): compare the ratios from one run, not absolute numbers across runs.
set -euo pipefail

WRK_THREADS="${WRK_THREADS:-2}"
WRK_CONNS="${WRK_CONNS:-32}"
WRK_DURATION="${WRK_DURATION:-5s}"
ROUNDS="${ROUNDS:-3}"
WARMUP="${WARMUP:-2s}"
FLOOD_CONNS="${FLOOD_CONNS:-50}"
read -ra EXTRA_ENV <<<"${BENCH_SERVER_ENV:-}"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # REPO, BENCH, CARGO_TARGET_DIR, ADMIN_PASSWORD, helpers
REDACT=(COOKIE)                                 # show() prints the session cookie as ${COOKIE}

bench_tools
bench_tmp
bench_build

# --- Start the servers --------------------------------------------------------------------------------------
free_port WARDEN_PORT
free_port BASE_PORT
free_port OFF_PORT
WARDEN="http://127.0.0.1:$WARDEN_PORT"
OFF="http://127.0.0.1:$OFF_PORT"
BASE="http://127.0.0.1:$BASE_PORT"
mkdir -p "$TMP/data" "$TMP/off/data"

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

# The same server with the request log off: S1 against it shows what analytics costs, in the same rounds.
OFF_ENV=("${SERVER_ENV[@]}" WARDEN_BIND="127.0.0.1:$OFF_PORT" WARDEN_DATA_DIR="$TMP/off/data" ANALYTICS_ENABLED=false)
say "# analytics off: cd \$TMP/off && env -i ... WARDEN_BIND=127.0.0.1:$OFF_PORT ANALYTICS_ENABLED=false $BIN serve"
(cd "$TMP/off" && exec env -i "${OFF_ENV[@]}" "$BIN" serve) >"$TMP/off.log" 2>&1 &
OFF_PID=$!
PIDS+=("$OFF_PID")

wait_ready "$WARDEN/health" "$WARDEN_PID" "warden serve"
wait_ready "$BASE/" "$BASE_PID" "warden bench-baseline"
wait_ready "$OFF/health" "$OFF_PID" "warden serve (analytics off)"
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
curl -sS -D "$TMP/off/login.headers" -o /dev/null -H 'Content-Type: application/json' --data "$LOGIN_BODY" "$OFF/auth/login"
OFF_COOKIE="$(tr -d '\r' <"$TMP/off/login.headers" | sed -n 's/^[Ss]et-[Cc]ookie: auth_token=\([^;]*\).*/\1/p' | head -n 1)"
[[ -n "$OFF_COOKIE" ]] || die "no auth_token cookie from the analytics-off server"

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
    say "# round $r/$ROUNDS, S1 with ANALYTICS_ENABLED=false (OFF_COOKIE: that server's login)"
    show "${WRK[@]}" -H "Cookie: auth_token=\${OFF_COOKIE}" "$OFF/api/status"
    "${WRK[@]}" -H "Cookie: auth_token=$OFF_COOKIE" "$OFF/api/status" >"$TMP/s1off_$r.txt"
done
# Analytics cost: S1 (on) / S1 (off) per round, the median round reported.
OFF_RATIOS="$(for r in $(seq "$ROUNDS"); do
    awk -v a="$(wrk_rps "$TMP/s1_$r.txt")" -v b="$(wrk_rps "$TMP/s1off_$r.txt")" 'BEGIN { printf "%.2f\n", a / b }'
done)"
OFF_RATIO="$(sort -n <<<"$OFF_RATIOS" | awk -v n="$ROUNDS" 'NR == int((n + 1) / 2)')"
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
row "S1 analytics on / off (median of $ROUNDS rounds: $(tr '\n' ' ' <<<"$OFF_RATIOS"))" "$OFF_RATIO" "" "" "" "" ">= 0.90" "$(verdict "$OFF_RATIO" ">=" 0.90)"
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
say ""
log_summary "$TMP/warden.log" "Server log (LOG_LEVEL=warn)"
say $'\nS2 (a chat turn, against a mock language model and the Python seed baseline) is bench/chat.sh.'
