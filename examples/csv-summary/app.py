"""csv-summary: a CSV uploaded to a bucket becomes a JSON summary in
another bucket, the Function Compute tutorial classic, in Python.

On an object event (any format) for ``<key>.csv``, reads the file through
the read-only mount of the uploads bucket (``INPUT_DIR``, default
``/in``) and writes ``<key>.json`` through the read-write mount of the
summaries bucket (``OUTPUT_DIR``, default ``/out``): the row count, the
columns, and for each numeric column its count, min, max, sum and mean.
A plain ``POST`` with a CSV body answers the summary itself.
"""

import csv
import io
import json
import os

import kumo
from kumo.event import Event


def summarize(text: str) -> dict:
    """The summary of a CSV document whose first row names the columns."""
    rows = list(csv.DictReader(io.StringIO(text)))
    columns = list(rows[0].keys()) if rows else []
    numeric = {}
    for column in columns:
        values = []
        for row in rows:
            try:
                values.append(float(row[column]))
            except (TypeError, ValueError):
                break
        else:
            if values:
                numeric[column] = {
                    "count": len(values),
                    "min": min(values),
                    "max": max(values),
                    "sum": round(sum(values), 6),
                    "mean": round(sum(values) / len(values), 6),
                }
    return {"rows": len(rows), "columns": columns, "numeric": numeric}


def handle(request: kumo.Request):
    if "ce-type" not in request.headers:
        if request.method != "POST":
            raise kumo.HttpError(405, "POST a CSV document, or upload one to the bucket")
        return summarize(request.text())
    event = Event.from_request(request)
    input_dir = kumo.env.var("INPUT_DIR", "/in")
    output_dir = kumo.env.var("OUTPUT_DIR", "/out")
    written = []
    for change in event.objects():
        if not change.event_name.startswith("ObjectCreated:") or not change.key.endswith(".csv"):
            kumo.log.info(f"skipping {change.event_name} of {change.key}")
            continue
        if any(part in ("", "..") for part in change.key.split("/")):
            raise kumo.HttpError(400, f"refusing the key {change.key}")
        with open(os.path.join(input_dir, change.key), encoding="utf-8") as source:
            summary = summarize(source.read())
        summary["source"] = f"{change.bucket}/{change.key}"
        target_key = change.key[: -len(".csv")] + ".json"
        target = os.path.join(output_dir, target_key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as out:
            json.dump(summary, out, indent=2)
        kumo.log.info(f"{change.key} -> {target_key} ({summary['rows']} rows)")
        written.append(target_key)
    return {"written": written}


IncomingHandler = kumo.http_handler(handle)
