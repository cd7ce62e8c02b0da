#!/usr/bin/env bash
# Many functions, many warm instances, and start-up with them.
#
# Deploys FUNCTIONS copies of the plain `wasi:http` component
# (`examples/plain`), each with its own route and `min_instances = MIN`,
# with `kumo up`, and reports:
#   - the time from start to the first answer (compile cache cold),
#   - the RSS of the server holding FUNCTIONS x MIN idle warm instances,
#     against the same functions with `min_instances = 0`: the difference
#     over the instances is the memory of one warm, idle instance;
#   - a restart on the same data directory (compile cache warm): the
#     time from start to the first answer of the last function;
#   - a deploy of one more function through the admin API
#     (`kumo deploy`), then the time of its first request (its instance
#     is created by that request) and of its second.
#
#   bench/instances.sh [FUNCTIONS, default 100] [MIN, default 9]
#
# The defaults leave room in the pooling allocator (1000 instances) for
# the function deployed at the end; 100 x 10 would fill it, and that
# function would answer 503.
#
# POOLING=no passes --no-pooling (the pooling allocator holds at most 1000
# instances; more need on-demand allocation). Needs curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
FUNCTIONS="${1:-100}"
MIN="${2:-9}"
POOLING="${POOLING:-yes}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

echo "bench: building (release)" >&2
cargo build --release -q -p kumo --bin kumo
(cd examples && env -u CARGO_TARGET_DIR cargo build --release -q --target wasm32-wasip2 -p plain)
PLAIN="$(pwd)/examples/target/wasm32-wasip2/release/plain.wasm"
KUMO="$(realpath "$TARGET_DIR/release/kumo")"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# manifest MIN FILE: the FUNCTIONS functions f0..f(N-1), each on /fN.
manifest() {
  local min="$1" file="$2"
  : > "$file"
  for i in $(seq 0 $((FUNCTIONS - 1))); do
    printf '[function.f%d]\nsource = "%s"\nmin_instances = %d\n\n[[trigger.http]]\nroute = "/f%d"\nfunction = "f%d"\n\n' \
      "$i" "$PLAIN" "$min" "$i" "$i" >> "$file"
  done
}

EXTRA=()
[ "$POOLING" = no ] && EXTRA+=(--no-pooling)
now_ms() { date +%s%3N; }
rss_kib() { awk '/^VmRSS/ {print $2}' /proc/"$1"/status; }

# serve VERB DATA_DIR [args...]: starts kumo, sets SERVER_PID, URL, ADMIN.
serve() {
  local verb="$1" data="$2"; shift 2
  : > "$WORK/out"
  "$KUMO" "$verb" --data-dir "$data" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --storage-listen 127.0.0.1:0 "${EXTRA[@]}" "$@" > "$WORK/out" 2> "$WORK/err" &
  SERVER_PID=$!
  URL=""
  for _ in $(seq 1 6000); do
    URL="$(grep -o '^kumo: serving http://[0-9.:]*' "$WORK/out" | grep -o 'http://[0-9.:]*' | head -n1 || true)"
    [ -n "$URL" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.01
  done
  [ -n "$URL" ] || { echo "bench: kumo did not start:" >&2; tail -20 "$WORK/err" >&2; exit 1; }
}
stop() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }
# Polls PATH until it answers 200; prints the ms since $1.
first_answer_ms() {
  local since="$1" path="$2"
  until curl -sf -o /dev/null "$URL$path"; do sleep 0.005; done
  echo $(($(now_ms) - since))
}
# Waits until RSS stops growing (the min_instances are made after start).
settled_rss() {
  local previous=0 current
  for _ in $(seq 1 600); do
    current="$(rss_kib "$SERVER_PID")"
    [ "$current" = "$previous" ] && { echo "$current"; return; }
    previous="$current"; sleep 1
  done
  echo "$current"
}

manifest 0 "$WORK/zero.toml"
manifest "$MIN" "$WORK/warm.toml"
instances=$((FUNCTIONS * MIN))
echo "bench: $FUNCTIONS functions, min_instances = $MIN ($instances instances), pooling: $POOLING" >&2

start="$(now_ms)"
serve up "$WORK/data-zero" -f "$WORK/zero.toml"
cold_ms="$(first_answer_ms "$start" "/f$((FUNCTIONS - 1))")"
curl -sf -o /dev/null "$URL/f0"
base_rss="$(settled_rss)"
stop

start="$(now_ms)"
serve up "$WORK/data" -f "$WORK/warm.toml"
first_ms="$(first_answer_ms "$start" "/f$((FUNCTIONS - 1))")"
warm_rss="$(settled_rss)"
ready_line="$(grep -o 'ready in [0-9]* ms' "$WORK/err" | head -n1 || true)"
stop

start="$(now_ms)"
serve server "$WORK/data"
restart_ms="$(first_answer_ms "$start" "/f$((FUNCTIONS - 1))")"
restart_ready="$(grep -o 'ready in [0-9]* ms' "$WORK/err" | head -n1 || true)"

# One more function, deployed to the running server; its first request.
printf '[function.late]\nsource = "%s"\n\n[[trigger.http]]\nroute = "/late"\nfunction = "late"\n' "$PLAIN" > "$WORK/late.toml"
KUMO_DATA_DIR="$WORK/data" "$KUMO" deploy -f "$WORK/late.toml" > /dev/null
late_first="$(curl -s -o /dev/null -w '%{time_total}' "$URL/late")"
late_second="$(curl -s -o /dev/null -w '%{time_total}' "$URL/late")"
late_status="$(curl -s -o /dev/null -w '%{http_code}' "$URL/late")"
[ "$late_status" = 200 ] || { echo "bench: /late answered $late_status after the deploy" >&2; exit 1; }
stop

python3 - "$FUNCTIONS" "$MIN" "$cold_ms" "$base_rss" "$first_ms" "$warm_rss" "$restart_ms" "$late_first" "$late_second" "$ready_line" "$restart_ready" <<'PY'
import sys
functions, minimum, cold_ms, base_rss, first_ms, warm_rss, restart_ms = map(int, sys.argv[1:8])
late_first, late_second = float(sys.argv[8]), float(sys.argv[9])
ready, restart_ready = sys.argv[10], sys.argv[11]
instances = functions * minimum
print(f"first start, {functions} functions, compile cache cold, min_instances = 0: first answer of the last route after {cold_ms} ms")
print(f"RSS with min_instances = 0: {base_rss / 1024:.1f} MiB")
print(f"start with min_instances = {minimum} ({ready}): first answer after {first_ms} ms")
if instances:
    print(f"RSS with {instances} idle warm instances: {warm_rss / 1024:.1f} MiB, "
          f"{(warm_rss - base_rss) / instances:.0f} KiB per instance; "
          f"10,000 such instances: {(base_rss + 10000 * (warm_rss - base_rss) / instances) / 1024 / 1024:.2f} GiB")
print(f"restart (compile cache warm, {restart_ready}): first answer of the last route after {restart_ms} ms")
print(f"first request after a deploy: {late_first * 1000:.1f} ms (the next: {late_second * 1000:.1f} ms), curl's total on loopback")
PY
