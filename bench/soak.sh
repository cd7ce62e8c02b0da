#!/usr/bin/env bash
# Soak: mixed load on a release build of Kumo on loopback, for SOAK_SECONDS
# (default 600), with the server's RSS, open descriptors and SQLite files
# sampled every SAMPLE_SECONDS (default 5) into a CSV. Load, all at once:
#   - HTTP: wrk, 8 connections on /hello (installed with apt-get when missing);
#   - uploads: boto3 PUTs into the bucket `soak`, whose storage trigger
#     delivers each one as an event to `hello` (boto3 installed with pip when
#     missing); a timer trigger adds an event every 2 s;
#   - deploys and alias moves: a new version of `hello` through the admin API
#     every DEPLOY_EVERY seconds (default 3), then `live` moved to it.
# At the end it waits for the event queue to drain and checks: no host 5xx
# (gateway, S3, admin API), every acknowledged upload has a delivered event;
# and prints RSS and descriptors at the start, the end and their maximum.
# Exits non-zero when a check fails. It stops by itself.
#
#   SOAK_SECONDS=600 bench/soak.sh            # the CSV and logs stay in SOAK_OUT
#   KUMO_BIN=target/debug/kumo bench/soak.sh  # another build (figures differ)
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECONDS="${SOAK_SECONDS:-600}"
SAMPLE_SECONDS="${SAMPLE_SECONDS:-5}"
DEPLOY_EVERY="${DEPLOY_EVERY:-3}"
SOAK_OUT="${SOAK_OUT:-$(mktemp -d /tmp/kumo-soak.XXXXXX)}"
mkdir -p "$SOAK_OUT"

command -v wrk >/dev/null || { echo "soak: installing wrk" >&2; apt-get install -y -q wrk >/dev/null; }
python3 -c 'import boto3' 2>/dev/null || python3 -m pip install --quiet 'boto3>=1.34'
command -v curl >/dev/null || { echo "soak: curl is missing; hint: apt-get install curl" >&2; exit 1; }

if [ -z "${KUMO_BIN:-}" ]; then
  echo "soak: building (release)" >&2
  cargo build --release -q -p kumo --bin kumo
  KUMO_BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/kumo"
fi
(cd examples && cargo build --release -q --target wasm32-wasip2 -p hello)
HELLO="$(pwd)/examples/target/wasm32-wasip2/release/hello.wasm"

DATA="$SOAK_OUT/data"
cat > "$SOAK_OUT/kumo.toml" <<TOML
[app]
name = "soak"

[function.hello]
source = "$HELLO"
max_instances = 8

[[trigger.http]]
route = "/hello"
function = "hello"

[[trigger.storage]]
name = "uploads"
bucket = "soak"
events = ["ObjectCreated:*"]
function = "hello"

[[trigger.timer]]
name = "tick"
cron = "*/2 * * * * *"
function = "hello"
TOML

