"""The processed catalog and the discard of a failed run, against moto (no Spark): partition
errors surface, only the run's partitions are listed, the table is updated only when it changed
(without archiving), real types are registered, and a failed run's folders go by prefix."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws
from pyspark.sql.types import (
    ArrayType,
    ByteType,
    DecimalType,
    IntegerType,
    MapType,
    ShortType,
    StringType,
    StructField,
    StructType,
)

from ledger.catalog_partitions import PartitionError
from sluice.aws.account import REGION
from sluice_glue import catalog
from tests.catalog_helpers import register

DB, BUCKET = "processed_db", "processed-bucket"



class Recording:
    """The moto client, with the calls the catalog makes recorded; `errors` are answered by
    BatchCreatePartition as AWS answers a refused partition (in Errors, without raising)."""

    def __init__(self, client: Any, errors: list[dict] | None = None) -> None:
        self.client, self.errors, self.calls = client, errors or [], []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def get_paginator(self, name: str) -> Any:
        paginator = self.client.get_paginator(name)
        calls = self.calls

        class Recorded:
            def paginate(self, **kwargs: Any) -> Any:
                calls.append((name, kwargs))
                return paginator.paginate(**kwargs)
        return Recorded()

    def update_table(self, **kwargs: Any) -> Any:
        self.calls.append(("update_table", kwargs))
        return self.client.update_table(**kwargs)

    def batch_create_partition(self, **kwargs: Any) -> Any:
        answer = self.client.batch_create_partition(**kwargs)
        return {**answer, "Errors": answer.get("Errors", []) + self.errors}


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        glue = boto3.client("glue", region_name=REGION)
        glue.create_database(DatabaseInput={"Name": DB})
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield glue, s3


def _register(glue: Any, run_id: str, days: list[str], columns=(("order_id", "string"),)) -> int:
    return register(glue, DB, "orders", f"s3://{BUCKET}/orders/", list(columns), ["day", "run_id"],
                            [[d, run_id] for d in days], "parquet", run_id)


def test_a_refused_partition_raises_with_its_values_and_error(aws):
    refused = {"PartitionValues": ["25", "r1"], "ErrorDetail": {"ErrorCode": "InvalidInputException",
                                                               "ErrorMessage": "bad location"}}
    with pytest.raises(PartitionError, match=r"\['25', 'r1'\]: InvalidInputException bad location"):
        _register(Recording(aws[0], [refused]), "r1", ["25"])


def test_already_exists_is_not_an_error(aws):
    exists = {"PartitionValues": ["25", "r1"], "ErrorDetail": {"ErrorCode": "AlreadyExistsException"}}
    assert _register(Recording(aws[0], [exists]), "r1", ["25"]) == 1


def test_only_the_runs_partitions_are_listed_and_the_table_updated_only_when_it_changed(aws):
    glue = Recording(aws[0])
    _register(glue, "r1", ["24", "25"])
    assert _register(glue, "r2", ["25"]) == 1 and _register(glue, "r2", ["25"]) == 0  # r2 retried
    listings = [kwargs for name, kwargs in glue.calls if name == "get_partitions"]
    assert [k.get("Expression") for k in listings] == ["run_id = 'r1'", "run_id = 'r2'", "run_id = 'r2'"]
    assert not [c for c in glue.calls if c[0] == "update_table"]
    _register(glue, "r3", ["26"], columns=(("order_id", "string"), ("amount", "decimal(10,2)")))
    [(_, update)] = [c for c in glue.calls if c[0] == "update_table"]
    assert update["SkipArchive"] is True
    table = aws[0].get_table(DatabaseName=DB, Name="orders")["Table"]
    assert table["StorageDescriptor"]["Columns"][1] == {"Name": "amount", "Type": "decimal(10,2)"}


def test_hive_columns_are_the_real_types():
    schema = StructType([
        StructField("amount", DecimalType(10, 2)), StructField("qty", ShortType()),
        StructField("flag", ByteType()), StructField("tags", ArrayType(StringType())),
        StructField("where", StructType([StructField("lat", IntegerType())])),
        StructField("attrs", MapType(StringType(), IntegerType())), StructField("run_id", StringType())])
    assert catalog.hive_columns(schema, ["run_id"]) == [
        ("amount", "decimal(10,2)"), ("qty", "smallint"), ("flag", "tinyint"), ("tags", "array<string>"),
        ("where", "struct<lat:int>"), ("attrs", "map<string,int>")]


def test_a_run_without_output_records_is_discarded_the_old_way(aws):
    """Runs of a job older than output records (ledger/outputs.py): found by listing."""
    from ledger.outputs import CatalogOutputs

    glue, s3 = aws
    keys = ["orders/year=2026/day=24/run_id=r1/a.parquet", "orders/year=2026/day=25/run_id=r1/b.parquet",
            "orders/year=2026/day=25/run_id=r0/keep.parquet", "clicks/region=eu/run_id=r1/c.parquet",
            "_quarantine/orders/run_id=r1/part.json", "_quarantine/orders/run_id=r0/keep.json"]
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    _register(glue, "r1", ["24"])  # one registered partition; the others never were
    assert CatalogOutputs(glue, s3, DB, BUCKET, "artifacts").discard("r1", recorded=False) == 1
    left = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert left == ["_quarantine/orders/run_id=r0/keep.json",
                    "orders/year=2026/day=25/run_id=r0/keep.parquet"]
    assert glue.get_partitions(DatabaseName=DB, TableName="orders")["Partitions"] == []


@pytest.mark.spark
def test_partition_locations_are_the_folders_spark_writes(spark, tmp_path):
    # A value Spark escapes in a folder name (":" is %3A, ...) registered at another folder would
    # make Athena return no rows for it, silently: the catalog's escaping is Spark's.
    values = ["2026-01-01T10:00", "a/b c", "100% ?#*'\"=[]{}^\\", "é\tx", "", None, "plain-value_1.2"]
    spark.createDataFrame([(v, i) for i, v in enumerate(values)], "at string, n int").write.partitionBy(
        "at").parquet(str(tmp_path / "out"))
    written = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir())
    expected = sorted({catalog.partition_path(["at"], [v]).rstrip("/") for v in values})
    assert written == expected
