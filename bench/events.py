"""Upload-to-invocation latency and sustained events per second of storage
triggers, driven by bench/events.sh against a running `kumo up`.

The load generator must not be the bottleneck: boto3 clients top out at
about 500 uploads/s here, so the uploads are signed ahead (botocore's
SigV4, outside the measured time) and sent by `wrk` from CONNECTIONS
keep-alive connections (a Lua script hands out each signed PUT once and
stops once the server has stored them). Every PUT is acknowledged only once its
event is in the durable queue.

Then it reads the server's own records in <data-dir>/kumo.db (read-only):
for each event, `events.first_seen_ms` (stored just before the upload is
answered) and the start of its first delivery attempt
(`event_attempts.started_ms`, when the function is invoked). Both clocks
are the server's, so the client's timing does not enter the latency.

It also prints the server's CPU time over the measured run (user and
system, all threads, from /proc/SERVER_PID/stat) per event.

  python3 bench/events.py ENDPOINT DATA_DIR N CONNECTIONS WORK_DIR [SERVER_PID]
"""
import os

import sqlite3
import statistics
import signal
import subprocess
import sys
import time

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ACCESS_KEY = "KUMOBENCHACCESSKEY"
SECRET_KEY = "kumo-bench-secret-key"
REGION = "us-east-1"
BUCKET = "bench"
TIMEOUT_S = 300
CHUNK = 2000


def client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def lua_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def signed_puts_script(endpoint, keys):
    """A wrk Lua script that sends one signed PUT per key, each once, and
    stops its thread when every one is answered."""
    signer = S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION)
    host = endpoint.split("://", 1)[1]
    entries = []
    for key in keys:
        body = key.encode()
        request = AWSRequest(method="PUT", url=f"{endpoint}/{BUCKET}/{key}", data=body)
        signer.add_auth(request)
        headers = {name: value for name, value in request.headers.items()}
        headers["Host"] = host
        headers["Content-Length"] = str(len(body))
        fields = ", ".join(f"[{lua_string(name)}] = {lua_string(value)}" for name, value in headers.items())
        entries.append(
            f'wrk.format("PUT", {lua_string(f"/{BUCKET}/{key}")}, {{{fields}}}, {lua_string(key)})'
        )
    # LuaJIT allows at most 65,536 constants per function: the requests
    # are added by functions of CHUNK entries each.
    chunks = []
    for start in range(0, len(entries), CHUNK):
        body = "\n".join(f"  requests[#requests + 1] = {entry}" for entry in entries[start : start + CHUNK])
        chunks.append(f"do\n  local function add()\n{body}\n  end\n  add()\nend\n")
    return (
        "local requests = {}\n"
        + "".join(chunks)
        + """local next_index = 0
local answered = 0
local failed = 0
request = function()
  next_index = next_index + 1
  if next_index > #requests then next_index = #requests end
  return requests[next_index]
end
response = function(status, headers, body)
  answered = answered + 1
  if status ~= 200 then failed = failed + 1 end
  if answered >= #requests then wrk.thread:stop() end
end
done = function(summary, latency, requests)
  io.write(string.format("failed uploads: %d\\n", failed))
end
"""
    )


def send(endpoint, keys, connections, script_path, database, prefix):
    """Sends the signed PUTs with wrk; stops it (SIGINT, after which it
    prints its summary) once the server has stored an event per key."""
    with open(script_path, "w") as script:
        script.write(signed_puts_script(endpoint, keys))
    wrk = subprocess.Popen(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", "-d300s", "--latency", "-s", script_path, endpoint],
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + TIMEOUT_S
    while stored(database, prefix) < len(keys):
        if wrk.poll() is not None or time.time() > deadline:
            sys.exit(f"bench: only {stored(database, prefix)} of {len(keys)} uploads stored")
        time.sleep(0.05)
    wrk.send_signal(signal.SIGINT)
    out, _ = wrk.communicate()
    return out


def stored(database, prefix):
    return database.execute(
        "SELECT COUNT(*) FROM events WHERE ce_subject LIKE ? || '%'", (prefix,)
    ).fetchone()[0]


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


def cpu_seconds(pid):
    """User plus system CPU time of every thread of process `pid`."""
    if pid is None:
        return None
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main():
    endpoint, data_dir, count, connections, work = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        int(sys.argv[4]),
        sys.argv[5],
    )
    # The storage trigger already made the bucket; a bench run against an
    # older server may not have: make it only when missing.
    s3 = client(endpoint)
    try:
        s3.head_bucket(Bucket=BUCKET)
    except Exception:
        s3.create_bucket(Bucket=BUCKET)
    server_pid = int(sys.argv[6]) if len(sys.argv) > 6 else None
    database = sqlite3.connect(f"file:{data_dir}/kumo.db?mode=ro", uri=True)

    # Warm up: compiled component, instances, connections.
    send(endpoint, [f"warm/{index}" for index in range(50)], 4, f"{work}/warm.lua", database, "warm/")
    wait_delivered(database, "warm/", 50)

    keys = [f"run/{index:06}" for index in range(count)]
    cpu_before = cpu_seconds(server_pid)
    wrk_out = send(endpoint, keys, connections, f"{work}/run.lua", database, "run/")
    rows = wait_delivered(database, "run/", count)
    cpu_after = cpu_seconds(server_pid)
    latencies = [started - seen for seen, started, _ in rows]
    first_seen = [seen for seen, _, _ in rows]
    upload_ms = max(first_seen) - min(first_seen)
    span_ms = max(finished for _, _, finished in rows) - min(first_seen)
    percentiles = dict(line.split()[:2] for line in wrk_out.splitlines() if line.strip()[:3] in ("50%", "99%"))
    failed = [line for line in wrk_out.splitlines() if line.startswith("failed uploads")]
    print(
        f"uploads: {len(rows)} signed PUTs from wrk over {connections} connections, stored in "
        f"{upload_ms / 1000:.2f} s ({len(rows) * 1000 / max(upload_ms, 1):.0f} uploads/s; PUT latency "
        f"p50 {percentiles.get('50%')}, p99 {percentiles.get('99%')}; {failed[0] if failed else 'failed uploads: ?'})"
    )
    print(
        "upload-to-invocation latency (server clocks): "
        f"p50 {statistics.median(latencies):.0f} ms, p99 {percentile(latencies, 0.99):.0f} ms, "
        f"max {max(latencies):.0f} ms"
    )
    print(
        f"sustained: {len(rows)} events stored and acknowledged by the function in {span_ms / 1000:.2f} s "
        f"= {len(rows) * 1000 / span_ms:.0f} events/s"
    )
    if cpu_before is not None:
        used = cpu_after - cpu_before
        print(f"server CPU: {used:.2f} s over the run = {used * 1000 / len(rows):.2f} ms per event")

if __name__ == "__main__":
    main()
