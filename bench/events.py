"""Upload-to-invocation latency and sustained events per second of storage
triggers, driven by bench/events.sh against a running `kumo up`.

Uploads N small objects with boto3 (THREADS clients in parallel, loopback),
then reads the server's own records in <data-dir>/kumo.db (read-only):
for each event, `events.first_seen_ms` (stored just before the upload is
answered) and the start of its first delivery attempt
(`event_attempts.started_ms`, when the function is invoked). Both clocks
are the server's, so the client's timing does not enter the latency.

  python3 bench/events.py ENDPOINT DATA_DIR N THREADS
"""

import sqlite3
import statistics
import sys
import threading
import time

import boto3
from botocore.config import Config

ACCESS_KEY = "KUMOBENCHACCESSKEY"
SECRET_KEY = "kumo-bench-secret-key"
BUCKET = "bench"
TIMEOUT_S = 300


def client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def upload(endpoint, keys):
    s3 = client(endpoint)
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())


def upload_all(endpoint, keys, threads):
    shares = [keys[index::threads] for index in range(threads)]
    workers = [threading.Thread(target=upload, args=(endpoint, share)) for share in shares]
    started = time.time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.time() - started


def delivered(database, prefix):
    """(first_seen_ms, first attempt started_ms, last attempt finished_ms)
    of the acknowledged events whose key starts with `prefix`."""
    return database.execute(
        """SELECT e.first_seen_ms, MIN(a.started_ms), MAX(a.finished_ms)
           FROM events e JOIN event_attempts a ON a.event_id = e.id
           WHERE e.state = 'done' AND e.ce_subject LIKE ? || '%'
           GROUP BY e.id""",
        (prefix,),
    ).fetchall()


def wait_delivered(database, prefix, count):
    deadline = time.time() + TIMEOUT_S
    while True:
        rows = delivered(database, prefix)
        if len(rows) >= count:
            return rows
        if time.time() > deadline:
            sys.exit(f"bench: only {len(rows)} of {count} events delivered after {TIMEOUT_S} s")
        time.sleep(0.2)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main():
    endpoint, data_dir, count, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    # The storage trigger already made the bucket; a bench run against an
    # older server may not have: make it only when missing.
    s3 = client(endpoint)
    try:
        s3.head_bucket(Bucket=BUCKET)
    except Exception:
        s3.create_bucket(Bucket=BUCKET)
    database = sqlite3.connect(f"file:{data_dir}/kumo.db?mode=ro", uri=True)

    # Warm up: compiled component, instances, connections.
    upload_all(endpoint, [f"warm/{index}" for index in range(20)], 1)
    wait_delivered(database, "warm/", 20)

    keys = [f"run/{index:06}" for index in range(count)]
    upload_s = upload_all(endpoint, keys, threads)
    rows = wait_delivered(database, "run/", count)
    latencies = [started - seen for seen, started, _ in rows]
    span_ms = max(finished for _, _, finished in rows) - min(seen for seen, _, _ in rows)
    print(f"uploads: {count} objects with {threads} boto3 clients in {upload_s:.2f} s ({count / upload_s:.0f} uploads/s)")
    print(
        "upload-to-invocation latency (server clocks): "
        f"p50 {statistics.median(latencies):.0f} ms, p99 {percentile(latencies, 0.99):.0f} ms, "
        f"max {max(latencies):.0f} ms"
    )
    print(
        f"sustained: {count} events stored and acknowledged by the function in {span_ms / 1000:.2f} s "
        f"= {count * 1000 / span_ms:.0f} events/s"
    )


if __name__ == "__main__":
    main()
