"""Runs S3 calls with boto3 for the integration tests (tests/integration/storage.rs).

Reads one JSON document on stdin:
  {"endpoint": "http://127.0.0.1:PORT", "access_key": "...", "secret_key": "...",
   "calls": [{"op": "put_object", "args": {"Bucket": "b", "Key": "k", "Body": {"text": "hi"}}}, ...]}
and prints one JSON list on stdout, one entry per call:
  {"ok": {...response...}} or {"error": {"code": "NoSuchKey", "status": 404, "message": "..."}}.

A "Body" argument is {"text": "..."}, {"file": "/path"} or {"repeat": "x", "times": N}.
A streamed response body becomes {"length": N, "md5": "<hex>", "head_hex": "<first 32 bytes>",
"text": "<utf-8, when short>"}.
"""

import hashlib
import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def body_argument(spec):
    if "text" in spec:
        return spec["text"].encode()
    if "file" in spec:
        with open(spec["file"], "rb") as handle:
            return handle.read()
    if "repeat" in spec:
        return spec["repeat"].encode() * spec["times"]
    raise ValueError(f"unknown body spec {spec}")


def plain(value):
    if hasattr(value, "read"):
        data = value.read()
        result = {
            "length": len(data),
            "md5": hashlib.md5(data).hexdigest(),
            "head_hex": data[:32].hex(),
        }
        if len(data) <= 4096:
            try:
                result["text"] = data.decode()
            except UnicodeDecodeError:
                pass
        return result
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items() if key != "ResponseMetadata"}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return value.decode(errors="replace")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def main():
    request = json.load(sys.stdin)
    client = boto3.client(
        "s3",
        endpoint_url=request["endpoint"],
        aws_access_key_id=request["access_key"],
        aws_secret_access_key=request["secret_key"],
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
        ),
    )
    results = []
    for call in request["calls"]:
        args = dict(call.get("args", {}))
        if isinstance(args.get("Body"), dict):
            args["Body"] = body_argument(args["Body"])
        try:
            response = getattr(client, call["op"])(**args)
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            results.append({"ok": plain(response), "status": status})
        except ClientError as error:
            results.append(
                {
                    "error": {
                        "code": error.response.get("Error", {}).get("Code"),
                        "message": error.response.get("Error", {}).get("Message"),
                        "status": error.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
                    }
                }
            )
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
