#!/usr/bin/env bash
# Warden benchmark, S2: a chat turn (DESIGN.md "Performance model"). Prints markdown tables.
#
#   S2       POST /chat/message (bearer token, {"session_id", "message": "hello"}) against
#              (a) Warden, its language model an instant mock (`warden bench-llm`, a fixed "ok" completion): each
#                  turn checks the token and the ownership, stores 2 rows (user + assistant), reads the history
#                  window and makes one HTTP call to the mock;
#              (b) the Python baseline of the seed backends (/work/shared/peers/seed_fastapi: FastAPI, PyJWT,
#                  SQLAlchemy on SQLite), whose turn does the same work without a model call.
#            Same wrk settings and the same Lua script for both, in alternating rounds; the ratio Warden/Python
#            of the median round is the number to read (target >= 20 on SQLite, >= 10 on PostgreSQL).
#   S2-long  Warden only: a turn in a conversation of >= 1,000 messages against a turn in fresh conversations,
#            alternating rounds; target: long req/s >= fresh req/s / 1.2.
#
# Usage: bench/chat.sh           (from anywhere; builds the release binary first; ~2 min after the build)
# Knobs (env): WRK_THREADS=2 WRK_CONNS=16 WRK_DURATION=10s ROUNDS=3 WARMUP=2s
#              LONG_MESSAGES=1000 LONG_DURATION=5s LONG_ROUNDS=3 FRESH_TURNS=20
#              CARGO_TARGET_DIR=/root/.cache/warden-target
#              WARDEN_BIN=/path/to/warden      (skip the build and use this binary)
#              BENCH_SERVER_ENV="K=V K2=V2"     (extra environment for `warden serve`, for experiments)
#              SEED_DIR=/work/shared/peers/seed_fastapi
#              SEED_VENV=/root/.cache/warden-bench/seed-venv   (created with pip on the first run; needs PyPI)
#
# The machines are noisy (2 cores, shared; wrk, the server and the mock model share them): compare the ratios
# from one run, not absolute numbers across runs.
set -euo pipefail

WRK_THREADS="${WRK_THREADS:-2}"
WRK_CONNS="${WRK_CONNS:-16}"
WRK_DURATION="${WRK_DURATION:-10s}"
ROUNDS="${ROUNDS:-3}"
WARMUP="${WARMUP:-2s}"
LONG_MESSAGES="${LONG_MESSAGES:-1000}"
LONG_DURATION="${LONG_DURATION:-5s}"
LONG_ROUNDS="${LONG_ROUNDS:-3}"
FRESH_TURNS="${FRESH_TURNS:-20}"
SEED_DIR="${SEED_DIR:-/work/shared/peers/seed_fastapi}"
SEED_VENV="${SEED_VENV:-/root/.cache/warden-bench/seed-venv}"
read -ra EXTRA_ENV <<<"${BENCH_SERVER_ENV:-}"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # REPO, BENCH, CARGO_TARGET_DIR, ADMIN_PASSWORD, helpers
# show() prints these as ${NAME}: the two bearer tokens, and the fresh conversations' id list (long).
REDACT=(TOKEN SEED_TOKEN FRESH_IDS)

bench_tools
command -v python3 >/dev/null 2>&1 || die "python3 is required for the Python baseline"
[[ -f "$SEED_DIR/app.py" && -f "$SEED_DIR/run.sh" ]] || die "no Python baseline at $SEED_DIR"
bench_tmp
bench_build

# --- The Python baseline's venv (its run.sh would create it beside itself, in a read-only folder) -----------
if [[ ! -x "$SEED_VENV/bin/uvicorn" ]]; then
    say "# first run: the Python baseline's venv"
    mkdir -p "$(dirname "$SEED_VENV")"
    show python3 -m venv "$SEED_VENV"
    python3 -m venv "$SEED_VENV" || die "python3 -m venv failed"
    show "$SEED_VENV/bin/pip" install -q -r "$SEED_DIR/requirements.txt"
    "$SEED_VENV/bin/pip" install -q -r "$SEED_DIR/requirements.txt" || die "pip install of the baseline failed"
