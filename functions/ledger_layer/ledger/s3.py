"""S3 operations that StartJobFunction, the Glue job and the local runtime each need: deleting a
prefix (a run's output or quarantine folder), a run's folders anywhere under a table, and reading
a run's summary. Tested against the
emulator in tests/integration/test_ledger_adapters.py."""

from __future__ import annotations

from typing import Any

from ledger.manifest import summary_key
from ledger.summary import RunSummary

# DeleteObjects takes at most 1000 keys per request
# (https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html).
DELETE_BATCH = 1000


def delete_prefix(s3: Any, bucket: str, prefix: str) -> int:
    """Delete every object under prefix; returns how many there were."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [{"Key": o["Key"]} for page in pages for o in page.get("Contents", [])]
    for start in range(0, len(keys), DELETE_BATCH):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[start:start + DELETE_BATCH]})
    return len(keys)


def discard_run_folders(s3: Any, bucket: str, prefix: str, run_id: str) -> int:
    """Delete every `run_id=<run_id>/` folder at any depth under prefix; returns how many objects.
    Walks folders (ListObjectsV2 with Delimiter "/",
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-prefixes.html) and does not enter
    another run's folder, so a table's history is not listed object by object."""
    removed, pending = 0, [prefix]
    while pending:
        folder = pending.pop()
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder, Delimiter="/")
        for sub in (p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])):
            name = sub[len(folder):].rstrip("/")
            if name == f"run_id={run_id}":
                removed += delete_prefix(s3, bucket, sub)
            elif not name.startswith("run_id="):
                pending.append(sub)
    return removed


def read_summary(s3: Any, bucket: str, run_id: str) -> RunSummary | None:
    """The run's summary, or None if the run never reached its commit point."""
    try:
        body = s3.get_object(Bucket=bucket, Key=summary_key(run_id))["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return RunSummary.from_json(body)