SERVER_PID=""
LOAD_PIDS=()
cleanup() {
  for pid in "${LOAD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

env KUMO_STORAGE_LISTEN=127.0.0.1:0 "$KUMO_BIN" up -f "$SOAK_OUT/kumo.toml" \
  --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$DATA" \
  > "$SOAK_OUT/server.out" 2> "$SOAK_OUT/server.err" &
SERVER_PID=$!
for _ in $(seq 120); do grep -q '^kumo: serving ' "$SOAK_OUT/server.out" && break; sleep 1; done
GATEWAY="$(sed -n 's/^kumo: serving \(http[^ ]*\).*/\1/p' "$SOAK_OUT/server.out")"
ADMIN="$(sed -n 's/^kumo: admin api \(http[^ ]*\).*/\1/p' "$SOAK_OUT/server.out")"
STORAGE="$(sed -n 's/^kumo: storage \(http[^ ]*\).*/\1/p' "$SOAK_OUT/server.out")"
[ -n "$GATEWAY" ] && [ -n "$ADMIN" ] && [ -n "$STORAGE" ] || { echo "soak: kumo did not start:" >&2; cat "$SOAK_OUT/server.err" >&2; exit 1; }
TOKEN="$(cat "$DATA/admin-token")"
ACCESS="$(sed -n 's/^access_key = //p' "$DATA/storage-credentials")"
SECRET="$(sed -n 's/^secret_key = //p' "$DATA/storage-credentials")"
AUTH=(-H "Authorization: Bearer $TOKEN")
echo "soak: kumo pid $SERVER_PID, ${SOAK_SECONDS}s of load, output in $SOAK_OUT" >&2

# The storage trigger's bucket `soak` exists from the start.

# The sampler: one CSV line every SAMPLE_SECONDS while the server runs.
CSV="$SOAK_OUT/samples.csv"
echo "seconds,rss_kb,open_fds,sqlite_bytes" > "$CSV"
(
  start=$(date +%s)
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
    fds=$(ls "/proc/$SERVER_PID/fd" 2>/dev/null | wc -l)
    db=$(cat "$DATA"/kumo.db* 2>/dev/null | wc -c)
    echo "$(( $(date +%s) - start )),$rss,$fds,$db" >> "$CSV"
    sleep "$SAMPLE_SECONDS"
  done
) &
LOAD_PIDS+=($!)
sleep "$SAMPLE_SECONDS"

# HTTP: wrk counts the answers of 500 and above itself.
cat > "$SOAK_OUT/count.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) server_errors = 0 end
function response(status, headers, body) if status >= 500 then server_errors = server_errors + 1 end end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("server_errors") end
  io.write(string.format("server_errors %d\n", total))
end
LUA
wrk -t1 -c8 -d"${SOAK_SECONDS}s" -s "$SOAK_OUT/count.lua" "$GATEWAY/hello" > "$SOAK_OUT/wrk.txt" 2>&1 &
WRK_PID=$!
LOAD_PIDS+=($WRK_PID)

python3 bench/soak.py upload "$STORAGE" "$ACCESS" "$SECRET" "$SOAK_SECONDS" "$SOAK_OUT/keys.txt" "$SOAK_OUT/uploads.json" &
UPLOAD_PID=$!
LOAD_PIDS+=($UPLOAD_PID)

# Deploys and alias moves; every admin status is kept.
(
  end=$(( $(date +%s) + SOAK_SECONDS ))
  n=0
  while [ "$(date +%s)" -lt "$end" ]; do
    n=$((n + 1))
    curl -s -o "$SOAK_OUT/deploy.json" -w '%{http_code}\n' "${AUTH[@]}" \
      -F "component=@$HELLO" -F "config={\"env\":{\"SOAK\":\"$n\"}}" \
      "$ADMIN/v1/functions/hello/versions" >> "$SOAK_OUT/admin-statuses.txt" || echo 000 >> "$SOAK_OUT/admin-statuses.txt"
    version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"]["version"])' "$SOAK_OUT/deploy.json" 2>/dev/null || echo "")
    if [ -n "$version" ]; then
      curl -s -o /dev/null -w '%{http_code}\n' "${AUTH[@]}" -X PUT -H 'content-type: application/json' \
        -d "{\"version\":$version}" "$ADMIN/v1/functions/hello/aliases/live" >> "$SOAK_OUT/admin-statuses.txt" || echo 000 >> "$SOAK_OUT/admin-statuses.txt"
    fi
    # Never past the end: a DEPLOY_EVERY longer than the time left would
    # keep the run going after its load stopped.
    left=$(( end - $(date +%s) ))
    if [ "$left" -gt 0 ]; then sleep "$(( DEPLOY_EVERY < left ? DEPLOY_EVERY : left ))"; fi
  done
) &
DEPLOY_PID=$!
LOAD_PIDS+=($DEPLOY_PID)

wait "$WRK_PID" "$UPLOAD_PID" "$DEPLOY_PID" || true

# Let the queue drain (bounded), then check.
for _ in $(seq 120); do
  pending=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True).execute("SELECT count(*) FROM events WHERE state IN (\"pending\",\"retrying\")").fetchone()[0])' "$DATA/kumo.db")
  [ "$pending" = 0 ] && break
  sleep 1
done
sleep "$SAMPLE_SECONDS"

failed=0
http_5xx=$(sed -n 's/^server_errors //p' "$SOAK_OUT/wrk.txt")
http_requests=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$SOAK_OUT/wrk.txt")
s3_5xx=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["server_errors"])' "$SOAK_OUT/uploads.json")
admin_total=$(wc -l < "$SOAK_OUT/admin-statuses.txt")
admin_5xx=$(grep -c '^5' "$SOAK_OUT/admin-statuses.txt" || true)
admin_other=$(grep -vc '^2' "$SOAK_OUT/admin-statuses.txt" || true)
delivery=$(python3 bench/soak.py check "$DATA/kumo.db" "$SOAK_OUT/keys.txt")
acknowledged=$(echo "$delivery" | python3 -c 'import json,sys; print(json.load(sys.stdin)["acknowledged"])')
delivered=$(echo "$delivery" | python3 -c 'import json,sys; print(json.load(sys.stdin)["delivered"])')

echo "soak: ${SOAK_SECONDS}s, samples in $CSV"
echo "  http:    ${http_requests:-?} requests to /hello, ${http_5xx:-?} answered 5xx"
echo "  uploads: $(cat "$SOAK_OUT/uploads.json")"
echo "  events:  $delivered of $acknowledged acknowledged uploads delivered; $delivery"
echo "  admin:   $admin_total deploys and alias moves, $admin_5xx answered 5xx, $admin_other not 2xx"
python3 - "$CSV" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
for column, unit in (("rss_kb", "KiB"), ("open_fds", ""), ("sqlite_bytes", "B")):
    values = [int(row[column]) for row in rows if row[column]]
    print(f"  {column}: start {values[0]} end {values[-1]} max {max(values)} {unit}")
PY
[ "${http_5xx:-1}" = 0 ] || { echo "soak: FAILED: the gateway answered 5xx" >&2; failed=1; }
[ "$s3_5xx" = 0 ] || { echo "soak: FAILED: S3 answered 5xx" >&2; failed=1; }
[ "$admin_5xx" = 0 ] || { echo "soak: FAILED: the admin API answered 5xx" >&2; failed=1; }
[ "$acknowledged" -gt 0 ] && [ "$delivered" = "$acknowledged" ] || { echo "soak: FAILED: acknowledged uploads without a delivered event" >&2; failed=1; }
exit "$failed"
