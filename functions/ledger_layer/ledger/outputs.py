"""A run's output record: what the job is about to write for one table, written to the artifacts
bucket before the table's rows are (runs/<run_id>/outputs/<table>.json). Discarding a run that
failed before its commit point reads these records and removes exactly what they name - its
partition folders, their catalog entries, its quarantine folder - so the work is bounded by the
run's own size, not by the table's history. A run without records wrote nothing.

    >>> out = TableOutputs("orders", [PartitionOutput(["2026", "11", "25", "run-1"],
    ...                                               "orders/year=2026/month=11/day=25/run_id=run-1/")],
    ...                    "_quarantine/orders/run_id=run-1/")
    >>> TableOutputs.from_json(out.to_json()) == out
    True
    >>> outputs_key("run-1", "orders")
    'runs/run-1/outputs/orders.json'
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from ledger.s3 import delete_prefix

# BatchDeletePartition takes at most 25 partitions a call (Glue API reference).
PARTITIONS_PER_DELETE = 25


def outputs_prefix(run_id: str) -> str:
    return f"runs/{run_id}/outputs/"


def outputs_key(run_id: str, table: str) -> str:
    return f"{outputs_prefix(run_id)}{table}.json"


@dataclass(frozen=True)
class PartitionOutput:
    values: list[str]  # the partition's values, in the table's partition key order
    folder: str  # its folder under the processed bucket, as the writer names it


@dataclass(frozen=True)
class TableOutputs:
    table: str
    partitions: list[PartitionOutput] = field(default_factory=list)
    quarantine: str = ""  # the run's quarantine folder for the table

    def to_json(self) -> str:
        return json.dumps({"table": self.table, "quarantine": self.quarantine,
                           "partitions": [{"values": p.values, "folder": p.folder} for p in self.partitions]})

    @classmethod
    def from_json(cls, text: str | bytes) -> TableOutputs:
        data = json.loads(text)
        partitions = [PartitionOutput(list(p["values"]), p["folder"]) for p in data["partitions"]]
        return cls(data["table"], partitions, data.get("quarantine", ""))


def record_outputs(s3: Any, artifacts: str, run_id: str, outputs: TableOutputs) -> None:
    """Before the table's rows are written: what discarding the run must remove."""
    s3.put_object(Bucket=artifacts, Key=outputs_key(run_id, outputs.table), Body=outputs.to_json().encode(),
                  ContentType="application/json")


def recorded_outputs(s3: Any, artifacts: str, run_id: str) -> list[TableOutputs]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=artifacts, Prefix=outputs_prefix(run_id))
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return [TableOutputs.from_json(s3.get_object(Bucket=artifacts, Key=key)["Body"].read()) for key in keys]


def discard_recorded(s3: Any, glue: Any, artifacts: str, processed: str, database: str, run_id: str) -> int:
    """Remove what the run's records name: each partition's folder and catalog entry (by its
    values: no partition listing), and its quarantine folders. Returns the partitions removed.
    Idempotent: a folder already gone and a partition never registered are no error."""
    removed = 0
    for table in recorded_outputs(s3, artifacts, run_id):
        for partition in table.partitions:
            delete_prefix(s3, processed, partition.folder)
        for start in range(0, len(table.partitions), PARTITIONS_PER_DELETE):
            batch = table.partitions[start:start + PARTITIONS_PER_DELETE]
            with contextlib.suppress(glue.exceptions.EntityNotFoundException):  # no table: nothing registered
                glue.batch_delete_partition(DatabaseName=database, TableName=table.table,
                                            PartitionsToDelete=[{"Values": p.values} for p in batch])
        if table.quarantine:
            delete_prefix(s3, processed, table.quarantine)
        removed += len(table.partitions)
    return removed
