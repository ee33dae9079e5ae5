# Shared helpers for the benchmark scripts (bench/run.sh, bench/chat.sh). Source it; it runs nothing by itself
# except setting a few variables. Callers use `set -euo pipefail`.
#
#   bench_tools        wrk (apt-get install as a fallback) and curl, or die
#   bench_tmp          TMP (a temp dir), PIDS (processes to stop), and the EXIT/INT/TERM cleanup
#   bench_build        BIN: $WARDEN_BIN, or `cargo build --release` and $CARGO_TARGET_DIR/release/warden
#   show CMD...        print a command as run, with the values of the variables named in REDACT as ${NAME}
#   callgrind_tools    valgrind (apt-get install as a fallback), python3 and curl, or die
#   callgrind_serve LOG [K=V...]   `warden serve` under callgrind, ready and logged in (see below)
#   callgrind_measure PID CMD...   the instructions PID executes while CMD runs (see below)

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$REPO/bench"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/root/.cache/warden-target}"
ADMIN_PASSWORD="bench-admin-password"
REDACT=()

say() { printf '%s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# --- Tools ------------------------------------------------------------------------------------------------
bench_tools() {
    if ! command -v wrk >/dev/null 2>&1; then
        say "wrk not found; trying: apt-get install -y wrk"
        apt-get install -y wrk >/dev/null 2>&1 || true
        command -v wrk >/dev/null 2>&1 || die "wrk is not installed and 'apt-get install -y wrk' failed; install wrk (Debian/Ubuntu package 'wrk') and rerun"
    fi
    command -v curl >/dev/null 2>&1 || die "curl is required"
}

# --- Cleanup: stop only what this script started, by PID; remove the temp dir --------------------------
bench_tmp() {
    TMP="$(mktemp -d -t warden-bench.XXXXXX)"
    PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

bench_cleanup() {
    local rc=$?
    trap - EXIT
    if [[ $rc -ne 0 ]]; then
        local log
        for log in "$TMP"/*.log; do
            [[ -s "$log" ]] || continue
            echo "--- last lines of $(basename "$log") ---" >&2
            tail -n 20 "$log" >&2 || true
        done
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

# --- Build ------------------------------------------------------------------------------------------------
bench_build() {
    if [[ -n "${WARDEN_BIN:-}" ]]; then
        BIN="$WARDEN_BIN"
    else
        say "\$ (cd $REPO && CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release)"
        (cd "$REPO" && cargo build --release) || die "release build failed"
        BIN="$CARGO_TARGET_DIR/release/warden"
    fi
    [[ -x "$BIN" ]] || die "no binary at $BIN"
}

# --- Processes and ports ------------------------------------------------------------------------------------
# free_port VAR: set VAR to a port nothing listens on (connect refused). Ports already handed out are skipped
# (VAR is set in this shell rather than printed, so the list of handed-out ports survives).
USED_PORTS=" "
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        [[ "$USED_PORTS" == *" $p "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            USED_PORTS+="$p "
            printf -v "$1" '%s' "$p"
            return 0
        fi
    done
    die "no free port found"
}

# wait_ready URL PID NAME [TRIES [CURL_ARGS...]]: poll URL until it answers 200, TRIES (default 100) x 0.1 s,
# failing early if the process died. CURL_ARGS (e.g. -X POST) go to each probe.
wait_ready() {
    local url=$1 pid=$2 name=$3 tries=${4:-100}
    shift $(($# < 4 ? $# : 4))
    for _ in $(seq "$tries"); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during startup"
        [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$url" || true)" == 200 ]] && return 0
        sleep 0.1
    done
    die "$name did not answer 200 on $url within $((tries / 10)) s"
}

rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
hwm_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# --- wrk output -----------------------------------------------------------------------------------------------
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

# --- Printing ----------------------------------------------------------------------------------------------------
# Show a command exactly as run, with secrets (the values of the variables named in REDACT) as ${NAME}.
show() {
    local line name
    line="$(printf '%q ' "$@")"
    for name in "${REDACT[@]}"; do
        [[ -n "${!name:-}" ]] || continue
        # As given, and as printf %q escaped it (e.g. commas in a list).
        line="${line//"$(printf '%q' "${!name}")"/\$\{$name\}}"
        line="${line//"${!name}"/\$\{$name\}}"
    done
    say "\$ ${line% }"
}

verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    if (v == "?" || v == "") { print "?"; exit }
    ok = (op == ">=") ? (v + 0 >= t + 0) : (op == "<=") ? (v + 0 <= t + 0) : (v + 0 < t + 0); print ok ? "PASS" : "FAIL" }'; }

row() { # name rps p50 p99 non2xx errors target result
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$@"; }

# log_summary FILE LABEL: what a server logged, most frequent lines first (colour codes removed, leading timestamp
# and ids folded).
log_summary() {
    local file=$1 label=$2
    if [[ -s "$file" ]]; then
        say "$label: $(wc -l <"$file") lines; most frequent messages:"
        sed -E 's/\x1b\[[0-9;]*m//g; s/^[^ ]+ +//; s/[0-9a-f-]{36}/<id>/g' "$file" | sort | uniq -c | sort -rn | awk 'NR <= 10' | sed 's/^/    /'
    else
        say "$label: empty"
    fi
}

# --- Instruction counts (bench/*_instructions.sh) ----------------------------------------------------------
callgrind_tools() {
    command -v valgrind >/dev/null 2>&1 || apt-get install -y valgrind >/dev/null 2>&1 ||
        die "valgrind is not installed and 'apt-get install -y valgrind' failed"
    command -v python3 >/dev/null 2>&1 || die "python3 is required"
    command -v curl >/dev/null 2>&1 || die "curl is required"
}

# callgrind_serve LOG [K=V...]: starts `warden serve` under callgrind (instrumentation off until callgrind_measure
# switches it on) on a free port, with a fresh data dir in $TMP and the given extra environment; waits until it
# answers, logs in as the admin. Sets SERVE_PORT, SERVE_PID and TOKEN; its output goes to $TMP/LOG.
callgrind_serve() {
    local log=$1 login
    shift
    free_port SERVE_PORT
    mkdir -p "$TMP/data"
    (cd "$TMP" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" WARDEN_BIND="127.0.0.1:$SERVE_PORT" \
        WARDEN_DATA_DIR="$TMP/data" ADMIN_PASSWORD="$ADMIN_PASSWORD" LOG_LEVEL=warn LOGIN_IP_PER_MINUTE=100000 \
        ACCESS_TOKEN_EXPIRE_MINUTES=60 "$@" \
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$TMP/callgrind.out" "$BIN" serve) \
        >"$TMP/$log" 2>&1 &
    SERVE_PID=$!
    PIDS+=("$SERVE_PID")
    wait_ready "http://127.0.0.1:$SERVE_PORT/health" "$SERVE_PID" "warden serve under valgrind" 600
    login="{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}"
    TOKEN="$(curl -sS -H 'Content-Type: application/json' --data "$login" "http://127.0.0.1:$SERVE_PORT/auth/login" |
        grep -o '"access_token":"[^"]*"' | cut -d'"' -f4 || true)"
    [[ -n "$TOKEN" ]] || die "no access_token in the login response"
}

# callgrind_measure PID CMD...: prints the instructions the server PID executed while CMD ran. The server runs
# under `valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$TMP/callgrind.out"`; counting is
# switched on for CMD only, and stays on a second after it for the log writers' last batches (they wait 5 ms for
# more). KEEP_CALLGRIND=/path keeps the dump, for callgrind_annotate.
callgrind_measure() {
    local pid=$1 total
    shift
    callgrind_control -i on "$pid" >/dev/null 2>&1
    "$@" >&2 || die "the measured run failed: $*"
    sleep 1
    callgrind_control -i off "$pid" >/dev/null 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1
    for _ in $(seq 50); do [[ -s "$TMP/callgrind.out.1" ]] && break; sleep 0.1; done
    total="$(awk '/^totals:/ { print $2 }' "$TMP/callgrind.out.1")"
    [[ -n "$total" ]] || die "no totals in the callgrind dump"
    if [[ -n "${KEEP_CALLGRIND:-}" ]]; then cp "$TMP/callgrind.out.1" "$KEEP_CALLGRIND"; fi
    printf '%s\n' "$total"
}
