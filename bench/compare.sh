#!/usr/bin/env bash
# Kumo against the peers it replaces, side by side, on one plain `wasi:http`
# component (`examples/plain`: the `wasip2` crate only, no Kumo code):
#
#   raw axum        bench/raw_axum_hello.rs, the floor
#   kumo reuse      Kumo's defaults (reuse on, metering on)
#   kumo fresh      `reuse = false`: a new instance per request
#   kumo no-meter   Kumo reuse started with --no-metering (metering's cost)
#   wasmtime reuse  `wasmtime serve` 48.0.8, -S cli=y -O pooling-allocator=y
#                   --max-instance-reuse-count 10000
#   wasmtime fresh  the same without --max-instance-reuse-count (its
#                   default: a new instance per request)
#
# Every server runs twice: once with the environment as given (this
# machine's shells set RUST_BACKTRACE=1) and once without RUST_BACKTRACE
# and RUST_LIB_BACKTRACE. All servers are started once, pinned to CPU 0;
# `wrk -t1` runs on CPU 1. Each round measures every server at each
# connection count (1 s warm-up, then the measured run), in an order that
# rotates from round to round. The figure that stays fair on a shared
# machine is requests per CPU-second of the server: the requests wrk
# counted over the CPU time the server's threads used meanwhile (summed
# from /proc/PID/task/*/schedstat). The summary gives medians over the
# rounds.
#
#   bench/compare.sh [seconds per run, default 5]
#
# ROUNDS (default 3) and CONNECTIONS (default "1 16 64") override the rest;
# ONLY (an extended regular expression, e.g. ONLY='^kumo-fresh/') measures
# only the series whose label matches.
# `wasmtime serve` 48.0.8 is installed on first use (about 16 minutes of
# compiling) into ${XDG_CACHE_HOME:-~/.cache}/kumo-bench/wasmtime-48.0.8
# and reused afterwards. Needs wrk, taskset and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-5}"
ROUNDS="${ROUNDS:-3}"
read -r -a CONNECTIONS <<< "${CONNECTIONS:-1 16 64}"
WASMTIME_VERSION=48.0.8
WASMTIME_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/kumo-bench/wasmtime-$WASMTIME_VERSION"
WASMTIME="$WASMTIME_ROOT/bin/wasmtime"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

for tool in wrk taskset python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing; hint: apt-get install wrk util-linux python3" >&2; exit 1; }
done

if [ ! -x "$WASMTIME" ]; then
  echo "bench: installing wasmtime-cli $WASMTIME_VERSION into $WASMTIME_ROOT (once; about 16 minutes)" >&2
  cargo install wasmtime-cli --version "$WASMTIME_VERSION" --locked --root "$WASMTIME_ROOT"
fi

echo "bench: building (release)" >&2
cargo build --release -q -p kumo --bin kumo --example raw-axum-hello
(cd examples && env -u CARGO_TARGET_DIR cargo build --release -q --target wasm32-wasip2 -p plain)
PLAIN="$(pwd)/examples/target/wasm32-wasip2/release/plain.wasm"
KUMO="$TARGET_DIR/release/kumo"
RAW="$TARGET_DIR/release/examples/raw-axum-hello"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/kumo.toml" <<TOML
[function.reuse]
source = "$PLAIN"

[function.fresh]
source = "$PLAIN"
reuse = false

[[trigger.http]]
route = "/reuse"
function = "reuse"

[[trigger.http]]
route = "/fresh"
function = "fresh"
TOML

GIVEN_BACKTRACE="${RUST_BACKTRACE-unset}"
declare -A PID_OF URL_OF
SERVERS_STARTED=0
# start NAME ENV(given|unset) COMMAND...: starts a server pinned to CPU 0
# and waits for the address it prints (Kumo, raw axum on stdout; wasmtime
# serve on stderr).
start() {
  local name="$1" mode="$2"; shift 2
  SERVERS_STARTED=$((SERVERS_STARTED + 1))
  local out="$WORK/server-$SERVERS_STARTED.out" err="$WORK/server-$SERVERS_STARTED.err"
  if [ "$mode" = unset ]; then
    env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE taskset -c 0 "$@" > "$out" 2> "$err" &
  else
    taskset -c 0 "$@" > "$out" 2> "$err" &
  fi
  local pid=$! url=""
  PIDS+=("$pid")
  for _ in $(seq 1 600); do
    url="$(grep -oh '^\(kumo: serving \|serving \|Serving HTTP on \)http://[0-9.:]*' "$out" "$err" | grep -o 'http://[0-9.:]*' | head -n1 || true)"
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$url" ] || { echo "bench: $name ($mode) did not start:" >&2; cat "$err" >&2; exit 1; }
  PID_OF["$name/$mode"]="$pid"
  URL_OF["$name/$mode"]="$url"
}

SERIES=()
for mode in given unset; do
  start raw "$mode" "$RAW" 127.0.0.1:0
  start kumo "$mode" "$KUMO" up -f "$WORK/kumo.toml" --data-dir "$WORK/data-$mode" \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --storage-listen 127.0.0.1:0
  start wasmtime-reuse "$mode" "$WASMTIME" serve -S cli=y -O pooling-allocator=y \
    --max-instance-reuse-count 10000 --addr 127.0.0.1:0 "$PLAIN"
  start wasmtime-fresh "$mode" "$WASMTIME" serve -S cli=y -O pooling-allocator=y \
    --addr 127.0.0.1:0 "$PLAIN"
  # series: label, server, path
  SERIES+=("raw-axum/$mode raw/$mode /hello"
           "kumo-reuse/$mode kumo/$mode /reuse"
           "kumo-fresh/$mode kumo/$mode /fresh"
           "wasmtime-reuse/$mode wasmtime-reuse/$mode /"
           "wasmtime-fresh/$mode wasmtime-fresh/$mode /")
