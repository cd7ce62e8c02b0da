#!/usr/bin/env bash
# Throughput and latency of the function gateway, in one run:
#   raw axum (the floor), `hello` with instance reuse, `hello` without, and
#   `hello` with reuse on a server started with --no-metering, side by side
#   (metering's cost: every invocation record and invocation metric; then
#   with --report-lines, REPORT lines printed on stderr too).
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

# Starts a server pinned to CPU 0, in the environment as given; sets
# SERVER_PID and SERVER_URL.
SERVERS_STARTED=0
start_server() {
  SERVERS_STARTED=$((SERVERS_STARTED + 1))
  local out="$WORK/server-$SERVERS_STARTED.out" err="$WORK/server-$SERVERS_STARTED.err"
  : > "$out"
  taskset -c 0 "$@" > "$out" 2> "$err" &
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

# Metering's cost: two servers, one with --no-metering, both pinned to CPU
# 0 and loaded at the same time by two wrk on CPU 1, so that whatever the
# machine does at a moment hits both alike (on this VM, runs one after
# the other scatter by +-10%, side by side by about +-1%). Each server's
# figure is its requests per CPU-second of its own (summed over its
# threads from /proc/PID/task/*/schedstat), which is its throughput when
# it has a core to itself; the order the two wrk start in alternates.
# Then the same with --report-lines (REPORT lines printed on stderr too),
# and with METERING_AA=1 two --no-metering servers (the method's error).
ROUNDS="${METERING_ROUNDS:-5}"
cpu_ms() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d", s / 1e6 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Prints "on_per_cpu_s off_per_cpu_s" for one round at $3 connections.
side_by_side() {
  local on_url="$1" off_url="$2" c="$3" round="$4" on0 off0 on1 off1 on_pid off_pid
  on0="$(cpu_ms "$ON_PID")"; off0="$(cpu_ms "$OFF_PID")"
  if [ $((round % 2)) = 1 ]; then
    taskset -c 1 wrk -t1 -c"$c" -d"${SECONDS_PER_RUN}s" "$on_url" > "$WORK/on.wrk" & on_pid=$!
    taskset -c 1 wrk -t1 -c"$c" -d"${SECONDS_PER_RUN}s" "$off_url" > "$WORK/off.wrk" & off_pid=$!
  else
    taskset -c 1 wrk -t1 -c"$c" -d"${SECONDS_PER_RUN}s" "$off_url" > "$WORK/off.wrk" & off_pid=$!
    taskset -c 1 wrk -t1 -c"$c" -d"${SECONDS_PER_RUN}s" "$on_url" > "$WORK/on.wrk" & on_pid=$!
  fi
  wait "$on_pid" "$off_pid"
  on1="$(cpu_ms "$ON_PID")"; off1="$(cpu_ms "$OFF_PID")"
  awk -v on="$(awk '/requests in/ {print $1}' "$WORK/on.wrk")" -v off="$(awk '/requests in/ {print $1}' "$WORK/off.wrk")" \
    -v on_ms="$((on1 - on0))" -v off_ms="$((off1 - off0))" \
    'BEGIN { printf "%.0f %.0f\n", on / (on_ms / 1000), off / (off_ms / 1000) }'
}
# Compares a server started with $1 (extra flags) against --no-metering.
compare_metering() {
  local label="$1" flags="$2"; shift 2
  start_server target/release/kumo up -f "$WORK/kumo.toml" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --storage-listen 127.0.0.1:0 --data-dir "$WORK/data-on-$label" $flags
  ON_PID="$SERVER_PID"; ON_URL="$SERVER_URL"
  start_server target/release/kumo up -f "$WORK/kumo.toml" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --storage-listen 127.0.0.1:0 --data-dir "$WORK/data-off-$label" --no-metering
  OFF_PID="$SERVER_PID"; OFF_URL="$SERVER_URL"
  for c in "$@"; do
    taskset -c 1 wrk -t1 -c"$c" -d1s "$ON_URL/reuse" > /dev/null
    taskset -c 1 wrk -t1 -c"$c" -d1s "$OFF_URL/reuse" > /dev/null
    : > "$WORK/ratios"; : > "$WORK/rounds"
    for round in $(seq 1 "$ROUNDS"); do
      read -r on off <<< "$(side_by_side "$ON_URL/reuse" "$OFF_URL/reuse" "$c" "$round")"
      echo "$on $off" | awk '{ print $1 / $2 }' >> "$WORK/ratios"
      printf '%s/%s ' "$on" "$off" >> "$WORK/rounds"
    done
    RATIO["$label/$c"]="$(median < "$WORK/ratios")"
    printf '%-22s %6s   on/off req per CPU-s by round: %s\n' "metering $label" "$c" "$(cat "$WORK/rounds")"
  done
  kill "$ON_PID"; wait "$ON_PID" 2>/dev/null || true
  SERVER_PID="$OFF_PID"; stop_server
}
compare_metering "on" "" "${CONNECTIONS[@]}"
compare_metering "on+report-lines" "--report-lines" 16
# METERING_AA=1: the method's own error, two --no-metering servers.
if [ -n "${METERING_AA:-}" ]; then compare_metering "off (A/A)" "--no-metering" 16; fi

echo
for c in "${CONNECTIONS[@]}"; do
  awk -v raw="${RPS["raw axum/$c"]}" -v reuse="${RPS["kumo hello reuse/$c"]}" -v fresh="${RPS["kumo hello no-reuse/$c"]}" -v c="$c" \
    'BEGIN { printf "at %2d connections: reuse = %5.1f%% of raw axum, no-reuse = %5.1f%%\n", c, 100*reuse/raw, 100*fresh/raw }'
done
KEYS=("on/1" "on/16" "on/64" "on+report-lines/16")
if [ -n "${METERING_AA:-}" ]; then KEYS+=("off (A/A)/16"); fi
for key in "${KEYS[@]}"; do
  awk -v ratio="${RATIO["$key"]}" -v label="${key%/*}" -v c="${key##*/}" \
    'BEGIN { printf "at %2d connections: metering %s serves %5.1f%% of the requests per CPU-second of metering off (median of the rounds)\n", c, label, 100 * ratio }'
done
