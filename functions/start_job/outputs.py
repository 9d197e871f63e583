"""Adapter: discard what a failed run wrote to the processed bucket and the catalog.

A run that dies before its commit point may have written, and even registered, some partitions.
Its files are processed again under a new run id, so its own partitions must go, or Athena
would count their rows twice. Partitions carry the run id as their last key, so registered ones
are found by a catalog expression; folders the run wrote but never registered are found by
listing each table folder of the processed bucket down to its `run_id=<run_id>/` folders. The
run's quarantine folder is found by name.
"""

from __future__ import annotations

from typing import Any

from ledger.s3 import delete_prefix, discard_run_folders


class CatalogOutputs:
    def __init__(self, glue: Any, s3: Any, database: str, bucket: str) -> None:
        self.glue = glue
        self.s3 = s3
        self.database = database
        self.bucket = bucket

    def discard(self, run_id: str) -> int:
        """Delete the run's registered partitions, their objects and its quarantine; returns
        the number of partitions removed."""
        removed = 0
        tables = self.glue.get_paginator("get_tables").paginate(DatabaseName=self.database)
        for table in (t for page in tables for t in page["TableList"]):
            pages = self.glue.get_paginator("get_partitions").paginate(
                DatabaseName=self.database, TableName=table["Name"], Expression=f"run_id = '{run_id}'")
            partitions = [p for page in pages for p in page["Partitions"]]
            for partition in partitions:
                location = partition["StorageDescriptor"]["Location"]
                delete_prefix(self.s3, self.bucket, location.removeprefix(f"s3://{self.bucket}/"))
            for start in range(0, len(partitions), 25):
                self.glue.batch_delete_partition(
                    DatabaseName=self.database, TableName=table["Name"],
                    PartitionsToDelete=[{"Values": p["Values"]} for p in partitions[start:start + 25]])
            delete_prefix(self.s3, self.bucket, f"_quarantine/{table['Name']}/run_id={run_id}/")
            removed += len(partitions)
        # Written, perhaps never registered (or no table yet): found by listing folders.
        discard_run_folders(self.s3, self.bucket, "", run_id)
        return removed