done
start kumo-no-metering given "$KUMO" up -f "$WORK/kumo.toml" --data-dir "$WORK/data-no-metering" \
  --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --storage-listen 127.0.0.1:0 --no-metering
SERIES+=("kumo-reuse-no-metering/given kumo-no-metering/given /reuse")

if [ -n "${ONLY:-}" ]; then
  SELECTED=()
  for entry in "${SERIES[@]}"; do
    if [[ "${entry%% *}" =~ $ONLY ]]; then SELECTED+=("$entry"); fi
  done
  SERIES=("${SELECTED[@]}")
fi
for entry in "${SERIES[@]}"; do
  read -r _label server path <<< "$entry"
  curl -sf -o /dev/null "${URL_OF[$server]}$path" || { echo "bench: ${URL_OF[$server]}$path does not answer 200" >&2; exit 1; }
done

cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d", s }'; }
# Converts wrk's latency (12.3us, 1.2ms, 1.1s) to microseconds.
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1e6; else print n }'; }

RESULTS="$WORK/results"
: > "$RESULTS"
echo "bench: RUST_BACKTRACE as given: $GIVEN_BACKTRACE; $ROUNDS rounds of ${SECONDS_PER_RUN} s runs at ${CONNECTIONS[*]} connections, ${#SERIES[@]} series" >&2
for round in $(seq 1 "$ROUNDS"); do
  # Rotate the order each round so that no server always follows another.
  count="${#SERIES[@]}"
  for ((i = 0; i < count; i++)); do
    read -r label server path <<< "${SERIES[$(((i + round - 1) % count))]}"
    pid="${PID_OF[$server]}" url="${URL_OF[$server]}$path"
    for c in "${CONNECTIONS[@]}"; do
      taskset -c 1 wrk -t1 -c"$c" -d1s "$url" > /dev/null
      before="$(cpu_ns "$pid")"
      taskset -c 1 wrk -t1 -c"$c" -d"${SECONDS_PER_RUN}s" --latency "$url" > "$WORK/wrk.out"
      after="$(cpu_ns "$pid")"
      requests="$(awk '/requests in/ {print $1}' "$WORK/wrk.out")"
      rps="$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")"
      p50="$(to_us "$(awk '$1 == "50%" {print $2}' "$WORK/wrk.out")")"
      p99="$(to_us "$(awk '$1 == "99%" {print $2}' "$WORK/wrk.out")")"
      errors="$(awk '/Non-2xx|Socket errors/ {printf "%s; ", $0}' "$WORK/wrk.out")"
      per_cpu="$(awk -v r="$requests" -v ns="$((after - before))" 'BEGIN { printf "%.0f", (ns > 0 ? r / (ns / 1e9) : 0) }')"
      echo "$label $c $round $rps $p50 $p99 $per_cpu" >> "$RESULTS"
      printf 'round %s %-30s %3s conns %10s req/s %8s us p50 %8s us p99 %8s req/CPU-s %s\n' \
        "$round" "$label" "$c" "$rps" "$p50" "$p99" "$per_cpu" "$errors" >&2
    done
  done
done

python3 - "$RESULTS" "$GIVEN_BACKTRACE" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    label, c, _round, rps, p50, p99, per_cpu = line.split()
    rows[(label, int(c))].append((float(rps), float(p50), float(p99), float(per_cpu)))
med = {key: [statistics.median(v[i] for v in values) for i in range(4)] for key, values in rows.items()}
given = sys.argv[2]
print(f"\nmedians over the rounds (env 'given' = RUST_BACKTRACE={given}, 'unset' = without it)")
print(f"{'server/env':32} {'conns':>5} {'req/s':>10} {'p50 us':>8} {'p99 us':>8} {'req/CPU-s':>10}")
for (label, c) in sorted(med, key=lambda k: (k[0], k[1])):
    rps, p50, p99, per_cpu = med[(label, c)]
    print(f"{label:32} {c:5} {rps:10.0f} {p50:8.0f} {p99:8.0f} {per_cpu:10.0f}")
def ratio(a, b, c):
    if (a, c) in med and (b, c) in med and med[(b, c)][3] > 0:
        return med[(a, c)][3] / med[(b, c)][3]
    return None
conns = sorted({c for (_, c) in med})
print("\nratios of requests per CPU-second (medians)")
for c in conns:
    for env in ("given", "unset"):
        parts = []
        for name, a, b in (("kumo reuse / wasmtime reuse", "kumo-reuse", "wasmtime-reuse"),
                           ("kumo reuse / raw axum", "kumo-reuse", "raw-axum"),
                           ("kumo fresh / wasmtime fresh", "kumo-fresh", "wasmtime-fresh")):
            r = ratio(f"{a}/{env}", f"{b}/{env}", c)
            if r is not None:
                parts.append(f"{name} {r:.2f}x")
        print(f"  {c:2} conns, {env:5}: " + "; ".join(parts))
    for server in ("raw-axum", "kumo-reuse", "kumo-fresh", "wasmtime-reuse", "wasmtime-fresh"):
        r = ratio(f"{server}/given", f"{server}/unset", c)
        if r is not None:
            print(f"  {c:2} conns, {server}: with RUST_BACKTRACE={given} it serves {100 * r:.1f}% of its requests per CPU-second without")
    r = ratio("kumo-reuse/given", "kumo-reuse-no-metering/given", c)
    if r is not None:
        print(f"  {c:2} conns, metering on serves {100 * r:.1f}% of the requests per CPU-second of metering off")
PY
