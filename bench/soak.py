"""Helpers of bench/soak.sh.

  soak.py upload ENDPOINT ACCESS SECRET SECONDS OUT_KEYS OUT_STATS
      Uploads small objects to the bucket `soak` (a storage trigger's) until
      SECONDS pass; appends every acknowledged key to OUT_KEYS and writes
      {"acknowledged", "client_errors", "server_errors", "failures"} to OUT_STATS.
  soak.py check DB KEYS
      Prints how many acknowledged keys have a delivered (`done`) event, which
      do not, and the events by state.
"""

import json
import sqlite3
import sys
import time


def upload(endpoint, access_key, secret_key, seconds, keys_path, stats_path):
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1, "mode": "standard"}),
    )
    stats = {"acknowledged": 0, "client_errors": 0, "server_errors": 0, "failures": 0}
    deadline = time.monotonic() + float(seconds)
    number = 0
    with open(keys_path, "a") as keys:
        while time.monotonic() < deadline:
            number += 1
            key = f"in/{number:08d}.txt"
            try:
                client.put_object(Bucket="soak", Key=key, Body=(f"object {number}\n" * 64).encode())
                stats["acknowledged"] += 1
                keys.write(key + "\n")
                keys.flush()
            except ClientError as error:
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
                stats["server_errors" if status >= 500 else "client_errors"] += 1
            except Exception:  # connection errors: counted, the soak goes on
                stats["failures"] += 1
    with open(stats_path, "w") as out:
        json.dump(stats, out)


def check(db_path, keys_path):
    with open(keys_path) as handle:
        keys = [line.strip() for line in handle if line.strip()]
    database = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    states = dict(database.execute("SELECT state, count(*) FROM events GROUP BY state").fetchall())
    done = {row[0] for row in database.execute(
        "SELECT ce_subject FROM events WHERE kind = 'storage' AND state = 'done'")}
    missing = [key for key in keys if key not in done]
    print(json.dumps({"acknowledged": len(keys), "delivered": len(keys) - len(missing),
                      "missing": missing[:20], "events_by_state": states}))


if __name__ == "__main__":
    if sys.argv[1] == "upload":
        upload(*sys.argv[2:8])
    elif sys.argv[1] == "check":
        check(*sys.argv[2:4])
    else:
        sys.exit(__doc__)