fi

# --- Start the servers ---------------------------------------------------------------------------------------------
free_port LLM_PORT
free_port WARDEN_PORT
free_port SEED_PORT
WARDEN="http://127.0.0.1:$WARDEN_PORT"
SEED="http://127.0.0.1:$SEED_PORT"
mkdir -p "$TMP/data"

say "# mock model: cd \$TMP && env -i PATH=... LOG_LEVEL=warn $BIN bench-llm --bind 127.0.0.1:$LLM_PORT"
(cd "$TMP" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" LOG_LEVEL=warn "$BIN" bench-llm --bind "127.0.0.1:$LLM_PORT") \
    >"$TMP/llm.log" 2>&1 &
LLM_PID=$!
PIDS+=("$LLM_PID")

# A clean environment (env -i) so the caller's DATABASE_URL, REDIS_URL, LLM_*... do not leak in; cwd is the temp
# dir so no .env file is picked up. A fresh SQLite database in $TMP/data.
SERVER_ENV=(
    PATH="$PATH" HOME="${HOME:-/root}"
    WARDEN_BIND="127.0.0.1:$WARDEN_PORT" WARDEN_DATA_DIR="$TMP/data"
    ADMIN_PASSWORD="$ADMIN_PASSWORD" LOG_LEVEL=warn LOGIN_IP_PER_MINUTE=100000 ACCESS_TOKEN_EXPIRE_MINUTES=60
    LLM_PROVIDER=openai LLM_API_URL="http://127.0.0.1:$LLM_PORT/v1" LLM_MODEL=bench OPENAI_API_KEY=bench-key
    "${EXTRA_ENV[@]}"
)
say "# server: cd \$TMP && env -i ${SERVER_ENV[*]:2} $BIN serve   (TMP=$TMP)"
(cd "$TMP" && exec env -i "${SERVER_ENV[@]}" "$BIN" serve) >"$TMP/warden.log" 2>&1 &
WARDEN_PID=$!
PIDS+=("$WARDEN_PID")

# The seed's run.sh execs uvicorn, so this PID becomes the Python server itself. SEED_DB keeps its SQLite file
# in $TMP (run.sh deletes it first: a fresh database).
say "# Python baseline: cd \$TMP && env -i PATH=... PORT=$SEED_PORT SEED_VENV=$SEED_VENV SEED_DB=\$TMP/seed.db bash $SEED_DIR/run.sh"
(cd "$TMP" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" PORT="$SEED_PORT" SEED_VENV="$SEED_VENV" \
    SEED_DB="$TMP/seed.db" bash "$SEED_DIR/run.sh") >"$TMP/seed.log" 2>&1 &
SEED_PID=$!
PIDS+=("$SEED_PID")

wait_ready "http://127.0.0.1:$LLM_PORT/v1/chat/completions" "$LLM_PID" "warden bench-llm" 100 -X POST
wait_ready "$WARDEN/health" "$WARDEN_PID" "warden serve"
wait_ready "$SEED/openapi.json" "$SEED_PID" "the Python baseline (uvicorn)" 300
[[ "$(readlink "/proc/$WARDEN_PID/exe")" == "$(readlink -f "$BIN")"* ]] || die "PID $WARDEN_PID is not the warden binary"
[[ "$(tr '\0' ' ' <"/proc/$SEED_PID/cmdline")" == *uvicorn* ]] || die "PID $SEED_PID is not uvicorn"

# --- Helpers ---------------------------------------------------------------------------------------------------------
# api OUT METHOD URL BEARER [BODY]: one JSON request (shown), the body saved in OUT; prints the status code.
api() {
    local out=$1 method=$2 url=$3 bearer=$4 body=${5:-}
    local cmd=(curl -sS -o "$out" -w '%{http_code}' -X "$method" -H 'Content-Type: application/json')
    [[ -n "$bearer" ]] && cmd+=(-H "Authorization: Bearer $bearer")
    [[ -n "$body" ]] && cmd+=(--data "$body")
    show "${cmd[@]}" "$url" >&2
    "${cmd[@]}" "$url"
}
# Flat JSON fields (these responses have no nesting where the fields are).
json_str() { grep -o "\"$2\":\"[^\"]*\"" "$1" | head -n 1 | cut -d'"' -f4; }
json_num() { grep -o "\"$2\":[0-9]*" "$1" | head -n 1 | cut -d: -f2; }

message_count() {
    local code
    code="$(curl -sS -o "$TMP/count.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$WARDEN/chat/session/$1")"
    [[ "$code" == 200 ]] || die "GET /chat/session/$1 answered $code: $(cat "$TMP/count.json")"
    json_num "$TMP/count.json" message_count
}

# new_sessions N: N new Warden conversations (one curl, one connection), their ids comma-separated.
new_sessions() {
    local n=$1 urls=() i
    for ((i = 0; i < n; i++)); do urls+=("$WARDEN/chat/session/new"); done
    curl -sS -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" --data '{"title":"bench"}' \
        "${urls[@]}" >"$TMP/pool.json"
    grep -o '"session_id":"[^"]*"' "$TMP/pool.json" | cut -d'"' -f4 | paste -sd, -
}

# chat_wrk OUT URL BEARER SESSIONS DURATION [STOP_AFTER]: wrk with chat_turn.lua, output (and stderr) in OUT.
chat_wrk() {
    local out=$1 url=$2 bearer=$3 sessions=$4 duration=$5 stop=${6:-}
    local cmd=(env CHAT_TOKEN="$bearer" CHAT_SESSIONS="$sessions")
    [[ -n "$stop" ]] && cmd+=(CHAT_STOP_AFTER="$stop")
    cmd+=(wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$duration" --timeout 10s --latency -s "$BENCH/chat_turn.lua" "$url")
    show "${cmd[@]}"
    "${cmd[@]}" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
    grep -q 'chat_turn.lua' "$out" && die "the wrk script failed: $(grep 'chat_turn.lua' "$out" | head -n 3)"
    return 0
}
# "200 x5833, 404 x2" from the CHAT status lines of a wrk output.
wrk_statuses() { awk '$1 == "CHAT" && $2 == "status" { printf "%s%s x%s", sep, $3, $4; sep = ", " }' "$1"; }
wrk_count()    { awk -v s="$2" '$1 == "CHAT" && $2 == "status" && $3 == s { n = $4 } END { print n + 0 }' "$1"; }
median()       { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# --- Log in and open a conversation on each server; one checked turn each ---------------------------------------------
say ""
say "# Warden: log in, open a conversation, one turn (TOKEN is the access_token from the login)"
code="$(api "$TMP/login.json" POST "$WARDEN/auth/login" "" "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}")"
[[ "$code" == 200 ]] || die "Warden login answered $code: $(cat "$TMP/login.json")"
TOKEN="$(json_str "$TMP/login.json" access_token)"
[[ -n "$TOKEN" ]] || die "no access_token in the Warden login response"
code="$(api "$TMP/session.json" POST "$WARDEN/chat/session/new" "$TOKEN" '{"title":"bench"}')"
[[ "$code" == 200 ]] || die "Warden /chat/session/new answered $code: $(cat "$TMP/session.json")"
SID="$(json_str "$TMP/session.json" session_id)"
[[ -n "$SID" ]] || die "no session_id from Warden: $(cat "$TMP/session.json")"
code="$(api "$TMP/turn.json" POST "$WARDEN/chat/message" "$TOKEN" "{\"session_id\":\"$SID\",\"message\":\"hello\"}")"
[[ "$code" == 200 && "$(cat "$TMP/turn.json")" == *'"content":"ok"'* ]] ||
    die "the Warden turn answered $code, not 200 with \"content\":\"ok\": $(cat "$TMP/turn.json")"
[[ "$(message_count "$SID")" == 2 ]] || die "one Warden turn did not store 2 messages: $(cat "$TMP/count.json")"

say "# Python baseline: log in, open a conversation, one turn (SEED_TOKEN is the token from the login)"
code="$(api "$TMP/seed_login.json" POST "$SEED/auth/login" "" '{"username":"root","password":"root"}')"
[[ "$code" == 200 ]] || die "baseline login answered $code: $(cat "$TMP/seed_login.json")"
SEED_TOKEN="$(json_str "$TMP/seed_login.json" token)"
[[ -n "$SEED_TOKEN" ]] || die "no token in the baseline login response"
code="$(api "$TMP/seed_session.json" POST "$SEED/chat/session/new" "$SEED_TOKEN" '{"title":"bench"}')"
[[ "$code" == 200 ]] || die "baseline /chat/session/new answered $code: $(cat "$TMP/seed_session.json")"
SEED_SID="$(json_str "$TMP/seed_session.json" session_id)"
[[ -n "$SEED_SID" ]] || die "no session_id from the baseline: $(cat "$TMP/seed_session.json")"
code="$(api "$TMP/seed_turn.json" POST "$SEED/chat/message" "$SEED_TOKEN" "{\"session_id\":\"$SEED_SID\",\"message\":\"hello\"}")"
[[ "$code" == 200 && "$(cat "$TMP/seed_turn.json")" == *'"success":true'* ]] ||
    die "the baseline turn answered $code: $(cat "$TMP/seed_turn.json")"

# --- S2: Warden and the baseline, same wrk settings, alternating rounds ---------------------------------------------------
say ""
say "# warm-up (not reported)"
chat_wrk "$TMP/warm_w.txt" "$WARDEN/chat/message" "$TOKEN" "$SID" "$WARMUP"
chat_wrk "$TMP/warm_p.txt" "$SEED/chat/message" "$SEED_TOKEN" "$SEED_SID" "$WARMUP"
# CPU time (clock ticks, user and system) each server process spends during the measured S2 runs.
cpu_user() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 }'; }
cpu_sys()  { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $13 }'; }
declare -A TICKS=()
# tick_start NAME PID / tick_end NAME PID: add the ticks between the two calls to TICKS[NAME_user|NAME_sys].
tick_start() { TICKS[$1_u0]="$(cpu_user "$2")"; TICKS[$1_s0]="$(cpu_sys "$2")"; }
tick_end() {
    TICKS[$1_user]=$((${TICKS[$1_user]:-0} + $(cpu_user "$2") - TICKS[$1_u0]))
    TICKS[$1_sys]=$((${TICKS[$1_sys]:-0} + $(cpu_sys "$2") - TICKS[$1_s0]))
}
for r in $(seq "$ROUNDS"); do
    say "# round $r/$ROUNDS, S2 Warden"
    tick_start warden "$WARDEN_PID"; tick_start llm "$LLM_PID"
    chat_wrk "$TMP/s2w_$r.txt" "$WARDEN/chat/message" "$TOKEN" "$SID" "$WRK_DURATION"
    tick_end warden "$WARDEN_PID"; tick_end llm "$LLM_PID"
    say "# round $r/$ROUNDS, S2 Python baseline"
    tick_start python "$SEED_PID"
    chat_wrk "$TMP/s2p_$r.txt" "$SEED/chat/message" "$SEED_TOKEN" "$SEED_SID" "$WRK_DURATION"
    tick_end python "$SEED_PID"
done
ratio_of() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }'; }
MEDIAN_ROUND="$(for r in $(seq "$ROUNDS"); do
    awk -v r="$r" -v a="$(wrk_rps "$TMP/s2w_$r.txt")" -v b="$(wrk_rps "$TMP/s2p_$r.txt")" \
        'BEGIN { printf "%.4f %s\n", (b > 0 ? a / b : 0), r }'
done | sort -n | awk -v n="$ROUNDS" 'NR == int((n + 1) / 2) { print $2 }')"
ALL_RATIOS="$(for r in $(seq "$ROUNDS"); do
    printf '%s ' "$(ratio_of "$(wrk_rps "$TMP/s2w_$r.txt")" "$(wrk_rps "$TMP/s2p_$r.txt")")"
