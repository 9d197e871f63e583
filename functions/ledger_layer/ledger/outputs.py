"""A run's output record: what the job is about to write for one table, written to the artifacts
bucket before the table's rows are (runs/<run_id>/outputs/<table>.json). Both ends of a run read
them, so each costs what the run wrote, never what the table holds:

- a run that failed before its commit point is discarded by removing exactly what they name: its
  partition folders (and any catalog entry), its quarantine folder;
- a run past its commit point has its partitions registered from them - by the job right after
  its summary, or by whoever finishes the run if the job died before it did. Until then no query
  sees a row of the run.

A run without records wrote nothing. A table that fails inside a run has its record removed with
its output, so the run's other tables are registered and its own are not.

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

from ledger.catalog_partitions import add_partitions
from ledger.s3 import delete_prefix, discard_run_folders

# BatchDeletePartition takes at most 25 partitions a call (Glue API reference).
PARTITIONS_PER_DELETE = 25


def outputs_prefix(run_id: str) -> str:
    return f"runs/{run_id}/outputs/"


def outputs_key(run_id: str, table: str) -> str:
    return f"{outputs_prefix(run_id)}{table}.json"


@dataclass(frozen=True)
class PartitionOutput:
    values: list[str]  # the partition's values, in key order (null or empty: __HIVE_DEFAULT_PARTITION__)
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


def forget_outputs(s3: Any, artifacts: str, run_id: str, table: str) -> None:
    """A table that failed inside the run: its output is gone, so its record goes too."""
    s3.delete_object(Bucket=artifacts, Key=outputs_key(run_id, table))


def register_recorded(s3: Any, glue: Any, artifacts: str, processed: str, database: str, run_id: str) -> int:
    """Register the run's recorded partitions, each with its table's storage descriptor as the
    catalog holds it (the job has just put the table, with this run's columns and format), at
    the recorded folder. Idempotent: a partition already there is kept. Returns how many were new."""
    new = 0
    for outputs in recorded_outputs(s3, artifacts, run_id):
        table = glue.get_table(DatabaseName=database, Name=outputs.table)["Table"]
        new += add_partitions(glue, database, table, {
            tuple(p.values): f"s3://{processed}/{p.folder}" for p in outputs.partitions},
            expression=f"run_id = '{run_id}'")
    return new


class CatalogOutputs:
    """A run's output in the processed bucket and the catalog, for StartJobFunction and the local
    runtime: discard a run that failed before its commit point, finish one that got past it."""

    def __init__(self, glue: Any, s3: Any, database: str, processed: str, artifacts: str) -> None:
        self.glue = glue
        self.s3 = s3
        self.database = database
        self.processed = processed
        self.artifacts = artifacts

    def discard(self, run_id: str, recorded: bool = True) -> int:
        """Remove what the run wrote; returns the partitions removed. `recorded` False: a run of a
        job older than output records, found the old way (discard_unrecorded)."""
        if recorded:
            return discard_recorded(self.s3, self.glue, self.artifacts, self.processed, self.database, run_id)
        return self.discard_unrecorded(run_id)

    def finish(self, run_id: str) -> int:
        """Register a committed run's partitions (the job may have died before it did)."""
        return register_recorded(self.s3, self.glue, self.artifacts, self.processed, self.database, run_id)

    def discard_unrecorded(self, run_id: str) -> int:
        """For a run without output records (its job predates them): its registered partitions
        by a catalog expression on every table, and any `run_id=<run>/` folder by walking the
        bucket's folders. Unbounded: it grows with the tables' history."""
        removed = 0
        tables = self.glue.get_paginator("get_tables").paginate(DatabaseName=self.database)
        for table in (t for page in tables for t in page["TableList"]):
            pages = self.glue.get_paginator("get_partitions").paginate(
                DatabaseName=self.database, TableName=table["Name"], Expression=f"run_id = '{run_id}'")
            partitions = [p for page in pages for p in page["Partitions"]]
            for partition in partitions:
                location = partition["StorageDescriptor"]["Location"]
                delete_prefix(self.s3, self.processed, location.removeprefix(f"s3://{self.processed}/"))
            for start in range(0, len(partitions), PARTITIONS_PER_DELETE):
                self.glue.batch_delete_partition(
                    DatabaseName=self.database, TableName=table["Name"],
                    PartitionsToDelete=[{"Values": p["Values"]}
                                        for p in partitions[start:start + PARTITIONS_PER_DELETE]])
            delete_prefix(self.s3, self.processed, f"_quarantine/{table['Name']}/run_id={run_id}/")
            removed += len(partitions)
        discard_run_folders(self.s3, self.processed, "", run_id)  # written, perhaps never registered
        return removed
