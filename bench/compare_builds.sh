#!/usr/bin/env bash
# Two builds of kumo side by side: which serves more requests per CPU-second?
# For a change whose cost is a few percent (a span, a record, a lock),
# which runs one after the other on this noisy VM cannot resolve.
#
# Both servers run the examples' `hello` with reuse, pinned to CPU 0, and
# two wrk on CPU 1 load them at the same moment (the order alternates by
# round). Each server's figure is its requests over the CPU time of its own
# threads (/proc/PID/task/*/schedstat). Prints B's figure as a share of A's
# per round and the median. Servers run in the caller's environment, as
# users run them (RUST_BACKTRACE included).
#
#   bench/compare_builds.sh BIN_A BIN_B [rounds, default 7] [seconds, default 5] [connections, default 16]
#
# KUMO_ARGS adds flags to both servers (for example KUMO_ARGS=--no-metering).
#
# Build the two binaries first, for example the current tree and another
# revision in a worktree that shares this target directory:
#   cargo build --release -p kumo && cp target/release/kumo /tmp/kumo-new
#   git worktree add /tmp/old REV && (cd /tmp/old && CARGO_TARGET_DIR="$PWD/../$(basename "$PWD")/target" ...)
set -euo pipefail
cd "$(dirname "$0")/.."
A="$(realpath "$1")"; B="$(realpath "$2")"
ROUNDS="${3:-7}"; SECONDS_PER_RUN="${4:-5}"; CONNECTIONS="${5:-16}"
command -v wrk >/dev/null || { echo "bench: wrk is missing; hint: apt-get install wrk" >&2; exit 1; }
(cd examples && cargo build --release -q --target wasm32-wasip2 -p hello)
HELLO="$(pwd)/examples/target/wasm32-wasip2/release/hello.wasm"
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
cat > "$WORK/kumo.toml" <<TOML
[function.reuse]
source = "$HELLO"
reuse = true

[[trigger.http]]
route = "/reuse"
function = "reuse"
TOML

# start NAME BIN: starts a server on CPU 0; sets PID_NAME and URL_NAME.
start() {
  local name="$1" bin="$2" out="$WORK/$1.out"
  : > "$out"
  taskset -c 0 "$bin" up -f "$WORK/kumo.toml" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --storage-listen 127.0.0.1:0 --data-dir "$WORK/data-$name" ${KUMO_ARGS:-} > "$out" 2> "$WORK/$name.err" &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 200); do
    local url
    url="$(grep -o 'serving http://[0-9.:]*' "$out" | grep -o 'http://[0-9.:]*' | head -n1 || true)"
    if [ -n "$url" ]; then printf -v "PID_$name" '%s' "$pid"; printf -v "URL_$name" '%s' "$url"; return; fi
    sleep 0.05
  done
  echo "bench: $bin did not start:" >&2; cat "$WORK/$name.err" >&2; exit 1
}
cpu_ms() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d", s / 1e6 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

start A "$A"; start B "$B"
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d1s "$URL_A/reuse" > /dev/null
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d1s "$URL_B/reuse" > /dev/null
: > "$WORK/ratios"
for round in $(seq 1 "$ROUNDS"); do
  a0="$(cpu_ms "$PID_A")"; b0="$(cpu_ms "$PID_B")"
  if [ $((round % 2)) = 1 ]; then first=A; second=B; else first=B; second=A; fi
  for name in "$first" "$second"; do
    url_var="URL_$name"
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" "${!url_var}/reuse" > "$WORK/$name.wrk" &
    printf -v "WRK_$name" '%s' "$!"
  done
  wait "$WRK_A" "$WRK_B"
  a1="$(cpu_ms "$PID_A")"; b1="$(cpu_ms "$PID_B")"
  read -r a b <<< "$(awk -v a="$(awk '/requests in/ {print $1}' "$WORK/A.wrk")" -v b="$(awk '/requests in/ {print $1}' "$WORK/B.wrk")" \
    -v a_ms="$((a1 - a0))" -v b_ms="$((b1 - b0))" 'BEGIN { printf "%.0f %.0f\n", a / (a_ms / 1000), b / (b_ms / 1000) }')"
  echo "$a $b" | awk '{ print $2 / $1 }' >> "$WORK/ratios"
  printf 'round %d: A %s, B %s req per CPU-second\n' "$round" "$a" "$b"
done
median < "$WORK/ratios" | awk -v c="$CONNECTIONS" '{ printf "at %d connections B serves %.1f%% of the requests per CPU-second of A (median of the rounds)\n", c, 100 * $1 }'