done)"
S2W="$TMP/s2w_$MEDIAN_ROUND.txt"
S2P="$TMP/s2p_$MEDIAN_ROUND.txt"
S2_RATIO="$(ratio_of "$(wrk_rps "$S2W")" "$(wrk_rps "$S2P")")"
RSS_WARDEN="$(rss_mb "$WARDEN_PID")"
RSS_SEED="$(rss_mb "$SEED_PID")"
kill -0 "$WARDEN_PID" 2>/dev/null || die "warden exited during S2"
kill -0 "$SEED_PID" 2>/dev/null || die "the baseline exited during S2"

# --- S2-long: a turn in a conversation of >= LONG_MESSAGES messages vs in fresh ones (Warden) -----------------------------
say ""
say "# S2-long: fill a conversation to >= $LONG_MESSAGES messages (bounded: at most 10 wrk runs of 2 s)"
code="$(api "$TMP/long.json" POST "$WARDEN/chat/session/new" "$TOKEN" '{"title":"bench-long"}')"
[[ "$code" == 200 ]] || die "Warden /chat/session/new answered $code: $(cat "$TMP/long.json")"
LONG_ID="$(json_str "$TMP/long.json" session_id)"
LONG_COUNT=0
for i in $(seq 10); do
    LONG_COUNT="$(message_count "$LONG_ID")"
    ((LONG_COUNT >= LONG_MESSAGES)) && break
    # A turn adds 2 messages; each wrk thread stops after its share of the turns still needed.
    per_thread=$(((LONG_MESSAGES - LONG_COUNT + 1) / 2 / WRK_THREADS + 1))
    chat_wrk "$TMP/fill_$i.txt" "$WARDEN/chat/message" "$TOKEN" "$LONG_ID" 2s "$per_thread"
