"""The write path: the small-run path writes what the large one writes; append after the run's
own folders are emptied; Glue's documented bootstrap."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from sluice_glue import raw_files, transforms
from sluice_glue.datasets import DatasetSettings
from sluice_glue.output import OutputRoots, RawRows, RunFiles, WritePlan, run_dir
from sluice_glue.sizing import RunSize
from sluice_glue.table_write import write_table

pytestmark = pytest.mark.spark
COLUMNS = [("order_id", "string"), ("amount", "decimal(10,2)"), ("event_time", "timestamp")]
TABLE = {"Parameters": {"classification": "csv", "skip.header.line.count": "1"},
         "StorageDescriptor": {"Columns": [{"Name": n, "Type": t} for n, t in COLUMNS],
                               "SerdeInfo": {"Parameters": {}}}}


def _write(spark, tmp_path: Path, name: str, size: RunSize):
    source = tmp_path / "orders.csv"
    source.write_text(
        "order_id,amount,event_time\n" + "o-1,1.50,2026-11-24T01:00:00Z\n"
        "o-1,9.99,2026-11-24T02:00:00Z\n"
        "o-2,2.25,2026-11-25T03:00:00Z\n"
        "o-3,x,2026-11-25T04:00:00Z\n"
    )
    layout = raw_files.layout(TABLE)
    raw = raw_files.read(spark, layout, COLUMNS, [raw_files.FileRoute(0, str(source), "spark")],
                         {0: [n for n, _ in COLUMNS]},
                         lambda df: transforms.with_file_index(df, {f"file://{source}": 0}))
    cleared: list[list[str]] = []
    out = write_table(
        spark,
        RawRows(raw, COLUMNS),
        RunFiles("run-1", {0: "s3://raw/orders.csv"}),
        WritePlan(DatasetSettings("event_time", dedup_keys=("order_id",)), size),
        OutputRoots(str(tmp_path / name), str(tmp_path / f"{name}-q")),
        before_write=lambda partition_by, partitions: cleared.append(
            [run_dir(partition_by, values) for values in partitions]),
    )
    return out, cleared


def _rows(folder: Path) -> list[dict]:
    table = ds.dataset(str(folder), format="parquet", partitioning="hive").to_table()
    return sorted(
        ({k: v for k, v in r.items() if k != "ingested_at"} for r in table.to_pylist()),
        key=lambda r: r["order_id"],
    )


def test_the_small_run_path_writes_what_the_large_path_writes(spark, tmp_path):
    small, small_cleared = _write(spark, tmp_path, "small", RunSize(100, 1, small=True, compress_cache=False))
    large, large_cleared = _write(spark, tmp_path, "large", RunSize(100, 2, small=False, compress_cache=True))
    assert (small.counts, small.partitions, small.good_schema) == (
        large.counts,
        large.partitions,
        large.good_schema,
    )
    assert small_cleared == large_cleared == [small.run_dirs]  # the run's partitions, told before the write
    assert _rows(tmp_path / "small") == _rows(tmp_path / "large")
    assert sorted(p.name for p in (tmp_path / "small-q").glob("*.json")) != []  # "x" is not a decimal
    written = next((tmp_path / "small").rglob("*.parquet"))
    assert pq.ParquetFile(written).schema.column(2).physical_type == "INT96"  # as Spark writes timestamps


def test_the_small_path_writes_only_codecs_a_dataset_may_name():
    from sluice_glue import datasets, small_write

    assert set(small_write.CODECS) <= set(datasets.CODECS["parquet"])


def test_a_value_spark_would_escape_in_a_folder_name_takes_the_large_path():
    from sluice_glue.small_write import folder_safe

    assert folder_safe("2026") and folder_safe("run-20261125T101500Z-3f9a1c2e")
    assert not folder_safe("a:b") and not folder_safe("") and not folder_safe(None)


def test_the_s3_storage_empties_only_the_runs_folders_before_appending(pipeline):
    from sluice_glue.storage import Storage
    from tests.glue.conftest import PROCESSED

    aws, _, _ = pipeline
    s3 = aws.client("s3")
    for key in ("orders/day=24/run_id=r1/old.parquet", "orders/day=24/run_id=r0/other.parquet"):
        s3.put_object(Bucket=PROCESSED, Key=key, Body=b"x")
    Storage().clear(PROCESSED, "orders/", ["day=24/run_id=r1"])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=PROCESSED)["Contents"]]
    assert keys == ["orders/day=24/run_id=r0/other.parquet"]


def test_glue_bootstrap_initialises_the_job_with_its_resolved_arguments(monkeypatch, spark):
    """AWS's "Encrypting data written by AWS Glue": job.init(args['JOB_NAME'], args), and the
    session is the GlueContext's."""
    import etl_job

    calls: dict = {}

    class GlueContext:
        def __init__(self, sc):
            calls["sc"] = sc
            self.spark_session = "the glue session"

    class Job:
        def __init__(self, context):
            calls["context"] = context

        def init(self, name, args):
            calls["init"] = (name, args)

    monkeypatch.setitem(sys.modules, "awsglue.context", types.SimpleNamespace(GlueContext=GlueContext))
    monkeypatch.setitem(sys.modules, "awsglue.job", types.SimpleNamespace(Job=Job))
    session, _ = etl_job.glue_bootstrap(
        ["etl_job.py", "--JOB_NAME", "sluice-dev-etl", "--run_id", "r"], spark
    )
    assert session == "the glue session" and calls["sc"] is spark.sparkContext
    name, args = calls["init"]
    assert name == "sluice-dev-etl" and args["JOB_NAME"] == "sluice-dev-etl"


@pytest.mark.skipif(
    os.environ.get("SLUICE_IN_GLUE_IMAGE") != "1",
    reason="needs AWS's Glue 5.0 image (make glue-test-docker sets SLUICE_IN_GLUE_IMAGE=1)",
)
def test_glue_bootstrap_in_the_glue_image():
    """The real GlueContext and Job, as Glue runs the script: what only the container can test."""
    import etl_job

    session, glue_job = etl_job.glue_bootstrap(["etl_job.py", "--JOB_NAME", "sluice-test", "--run_id", "r"])
    assert session.range(3).count() == 3
    glue_job.commit()
