#!/usr/bin/env bash
# Throughput and latency of the function gateway, in one run:
#   raw axum (the floor), `hello` with instance reuse, `hello` without, and
#   `hello` with reuse on a server started with --no-metering (metering's
#   cost: every invocation record, REPORT line and invocation metric).
# Each server is pinned to CPU 0 and wrk to CPU 1, on loopback, at 1, 16
# and 64 connections. Needs `wrk` and `taskset` (Debian: wrk, util-linux).
#
#   bench/gateway.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-10}"
CONNECTIONS=(1 16 64)

command -v wrk >/dev/null || { echo "bench: wrk is missing; hint: apt-get install wrk" >&2; exit 1; }
command -v taskset >/dev/null || { echo "bench: taskset is missing; hint: apt-get install util-linux" >&2; exit 1; }

echo "bench: building (release)" >&2
cargo build --release -q -p kumo --bin kumo --example raw-axum-hello
(cd examples && cargo build --release -q --target wasm32-wasip2 -p hello)

WORK="$(mktemp -d)"
SERVER_PID=""
SERVER_URL=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

HELLO="$(pwd)/examples/target/wasm32-wasip2/release/hello.wasm"
cat > "$WORK/kumo.toml" <<TOML
[function.reuse]
source = "$HELLO"
reuse = true

[function.fresh]
source = "$HELLO"
reuse = false

[[trigger.http]]
route = "/reuse"
function = "reuse"

[[trigger.http]]
route = "/fresh"
function = "fresh"
TOML

# Starts a server pinned to CPU 0; sets SERVER_PID and SERVER_URL. Runs
# with the default environment: RUST_BACKTRACE makes wasmtime capture a
# backtrace for every internal error, which costs ~25% of throughput.
SERVERS_STARTED=0
start_server() {
  SERVERS_STARTED=$((SERVERS_STARTED + 1))
  local out="$WORK/server-$SERVERS_STARTED.out" err="$WORK/server-$SERVERS_STARTED.err"
  : > "$out"
  env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE taskset -c 0 "$@" > "$out" 2> "$err" &
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    local url
    url="$(grep -o '^\(kumo: \)\?serving http://[0-9.:]*' "$out" | grep -o 'http://[0-9.:]*' | head -n1 || true)"
    if [ -n "$url" ]; then SERVER_URL="$url"; return; fi
    sleep 0.05
  done
  echo "bench: the server did not start:" >&2; cat "$err" >&2; exit 1
}

stop_server() {
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

# Runs wrk on CPU 1 and prints "req/s p50 p99".
measure() {
  local url="$1" connections="$2"
  # Warm up (compile caches, pools, connections) before measuring.
  taskset -c 1 wrk -t1 -c"$connections" -d1s "$url" > /dev/null
  taskset -c 1 wrk -t1 -c"$connections" -d"${SECONDS_PER_RUN}s" --latency "$url" > "$WORK/wrk.out"
  local rps p50 p99 errors
  rps="$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")"
  p50="$(awk '$1 == "50%" {print $2}' "$WORK/wrk.out")"
  p99="$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")"
  errors="$(awk '/Non-2xx|Socket errors/ {print}' "$WORK/wrk.out" | tr '\n' ' ')"
  printf '%s %s %s %s\n' "$rps" "$p50" "$p99" "${errors:-}"
}

declare -A RPS RATIO
printf '%-22s %6s %12s %10s %10s\n' "server" "conns" "req/s" "p50" "p99"

run_series() {
  local name="$1" url="$2"
  for c in "${CONNECTIONS[@]}"; do
    read -r rps p50 p99 errors <<< "$(measure "$url" "$c")"
    RPS["$name/$c"]="$rps"
    printf '%-22s %6s %12s %10s %10s %s\n' "$name" "$c" "$rps" "$p50" "$p99" "$errors"
  done
}

start_server target/release/examples/raw-axum-hello 127.0.0.1:0
run_series "raw axum" "$SERVER_URL/hello"
stop_server

start_server target/release/kumo up -f "$WORK/kumo.toml" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --storage-listen 127.0.0.1:0 --data-dir "$WORK/data"
run_series "kumo hello reuse" "$SERVER_URL/reuse"
run_series "kumo hello no-reuse" "$SERVER_URL/fresh"
stop_server

# Metering's cost: two servers side by side (both on CPU 0, only one under
# load at a time), one with --no-metering, measured in alternation (on, off,
# on, off, ...) so that drift in the machine's load hits both alike; the
# median of the rounds is reported.
ROUNDS="${METERING_ROUNDS:-5}"
start_server target/release/kumo up -f "$WORK/kumo.toml" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --storage-listen 127.0.0.1:0 --data-dir "$WORK/data-on"
ON_PID="$SERVER_PID"; ON_URL="$SERVER_URL"
start_server target/release/kumo up -f "$WORK/kumo.toml" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --storage-listen 127.0.0.1:0 --data-dir "$WORK/data-off" --no-metering
OFF_PID="$SERVER_PID"; OFF_URL="$SERVER_URL"
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for c in "${CONNECTIONS[@]}"; do
  : > "$WORK/on.rps"; : > "$WORK/off.rps"
  for _ in $(seq 1 "$ROUNDS"); do
    read -r rps _ <<< "$(measure "$ON_URL/reuse" "$c")"; echo "$rps" >> "$WORK/on.rps"
    read -r rps _ <<< "$(measure "$OFF_URL/reuse" "$c")"; echo "$rps" >> "$WORK/off.rps"
  done
  RPS["metering on/$c"]="$(median < "$WORK/on.rps")"
  RPS["metering off/$c"]="$(median < "$WORK/off.rps")"
  # Each round's on/off ratio (the two ran seconds apart), and their median.
  RATIO["$c"]="$(paste "$WORK/on.rps" "$WORK/off.rps" | awk '{ print $1 / $2 }' | median)"
  printf '%-22s %6s %12s   (rounds: %s)\n' "hello, metering on" "$c" "${RPS["metering on/$c"]}" "$(tr '\n' ' ' < "$WORK/on.rps")"
  printf '%-22s %6s %12s   (rounds: %s)\n' "hello, metering off" "$c" "${RPS["metering off/$c"]}" "$(tr '\n' ' ' < "$WORK/off.rps")"
done
kill "$ON_PID"; wait "$ON_PID" 2>/dev/null || true
SERVER_PID="$OFF_PID"; stop_server

echo
for c in "${CONNECTIONS[@]}"; do
  awk -v raw="${RPS["raw axum/$c"]}" -v reuse="${RPS["kumo hello reuse/$c"]}" -v fresh="${RPS["kumo hello no-reuse/$c"]}" -v c="$c" \
    'BEGIN { printf "at %2d connections: reuse = %5.1f%% of raw axum, no-reuse = %5.1f%%\n", c, 100*reuse/raw, 100*fresh/raw }'
done
for c in "${CONNECTIONS[@]}"; do
  awk -v on="${RPS["metering on/$c"]}" -v off="${RPS["metering off/$c"]}" -v c="$c" \
    -v ratio="${RATIO["$c"]}" \
    'BEGIN { printf "at %2d connections: metering on = %5.1f%% of metering off (ratio of the medians), %5.1f%% (median of the rounds'"'"' ratios)\n", c, 100*on/off, 100*ratio }'
done