done
((LONG_COUNT >= LONG_MESSAGES)) || die "the long conversation has $LONG_COUNT messages after 10 fills, not $LONG_MESSAGES"
say "# the long conversation has $LONG_COUNT messages (GET /chat/session/$LONG_ID: message_count)"
LONG_START="$LONG_COUNT"

# A single fresh conversation would itself pass 1,000 messages within one run at this rate, so the fresh side is a
# pool of new conversations per round, round-robin, sized so each gets ~FRESH_TURNS turns (<= ~2*FRESH_TURNS
# messages, within the 40-message history window by default).
S2W_RPS="$(wrk_rps "$S2W")"
FRESH_N="$(awk -v r="$S2W_RPS" -v d="$(dur_secs "$LONG_DURATION")" -v t="$FRESH_TURNS" \
    'BEGIN { n = int(r * d / t) + 1; if (n > 1000) n = 1000; print n }')"
FRESH_RPS=() LONG_RPS=()
for r in $(seq "$LONG_ROUNDS"); do
    say "# round $r/$LONG_ROUNDS, S2-long fresh: $FRESH_N new conversations (FRESH_IDS), created with one curl:"
    say "\$ curl -sS -H 'Content-Type: application/json' -H 'Authorization: Bearer \${TOKEN}' --data '{\"title\":\"bench\"}' $WARDEN/chat/session/new  (x$FRESH_N)"
    FRESH_IDS="$(new_sessions "$FRESH_N")"
    n="$(tr ',' '\n' <<<"$FRESH_IDS" | grep -c .)"
    [[ "$n" == "$FRESH_N" ]] || die "created $n of $FRESH_N conversations: $(head -c 300 "$TMP/pool.json")"
    chat_wrk "$TMP/fresh_$r.txt" "$WARDEN/chat/message" "$TOKEN" "$FRESH_IDS" "$LONG_DURATION"
    FRESH_RPS+=("$(wrk_rps "$TMP/fresh_$r.txt")")
    say "# round $r/$LONG_ROUNDS, S2-long long: the conversation of $(message_count "$LONG_ID") messages"
    chat_wrk "$TMP/long_$r.txt" "$WARDEN/chat/message" "$TOKEN" "$LONG_ID" "$LONG_DURATION"
    LONG_RPS+=("$(wrk_rps "$TMP/long_$r.txt")")
