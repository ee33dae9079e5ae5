#!/usr/bin/env bash
# Push latency between instances (issue 12): two `warden serve` processes on one PostgreSQL database, a session
# logged out on the first, and the time until the second refuses its token (`warden bench-push`: p50, p99, max
# over TRIALS). Run twice: with Redis pub/sub (REDIS_URL, a prefix of its own) and with PostgreSQL NOTIFY only.
# The poll interval is a minute, so only the push is measured.
#
#   bash bench/push.sh                 TRIALS=200, PostgreSQL at 127.0.0.1:5432, Redis at 127.0.0.1:6379
#   WARDEN_BIN=path/to/warden          skip the release build
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TRIALS="${TRIALS:-200}"
PG_ADMIN="${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}"
REDIS="${REDIS:-redis://127.0.0.1:6379/}"

bench_tmp
bench_build
DB="warden_bench_push_$$"
psql -q "$PG_ADMIN" -c "CREATE DATABASE \"$DB\"" || die "cannot create the database on $PG_ADMIN"
drop_db() { psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true; }
trap 'drop_db; bench_cleanup' EXIT
DATABASE_URL="${PG_ADMIN%/*}/$DB"
SIGNING_KEY="$(head -c 48 /dev/urandom | base64 | tr -d '\n')"
SEAL_KEY="$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
REDACT=(SIGNING_KEY SEAL_KEY)

# start_pair NAME [EXTRA_ENV...]: two instances, their URLs in A and B.
start_pair() {
    local name=$1 i port dir pid
    shift
    URLS=()
    for i in 1 2; do
        free_port port
        dir="$TMP/$name-$i"
        mkdir -p "$dir"
        (cd "$dir" && exec env -i PATH="$PATH" WARDEN_DATA_DIR="$dir" WARDEN_BIND="127.0.0.1:$port" \
            DATABASE_URL="$DATABASE_URL" JWT_SECRET_KEY="$SIGNING_KEY" WARDEN_ENCRYPTION_KEY="$SEAL_KEY" \
            WARDEN_PUBLIC_URL=http://warden.bench ADMIN_PASSWORD="$ADMIN_PASSWORD" LOGIN_IP_PER_MINUTE=100000 \
            SYNC_INTERVAL_MS=60000 LOG_LEVEL=warn "$@" "$BIN" serve) >"$TMP/$name-$i.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        wait_ready "http://127.0.0.1:$port/health" "$pid" "warden serve ($name $i)"
        URLS+=("http://127.0.0.1:$port")
        PAIR_PIDS+=("$pid")
    done
}

stop_pair() {
    local pid
    for pid in "${PAIR_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    PAIR_PIDS=()
}

measure() {
    local name=$1
    show "$BIN" bench-push --origin "${URLS[0]}" --other "${URLS[1]}" --trials "$TRIALS"
    local out
    out="$(ADMIN_PASSWORD="$ADMIN_PASSWORD" "$BIN" bench-push --origin "${URLS[0]}" --other "${URLS[1]}" --trials "$TRIALS")"
    say "| $name | $out |"
}

PAIR_PIDS=()
say "## Push: logout on one instance to refusal on another ($TRIALS trials)"
start_pair redis REDIS_URL="$REDIS" REDIS_PREFIX="bench-push-$$"
measure "Redis pub/sub"
stop_pair
start_pair notify
measure "PostgreSQL NOTIFY"
stop_pair
