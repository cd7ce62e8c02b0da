#!/usr/bin/env bash
# Storage triggers: upload-to-invocation latency (p50/p99) and sustained
# events per second. Starts `kumo up` on loopback (pinned to CPU 0) with
# the `eventsink` test guest behind a `[[trigger.storage]]`, sends N
# uploads signed ahead by botocore from `wrk` on CPU 1 over CONNECTIONS
# connections (bench/events.py; boto3 clients themselves top out near 500
# uploads/s), and reads the latencies from the server's event records.
# Needs python3 with boto3 (`pip install boto3`), wrk and taskset.
#
#   bench/events.sh [N uploads, default 5000] [CONNECTIONS, default 16]
#
# Each run ends by deleting the thousands of files it made. On ext4
# without a journal (this project's machines), a file created in a block
# group where many inodes were freed in the last minutes costs a scan past
# each of them (about 100 us a file after one run, 10x a fresh group's),
# so runs back to back measured the previous run's deletions. Each run's
# data folder is therefore made under a folder marked `chattr +T` (a top
# of the directory hierarchy), where ext4 spreads new folders over block
# groups as it does at the root: each run gets a group of its own. Where
# that cannot be set (another file system), it is skipped.
#
# KUMO_PROFILE=debug uses the debug build instead of release (slower; say
# so when quoting the figures). KUMO_BINARY=path runs that kumo binary
# instead of building one (to compare builds of two revisions).
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${1:-5000}"
CONNECTIONS="${2:-16}"
PROFILE="${KUMO_PROFILE:-release}"
[ "$COUNT" -ge 1 ] && [ "$COUNT" -le 100000 ] || { echo "bench: N must be 1..100000" >&2; exit 1; }

python3 -c 'import boto3' 2>/dev/null || { echo "bench: boto3 is missing; hint: pip install boto3" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench: wrk is missing; hint: apt-get install wrk" >&2; exit 1; }

echo "bench: building kumo ($PROFILE) and the eventsink guest" >&2
if [ -n "${KUMO_BINARY:-}" ]; then
  KUMO="$KUMO_BINARY"
elif [ "$PROFILE" = release ]; then
  cargo build --release -q -p kumo --bin kumo
  KUMO="${CARGO_TARGET_DIR:-target}/$PROFILE/kumo"
else
  cargo build -q -p kumo --bin kumo
  KUMO="${CARGO_TARGET_DIR:-target}/$PROFILE/kumo"
fi
(cd tests/guests && env -u CARGO_TARGET_DIR cargo build --release -q --target wasm32-wasip2 -p eventsink)
SINK="$(pwd)/tests/guests/target/wasm32-wasip2/release/eventsink.wasm"

BENCH_ROOT="${TMPDIR:-/tmp}/kumo-bench"
mkdir -p "$BENCH_ROOT"
chattr +T "$BENCH_ROOT" 2>/dev/null || true
WORK="$(mktemp -d "$BENCH_ROOT/events.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/kumo.toml" <<TOML
[function.sink]
source = "$SINK"

[[trigger.storage]]
name = "bench"
bucket = "bench"
events = ["ObjectCreated:*"]
function = "sink"
TOML

env \
  KUMO_LOG=warn \
  KUMO_STORAGE_ACCESS_KEY=KUMOBENCHACCESSKEY KUMO_STORAGE_SECRET_KEY=kumo-bench-secret-key \
  taskset -c 0 "$KUMO" up -f "$WORK/kumo.toml" --data-dir "$WORK/data" \
  --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --storage-listen 127.0.0.1:0 \
  > "$WORK/server.out" 2> "$WORK/server.err" &
SERVER_PID=$!
ENDPOINT=""
for _ in $(seq 1 600); do
  ENDPOINT="$(sed -n 's/^kumo: storage \(http:\/\/[0-9.:]*\).*/\1/p' "$WORK/server.out" | head -n1)"
  if [ -n "$ENDPOINT" ] && grep -q 'kumo: serving' "$WORK/server.out"; then break; fi
  ENDPOINT=""
  sleep 0.1
done
[ -n "$ENDPOINT" ] || { echo "bench: kumo did not start:" >&2; cat "$WORK/server.err" >&2; exit 1; }

echo "bench: $COUNT uploads over $CONNECTIONS connections, kumo $PROFILE build, $(nproc) cores" >&2
timeout 900 taskset -c 1 python3 bench/events.py "$ENDPOINT" "$WORK/data" "$COUNT" "$CONNECTIONS" "$WORK" "$SERVER_PID"
