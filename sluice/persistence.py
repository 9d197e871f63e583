"""What survives a restart of `sluice up`: a snapshot of the emulator's durable state on disk.

On AWS, S3, DynamoDB, SQS and the Glue catalog are durable; moto keeps them in memory. So when
`up` stops, the runtime first stops its workers, then writes (under .sluice/snapshot/):
  s3/<bucket>/<key>   every object of the stack's buckets
  ledger.json         every ledger item, in DynamoDB's typed JSON
  queues.json         the body of every message still in a queue, visible or in flight
  catalog.json        the tables and partitions of the stack's Glue databases
and the next `up` (same state folder) puts all of it back into the fresh emulator before any
worker starts. What the deploy's publish step puts in the artifacts bucket (the job's code,
datasets.toml, the reference tables) is not data: it is neither saved nor restored, so the code of
the checkout that starts is the code that runs, as after `make deploy`.

Job runs are not durable state to restore: a run interrupted by the stop is settled as
StartJobFunction settles a STOPPED run (ledger.settle) - finished from its summary if it had
committed, otherwise its output discarded and its files released - except that the attempt does
not count (the stop was not the files' fault).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from moto.sqs.models import sqs_backends

from ledger import State, settle_ended_run
from ledger.outputs import CatalogOutputs
from ledger.s3 import read_summary
from ledger.table import DynamoLedger
from sluice.aws.account import ACCOUNT_ID, REGION
from sluice.aws.emulator import Emulator

BUCKET_OUTPUTS = ("RawBucketName", "ProcessedBucketName", "ArtifactsBucketName")
DATABASE_OUTPUTS = ("RawDatabaseName", "ProcessedDatabaseName")


def save(aws: Emulator, outputs: dict[str, str], folder: Path,
         published: dict[str, tuple[str, ...]] | None = None) -> dict[str, int]:
    """`published`: bucket -> the key prefixes the deploy owns there (left out)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    s3 = aws.client("s3")
    objects = 0
    for name in BUCKET_OUTPUTS:
        bucket = outputs[name]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                if obj["Key"].startswith((published or {}).get(bucket, ())):
                    continue
                target = folder / "s3" / bucket / obj["Key"]
                if obj["Key"].endswith("/"):  # a folder marker: remember it as such
                    target = folder / "s3" / bucket / (obj["Key"].rstrip("/") + ".__folder__")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                objects += 1
    dynamodb = aws.client("dynamodb")
    items = [i for page in dynamodb.get_paginator("scan").paginate(TableName=outputs["LedgerTableName"])
             for i in page["Items"]]
    (folder / "ledger.json").write_text(json.dumps(items))
    # Every message, in flight or not, read from moto's model (a receive would hide them).
    queues = {name: [m.body for m in queue._messages]
              for name, queue in sqs_backends[ACCOUNT_ID][REGION].queues.items()}
    (folder / "queues.json").write_text(json.dumps(queues))
    glue = aws.client("glue")
    catalog = {}
    for name in DATABASE_OUTPUTS:
        database = outputs[name]
        tables = [t for page in glue.get_paginator("get_tables").paginate(DatabaseName=database)
                  for t in page["TableList"]]
        partitions = glue.get_paginator("get_partitions")
        catalog[database] = [{"table": t, "partitions": [
            p for page in partitions.paginate(DatabaseName=database, TableName=t["Name"])
            for p in page["Partitions"]]} for t in tables]
    (folder / "catalog.json").write_text(json.dumps(catalog, default=str))
    return {"objects": objects, "ledger_items": len(items),
            "messages": sum(len(v) for v in queues.values())}


def restore(aws: Emulator, outputs: dict[str, str], folder: Path,
            published: dict[str, tuple[str, ...]] | None = None) -> dict[str, int]:
    """Put a snapshot back, with the raw bucket's notifications off meanwhile (the files are
    known to the ledger; their events, if still due, are in the restored queue). A snapshot from
    before the deploy's keys were left out has them: they are skipped (`published`)."""
    s3 = aws.client("s3")
    raw = outputs["RawBucketName"]
    notifications = s3.get_bucket_notification_configuration(Bucket=raw)
    notifications.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=raw, NotificationConfiguration={})
    objects = 0
    for path in sorted((folder / "s3").rglob("*")) if (folder / "s3").exists() else []:
        if path.is_file():
            bucket, *parts = path.relative_to(folder / "s3").parts
            key = "/".join(parts)
            key = key.removesuffix(".__folder__") + "/" if key.endswith(".__folder__") else key
            if key.startswith((published or {}).get(bucket, ())):
                continue
            s3.upload_file(str(path), bucket, key)  # as it came: the same bytes give the same ETag
            objects += 1
    s3.put_bucket_notification_configuration(Bucket=raw, NotificationConfiguration=notifications)
    items = json.loads((folder / "ledger.json").read_text())
    dynamodb = aws.client("dynamodb")
    for start in range(0, len(items), 25):
        dynamodb.batch_write_item(RequestItems={outputs["LedgerTableName"]: [
            {"PutRequest": {"Item": item}} for item in items[start:start + 25]]})
    sqs = aws.client("sqs")
    messages = 0
    for name, bodies in json.loads((folder / "queues.json").read_text()).items():
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        for body in bodies:
            sqs.send_message(QueueUrl=url, MessageBody=body)
            messages += 1
    glue = aws.client("glue")
    for database, tables in json.loads((folder / "catalog.json").read_text()).items():
        for entry in tables:
            glue.create_table(DatabaseName=database, TableInput=_table_input(entry["table"]))
            partitions = [{"Values": p["Values"], "StorageDescriptor": p["StorageDescriptor"]}
                          for p in entry["partitions"]]
            for start in range(0, len(partitions), 100):
                glue.batch_create_partition(DatabaseName=database, TableName=entry["table"]["Name"],
                                            PartitionInputList=partitions[start:start + 100])
    return {"objects": objects, "ledger_items": len(items), "messages": messages}


def settle_interrupted_runs(aws: Emulator, outputs: dict[str, str]) -> dict[str, int]:
    """Every run that still holds CLAIMED files was interrupted by the stop: settled as
    StartJobFunction settles a STOPPED run (ledger.settle: a committed run finished, its
    partitions registered; otherwise its output discarded), except that no attempt is counted."""
    ledger = DynamoLedger(aws.resource("dynamodb").Table(outputs["LedgerTableName"]))
    s3 = aws.client("s3")
    runs = CatalogOutputs(aws.client("glue"), s3, outputs["ProcessedDatabaseName"],
                          outputs["ProcessedBucketName"], outputs["ArtifactsBucketName"])
    settled = {"finished": 0, "released": 0}
    for run_id in sorted({item["run_id"] for item in ledger.by_state(State.CLAIMED)}):
        summary = read_summary(s3, outputs["ArtifactsBucketName"], run_id)
        moved = settle_ended_run(ledger, run_id, summary, runs.discard, attempt=None, finish=runs.finish)
        settled["finished"] += moved.get(State.DONE, 0)
        settled["released"] += moved.get(State.PENDING, 0)
    return settled


def _table_input(table: dict) -> dict:
    keys = ("Name", "Description", "StorageDescriptor", "PartitionKeys", "TableType", "Parameters")
    return {k: table[k] for k in keys if k in table}
