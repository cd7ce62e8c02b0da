"""Events per second, upload-to-invocation latency and change propagation
of Kumo nodes sharing a database, driven by bench/cluster.sh against
running `kumo server` nodes.

Uploads N small objects with boto3 (THREADS clients, spread over the
nodes' S3 endpoints), then reads the server's own records: for each event,
`events.first_seen_ms` (stored just before the upload is answered) and the
start of its first delivery attempt (`event_attempts.started_ms`). All
nodes run on this machine, so their clocks are one clock.

With `--propagation`, also moves an alias through the first node ROUNDS
times and times until every node's gateway serves the new target.

  python3 bench/cluster.py DATABASE N THREADS ENDPOINTS GATEWAYS [--propagation ADMIN TOKEN]

DATABASE is a SQLite file or a postgres:// URL (read with psql);
ENDPOINTS and GATEWAYS are comma-separated URLs, one per node.
"""

import json
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

# The S3 client, its keys and the percentile rule are bench/events.py's.
from events import percentile, upload

TIMEOUT_S = 300
ROUNDS = 10


def upload_all(endpoints, keys, threads):
    shares = [keys[index::threads] for index in range(threads)]
    workers = [
        threading.Thread(target=upload, args=(endpoints[index % len(endpoints)], share))
        for index, share in enumerate(shares)
    ]
    started = time.time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.time() - started


QUERY = """SELECT e.first_seen_ms, MIN(a.started_ms), MAX(a.finished_ms)
           FROM events e JOIN event_attempts a ON a.event_id = e.id
           WHERE e.state = 'done' AND e.trigger_id = 'storage:bench'
           GROUP BY e.id, e.first_seen_ms"""


def delivered(database):
    if database.startswith("postgres"):
        out = subprocess.run(
            ["psql", database, "-At", "-F", ",", "-c", QUERY],
            check=True, capture_output=True, text=True,
        ).stdout
        return [tuple(int(v) for v in line.split(",")) for line in out.splitlines() if line]
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return connection.execute(QUERY).fetchall()


def wait_delivered(database, count):
    deadline = time.time() + TIMEOUT_S
    while True:
        rows = delivered(database)
        if len(rows) >= count:
            return rows
        if time.time() > deadline:
            sys.exit(f"bench: only {len(rows)} of {count} events delivered after {TIMEOUT_S} s")
        time.sleep(0.2)


def admin(base, token, method, path, body):
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def body_of(gateway):
    try:
        with urllib.request.urlopen(gateway + "/greet", timeout=5) as response:
            return response.read().decode()
    except Exception:  # noqa: BLE001 - a node not serving yet
        return ""


def propagation(admin_base, token, gateways):
    """Seconds from an alias move's answer until every node serves it."""
    times = []
    for round_index in range(ROUNDS):
        version = 2 if round_index % 2 == 0 else 1
        wanted = (lambda b: '"method"' in b) if version == 2 else (lambda b: b == "Hello from Kumo")
        admin(admin_base, token, "PUT", "/v1/functions/greet/aliases/live",
              {"version": version})
        started = time.time()
        for gateway in gateways:
            while not wanted(body_of(gateway)):
                if time.time() - started > 30:
                    sys.exit(f"bench: {gateway} did not follow the alias within 30 s")
                time.sleep(0.002)
        times.append(time.time() - started)
    return times


def main():
    database, count, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    endpoints, gateways = sys.argv[4].split(","), sys.argv[5].split(",")
    keys = [f"k/{index:06}" for index in range(count)]
    upload_s = upload_all(endpoints, keys, threads)
    rows = wait_delivered(database, count)
    latencies = [started - seen for seen, started, _ in rows]
    span_s = (max(f for _, _, f in rows) - min(s for s, _, _ in rows)) / 1000
    print(f"nodes: {len(gateways)}  uploads: {count} in {upload_s:.2f} s ({count / upload_s:.0f}/s)")
    print(f"events delivered per second (first store to last acknowledgement): {count / span_s:.0f}")
    print(f"upload-to-invocation p50: {percentile(latencies, 0.5)} ms  p99: {percentile(latencies, 0.99)} ms")
    if "--propagation" in sys.argv:
        at = sys.argv.index("--propagation")
        times = propagation(sys.argv[at + 1], sys.argv[at + 2], gateways)
        print(
            f"alias move to every node ({ROUNDS} moves): median {statistics.median(times) * 1000:.0f} ms, "
            f"max {max(times) * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
