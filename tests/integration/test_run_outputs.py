"""A run's output records (ledger/outputs.py) on the emulator: discarding a failed run removes
exactly what its records name, with no listing of the table's history; finishing a committed
run registers its partitions, once."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.catalog_partitions import DEFAULT_PARTITION_NAME
from ledger.outputs import CatalogOutputs, PartitionOutput, TableOutputs, forget_outputs, record_outputs
from sluice_glue import catalog

PROCESSED, ARTIFACTS, DB = "processed", "artifacts", "processed_db"


class Calls:
    """A client that counts the operations made through it."""

    def __init__(self, client: Any) -> None:
        self.client, self.made = client, []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if callable(attribute) and not name.startswith("get_paginator") and name != "exceptions":
            def call(*args: Any, **kwargs: Any) -> Any:
                self.made.append(name)
                return attribute(*args, **kwargs)
            return call
        return attribute


@pytest.fixture
def stores(aws):
    s3, glue = aws.client("s3"), aws.client("glue")
    for bucket in (PROCESSED, ARTIFACTS):
        s3.create_bucket(Bucket=bucket)
    glue.create_database(DatabaseInput={"Name": DB})
    catalog.put_processed_table(glue, DB, "orders", f"s3://{PROCESSED}/orders/", [("order_id", "string")],
                                ["day", "run_id"], "parquet")
    return s3, glue


def _record(s3, run_id: str, days: list[str | None]) -> TableOutputs:
    outputs = TableOutputs("orders", [
        PartitionOutput([d or DEFAULT_PARTITION_NAME, run_id],
                        f"orders/{catalog.partition_path(['day', 'run_id'], [d, run_id])}") for d in days],
        f"_quarantine/orders/run_id={run_id}/")
    record_outputs(s3, ARTIFACTS, run_id, outputs)
    for partition in outputs.partitions:
        s3.put_object(Bucket=PROCESSED, Key=f"{partition.folder}part-0.parquet", Body=b"x")
    s3.put_object(Bucket=PROCESSED, Key=f"_quarantine/orders/run_id={run_id}/part-0.json", Body=b"{}")
    return outputs


def test_finishing_a_committed_run_registers_its_partitions_at_their_folders_once(stores):
    s3, glue = stores
    _record(s3, "r1", ["24", "2026-01-01T10:00", None])
    outputs = CatalogOutputs(glue, s3, DB, PROCESSED, ARTIFACTS)
    assert outputs.finish("r1") == 3 and outputs.finish("r1") == 0  # idempotent: a retried finish
    partitions = {tuple(p["Values"]): p["StorageDescriptor"]["Location"]
                  for p in glue.get_partitions(DatabaseName=DB, TableName="orders")["Partitions"]}
    assert partitions == {
        ("24", "r1"): f"s3://{PROCESSED}/orders/day=24/run_id=r1/",
        ("2026-01-01T10:00", "r1"): f"s3://{PROCESSED}/orders/day=2026-01-01T10%3A00/run_id=r1/",
        (DEFAULT_PARTITION_NAME, "r1"): f"s3://{PROCESSED}/orders/day={DEFAULT_PARTITION_NAME}/run_id=r1/"}


def test_discarding_a_failed_run_removes_what_its_records_name_and_lists_no_history(stores):
    s3, glue = stores
    _record(s3, "r0", ["23"])  # an earlier run, committed
    CatalogOutputs(glue, s3, DB, PROCESSED, ARTIFACTS).finish("r0")
    _record(s3, "r1", ["24", "25"])
    CatalogOutputs(glue, s3, DB, PROCESSED, ARTIFACTS).finish("r1")  # even if it had registered them
    counted = Calls(glue)
    assert CatalogOutputs(counted, s3, DB, PROCESSED, ARTIFACTS).discard("r1") == 2
    assert "get_partitions" not in counted.made and "get_tables" not in counted.made
    left = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=PROCESSED)["Contents"])
    assert left == ["_quarantine/orders/run_id=r0/part-0.json", "orders/day=23/run_id=r0/part-0.parquet"]
    assert [p["Values"] for p in glue.get_partitions(DatabaseName=DB, TableName="orders")["Partitions"]] == [
        ["23", "r0"]]
    assert CatalogOutputs(glue, s3, DB, PROCESSED, ARTIFACTS).discard("r1") == 2  # again: nothing breaks


def test_a_run_without_records_wrote_nothing_and_a_forgotten_table_is_left_out(stores):
    s3, glue = stores
    outputs = CatalogOutputs(glue, s3, DB, PROCESSED, ARTIFACTS)
    assert outputs.discard("r-none") == 0 and outputs.finish("r-none") == 0
    _record(s3, "r2", ["24"])
    forget_outputs(s3, ARTIFACTS, "r2", "orders")  # the table failed inside the run
    assert outputs.finish("r2") == 0
    assert glue.get_partitions(DatabaseName=DB, TableName="orders")["Partitions"] == []
