#!/usr/bin/env bash
# The dashboards over 10 million generated request rows (issue 10): fills a SQLite file and a PostgreSQL
# database through the server's own writer path (raw rows and rollups), then times each dashboard over windows of
# 1 hour to 30 days. Slow the first time (it writes every row); a second run reuses the filled databases.
#   WARDEN_BIN=target/release/warden bash bench/analytics.sh
# Settings: ROWS (10000000), DAYS (30), BENCH_DIR (/tmp/warden-bench-analytics), PG_ADMIN_URL.
set -euo pipefail
BIN=${WARDEN_BIN:-target/release/warden}
ROWS=${ROWS:-10000000}
DAYS=${DAYS:-30}
DIR=${BENCH_DIR:-/tmp/warden-bench-analytics}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_DB=warden_bench_analytics
mkdir -p "$DIR"

echo "## SQLite ($ROWS rows over $DAYS days)"
"$BIN" bench-analytics --database-url "sqlite://$DIR/analytics.db?mode=rwc" --rows "$ROWS" --days "$DAYS"

echo "## PostgreSQL ($ROWS rows over $DAYS days)"
psql "$PG_ADMIN_URL" -qtc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1 \
    || psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $PG_DB"
"$BIN" bench-analytics --database-url "${PG_ADMIN_URL%/*}/$PG_DB" --rows "$ROWS" --days "$DAYS"
echo "(drop them with: rm -r $DIR; psql $PG_ADMIN_URL -c 'DROP DATABASE $PG_DB')"