done
LONG_END="$(message_count "$LONG_ID")"
FRESH_MED="$(median "${FRESH_RPS[@]}")"
LONG_MED="$(median "${LONG_RPS[@]}")"
LONG_RATIO="$(ratio_of "$FRESH_MED" "$LONG_MED")"
# The run whose req/s is the median gives the latency columns.
pick_run() { local prefix=$1 med=$2 r; for r in $(seq "$LONG_ROUNDS"); do
    [[ "$(wrk_rps "$TMP/${prefix}_$r.txt")" == "$med" ]] && { echo "$TMP/${prefix}_$r.txt"; return; }; done; }
FRESH_RUN="$(pick_run fresh "$FRESH_MED")"
LONG_RUN="$(pick_run long "$LONG_MED")"
FRESH_MSGS="$(awk -v n="$(wrk_count "$FRESH_RUN" 200)" -v k="$FRESH_N" 'BEGIN { printf "%.0f", 2 * n / k }')"
kill -0 "$WARDEN_PID" 2>/dev/null || die "warden exited during S2-long"

# --- Report ------------------------------------------------------------------------------------------------------------
ALL_NON2XX=0
for f in "$TMP"/s2?_*.txt "$TMP"/fresh_*.txt "$TMP"/long_*.txt; do ALL_NON2XX=$((ALL_NON2XX + $(wrk_non2xx "$f"))); done
ALL_ERRORS=0
for f in "$TMP"/s2?_*.txt "$TMP"/fresh_*.txt "$TMP"/long_*.txt; do ALL_ERRORS=$((ALL_ERRORS + $(wrk_errors "$f"))); done

