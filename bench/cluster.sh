#!/usr/bin/env bash
# Kumo nodes sharing a database: events per second and upload-to-
# invocation p50/p99 for one node on SQLite, one and three nodes on
# PostgreSQL, and how long an alias move takes to reach every node (three
# nodes). Nodes run `kumo server` on loopback with the `eventsink` test
# guest behind a `[[trigger.storage]]`; bench/cluster.py uploads with boto3
# and reads the server's own records. Needs python3 with boto3, psql, and
# a PostgreSQL server (KUMO_TEST_POSTGRES_URL, default
# postgres://root@127.0.0.1:5432/root) where it may create and drop a
# database.
#
#   bench/cluster.sh [N uploads, default 1000] [THREADS, default 4]
#
# KUMO_PROFILE=debug uses the debug build instead of release.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${1:-1000}"
THREADS="${2:-4}"
PROFILE="${KUMO_PROFILE:-release}"
SERVER="${KUMO_TEST_POSTGRES_URL:-postgres://root@127.0.0.1:5432/root}"
python3 -c 'import boto3' 2>/dev/null || { echo "bench: boto3 is missing; hint: pip install boto3" >&2; exit 1; }
command -v psql >/dev/null || { echo "bench: psql is missing" >&2; exit 1; }

echo "bench: building kumo ($PROFILE) and the guests" >&2
if [ "$PROFILE" = release ]; then cargo build --release -q -p kumo --bin kumo; else cargo build -q -p kumo --bin kumo; fi
(cd tests/guests && env -u CARGO_TARGET_DIR cargo build --release -q --target wasm32-wasip2 -p eventsink)
(cd examples && env -u CARGO_TARGET_DIR cargo build --release -q --target wasm32-wasip2 -p hello -p echo)
KUMO="$(realpath "${CARGO_TARGET_DIR:-target}/$PROFILE/kumo")"
SINK="$(pwd)/tests/guests/target/wasm32-wasip2/release/eventsink.wasm"
HELLO="$(pwd)/examples/target/wasm32-wasip2/release/hello.wasm"
ECHO="$(pwd)/examples/target/wasm32-wasip2/release/echo.wasm"
TOKEN="bench-token"

WORK="$(mktemp -d)"
PIDS=()
DATABASE_NAME=""
stop_nodes() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; PIDS=(); }
drop_database() {
  if [ -n "$DATABASE_NAME" ]; then psql "$SERVER" -q -c "DROP DATABASE IF EXISTS $DATABASE_NAME WITH (FORCE)" || true; DATABASE_NAME=""; fi
}
cleanup() { stop_nodes; drop_database; rm -rf "$WORK"; }
trap cleanup EXIT

cat > "$WORK/sink.toml" <<TOML
[function.sink]
source = "$SINK"

[[trigger.storage]]
name = "bench"
bucket = "bench"
events = ["ObjectCreated:*"]
function = "sink"
TOML
printf '[function.greet]\nsource = "%s"\n' "$HELLO" > "$WORK/greet-1.toml"
printf '[function.greet]\nsource = "%s"\n' "$ECHO" > "$WORK/greet-2.toml"

# start INDEX DATABASE_URL: a node with its own data directory and the
# shared storage folder; appends to GATEWAYS, ENDPOINTS, ADMINS.
start() {
  local index="$1" url="$2" out="$WORK/node-$1.out"
  env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE KUMO_LOG=warn \
    KUMO_STORAGE_ACCESS_KEY=KUMOBENCHACCESSKEY KUMO_STORAGE_SECRET_KEY=kumo-bench-secret-key \
    "$KUMO" server --data-dir "$WORK/data-$index" --database "$url" --admin-token "$TOKEN" \
    --storage-dir "$WORK/storage" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --storage-listen 127.0.0.1:0 \
    > "$out" 2> "$WORK/node-$index.err" &
  PIDS+=("$!")
  for _ in $(seq 1 600); do
    if grep -q "kumo: serving" "$out" 2>/dev/null && grep -q "kumo: storage" "$out"; then
      GATEWAYS+=("$(sed -n 's/^kumo: serving \(http:\/\/[0-9.:]*\).*/\1/p' "$out" | head -n1)")
      ADMINS+=("$(sed -n 's/^kumo: admin api \(http:\/\/[0-9.:]*\).*/\1/p' "$out" | head -n1)")
      ENDPOINTS+=("$(sed -n 's/^kumo: storage \(http:\/\/[0-9.:]*\).*/\1/p' "$out" | head -n1)")
      return
    fi
    sleep 0.1
  done
  echo "bench: node $index did not start:" >&2; cat "$WORK/node-$index.err" >&2; exit 1
}

# run LABEL NODES DATABASE_URL READ_FROM [--propagation]
run() {
  local label="$1" nodes="$2" url="$3" read_from="$4" extra="${5:-}"
  GATEWAYS=(); ENDPOINTS=(); ADMINS=()
  rm -rf "$WORK"/data-* "$WORK/storage"
  for index in $(seq 0 $((nodes - 1))); do start "$index" "$url"; done
  KUMO_SERVER="${ADMINS[0]}" KUMO_ADMIN_TOKEN="$TOKEN" KUMO_LOG=warn "$KUMO" deploy -f "$WORK/sink.toml" > /dev/null
  local args=()
  if [ -n "$extra" ]; then
    KUMO_SERVER="${ADMINS[0]}" KUMO_ADMIN_TOKEN="$TOKEN" KUMO_LOG=warn "$KUMO" deploy -f "$WORK/greet-1.toml" > /dev/null
    KUMO_SERVER="${ADMINS[0]}" KUMO_ADMIN_TOKEN="$TOKEN" KUMO_LOG=warn "$KUMO" deploy -f "$WORK/greet-2.toml" > /dev/null
    KUMO_SERVER="${ADMINS[0]}" KUMO_ADMIN_TOKEN="$TOKEN" KUMO_LOG=warn "$KUMO" alias set greet live 1 > /dev/null
    KUMO_SERVER="${ADMINS[0]}" KUMO_ADMIN_TOKEN="$TOKEN" KUMO_LOG=warn "$KUMO" triggers create --route /greet --function greet:live > /dev/null
    args=(--propagation "${ADMINS[0]}" "$TOKEN")
  fi
  # Every node has loaded the trigger before the first upload.
  sleep 2
  echo "== $label ($PROFILE build, $(nproc) cores, $COUNT uploads, $THREADS clients)"
  local joined_endpoints joined_gateways
  joined_endpoints="$(IFS=,; echo "${ENDPOINTS[*]}")"
  joined_gateways="$(IFS=,; echo "${GATEWAYS[*]}")"
  timeout 900 python3 bench/cluster.py "$read_from" "$COUNT" "$THREADS" "$joined_endpoints" "$joined_gateways" "${args[@]}"
  stop_nodes
}

new_database() {
  DATABASE_NAME="kumo_bench_$(date +%s)_$RANDOM"
  psql "$SERVER" -q -c "CREATE DATABASE $DATABASE_NAME"
  PG_URL="$(python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p._replace(path="/" + sys.argv[2]).geturl())' "$SERVER" "$DATABASE_NAME")"
}

run "one node, SQLite" 1 "sqlite:" "$WORK/data-0/kumo.db"
new_database; run "one node, PostgreSQL" 1 "$PG_URL" "$PG_URL"; drop_database
new_database; run "three nodes, PostgreSQL" 3 "$PG_URL" "$PG_URL" --propagation; drop_database