say ""
say "## Warden benchmark S2 ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION, rounds: $ROUNDS)"
say ""
say "| Scenario | Req/s | p50 ms | p99 ms | Non-2xx | Socket errors | Target | Result |"
say "|---|---:|---:|---:|---:|---:|---|---|"
row "S2 Warden \`POST /chat/message\` (bearer, 2 rows, 1 call to the mock model; statuses: $(wrk_statuses "$S2W"))" \
    "$(wrk_rps "$S2W")" "$(wrk_pct "$S2W" 50)" "$(wrk_pct "$S2W" 99)" "$(wrk_non2xx "$S2W")" "$(wrk_errors "$S2W")" "" ""
row "S2 Python seed baseline \`POST /chat/message\` (bearer, 2 rows, no model; statuses: $(wrk_statuses "$S2P"))" \
    "$(wrk_rps "$S2P")" "$(wrk_pct "$S2P" 50)" "$(wrk_pct "$S2P" 99)" "$(wrk_non2xx "$S2P")" "$(wrk_errors "$S2P")" "" ""
# The issue's targets: 20x on SQLite, 10x on PostgreSQL (BENCH_SERVER_ENV with a postgres:// DATABASE_URL).
S2_TARGET=20
[[ " ${EXTRA_ENV[*]} " == *" DATABASE_URL=postgres"* ]] && S2_TARGET=10
row "S2 Warden / Python ratio (median of $ROUNDS rounds: $ALL_RATIOS)" "$S2_RATIO" "" "" "" "" ">= $S2_TARGET" \
    "$(verdict "$S2_RATIO" ">=" "$S2_TARGET")"
say ""
say "## S2-long (Warden; wrk -t$WRK_THREADS -c$WRK_CONNS -d$LONG_DURATION, $LONG_ROUNDS alternating rounds, medians)"
say ""
say "| Scenario | Req/s | p50 ms | p99 ms | Non-2xx | Socket errors | Target | Result |"
say "|---|---:|---:|---:|---:|---:|---|---|"
row "fresh: $FRESH_N new conversations per round, round-robin (~$FRESH_MSGS messages each at the end; rounds: ${FRESH_RPS[*]})" \
    "$FRESH_MED" "$(wrk_pct "$FRESH_RUN" 50)" "$(wrk_pct "$FRESH_RUN" 99)" "$(wrk_non2xx "$FRESH_RUN")" "$(wrk_errors "$FRESH_RUN")" "" ""
row "long: one conversation, $LONG_START messages at the start, $LONG_END at the end (rounds: ${LONG_RPS[*]})" \
    "$LONG_MED" "$(wrk_pct "$LONG_RUN" 50)" "$(wrk_pct "$LONG_RUN" 99)" "$(wrk_non2xx "$LONG_RUN")" "$(wrk_errors "$LONG_RUN")" "" ""
row "cost of a long turn: fresh req/s / long req/s" "$LONG_RATIO" "" "" "" "" "<= 1.20" "$(verdict "$LONG_RATIO" "<=" 1.2)"
say ""
# Server CPU per answered S2 turn over all rounds: a second view of the cost, less sensitive to how the 2 cores
# are shared with wrk (and, for Warden, with the mock model).
W_OK=0 P_OK=0
for r in $(seq "$ROUNDS"); do
    W_OK=$((W_OK + $(wrk_count "$TMP/s2w_$r.txt" 200))) P_OK=$((P_OK + $(wrk_count "$TMP/s2p_$r.txt" 200)))
done
TCK="$(getconf CLK_TCK)"
per_turn() { awk -v t="$1" -v n="$2" -v h="$TCK" 'BEGIN { if (n > 0) printf "%.0f", t * 1e6 / h / n; else print "?" }'; }
cpu_row() { # label name turns
    local u=${TICKS[$2_user]} s=${TICKS[$2_sys]}
    CPU_TOTAL[$2]="$(per_turn $((u + s)) "$3")"
    say "| $1 | $(per_turn "$u" "$3") | $(per_turn "$s" "$3") | ${CPU_TOTAL[$2]} |"
}
declare -A CPU_TOTAL=()
say "| Server CPU per S2 turn (all $ROUNDS rounds) | user µs | system µs | total µs |"
say "|---|---:|---:|---:|"
cpu_row "warden serve ($W_OK turns)" warden "$W_OK"
cpu_row "mock model (\`warden bench-llm\`), per Warden turn" llm "$W_OK"
cpu_row "Python baseline ($P_OK turns)" python "$P_OK"
say "| Python / Warden (warden serve only) | | | $(ratio_of "${CPU_TOTAL[python]}" "${CPU_TOTAL[warden]}") |"
say ""
say "| Memory (VmRSS after S2) | MB |"
say "|---|---:|"
say "| warden serve | $RSS_WARDEN |"
say "| Python baseline (uvicorn) | $RSS_SEED |"
say ""
say "Notes: all S2 and S2-long runs together: $ALL_NON2XX non-2xx responses, $ALL_ERRORS socket errors. Warden's turn"
say "includes an HTTP round trip to the mock model (\`warden bench-llm\`, on the same 2 cores); the baseline makes none."
say "Rows shown are the median round (S2, by ratio) and the median-req/s run (S2-long). LOGIN_IP_PER_MINUTE=100000,"
say "ACCESS_TOKEN_EXPIRE_MINUTES=60; the baseline's token lives 24 h. S2-long's fresh side is a pool of new conversations"
say "because one new conversation would itself pass 1,000 messages within a single run at this rate; the long"
say "conversation keeps growing through the rounds (its start and end counts are in its row)."
say ""
log_summary "$TMP/warden.log" "Warden log (LOG_LEVEL=warn)"
log_summary "$TMP/llm.log" "Mock model log"
log_summary "$TMP/seed.log" "Python baseline log (--log-level warning)"
