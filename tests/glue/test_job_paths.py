"""The job on Glue's own code path: real key names (input_file_name), a BOM, a truncated gzip
stream, real types in the catalog, isolated tables, one exchange that uses every task."""

from __future__ import annotations

import codecs
import gzip
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ledger import State
from sluice_glue import catalog, job, table_run, table_write
from sluice_glue.datasets import DatasetSettings
from sluice_glue.output import RawRows
from tests.glue.test_job import HEADER, PROCESSED, RAW, _csv, _keys, _rows, _run

pytestmark = pytest.mark.spark


def test_keys_with_odd_characters_and_a_bom_keep_their_source_file(pipeline, spark):
    aws, ledger, _ = pipeline
    objects = {"orders/Q1 report.csv": _csv(2).encode(),
               "orders/a=b+c 100% ü.csv": _csv(3, start=10).encode(),
               "orders/pct%20literal.csv": _csv(1, start=20).encode(),
               "orders/bom.csv": codecs.BOM_UTF8 + _csv(2, start=30).encode()}
    summary = _run(pipeline, spark, objects)
    assert summary["totals"]["rows_out"] == 8 and summary["totals"]["rows_bad"] == 0
    assert {f["file"]: f.get("note") for f in summary["files"]} == {f"s3://{RAW}/{k}": None for k in objects}
    by_source = {}
    for row in _rows(aws, "orders/"):
        by_source.setdefault(row["source_file"], set()).add(row["order_id"])
    assert by_source == {f"s3://{RAW}/orders/Q1 report.csv": {"o-00000", "o-00001"},
                         f"s3://{RAW}/orders/a=b+c 100% ü.csv": {"o-00010", "o-00011", "o-00012"},
                         f"s3://{RAW}/orders/pct%20literal.csv": {"o-00020"},
                         f"s3://{RAW}/orders/bom.csv": {"o-00030", "o-00031"}}
    assert {i["key"]: int(i["rows_out"]) for i in ledger.by_state(State.DONE)}["orders/bom.csv"] == 2


def test_a_gzip_file_truncated_mid_stream_is_quarantined_whole(pipeline, spark):
    aws = pipeline[0]
    whole = gzip.compress(_csv(5000).encode())
    summary = _run(pipeline, spark, {"orders/good.csv": _csv(3, start=90000).encode(),
                                     "orders/cut.csv.gz": whole[: len(whole) // 2]})
    cut = next(f for f in summary["files"] if f["file"].endswith("cut.csv.gz"))
    assert "truncated gzip" in cut["note"] and cut["rows_in"] == 0  # not DONE with a partial count
    assert summary["totals"]["rows_out"] == 3
    quarantine = b"".join(aws.client("s3").get_object(Bucket=PROCESSED, Key=k)["Body"].read()
                          for k in _keys(aws, "_quarantine/orders/"))
    assert b"cut.csv.gz" in quarantine and b"truncated gzip" in quarantine


def test_a_failing_table_goes_back_and_the_others_are_written(pipeline, spark, monkeypatch):
    aws, ledger, _ = pipeline

    def settings(run, table):  # orders by ingest time; api names a column it lacks
        return DatasetSettings(timestamp_column="missing" if table["Name"] == "api" else None,
                               dedup_keys=("order_id",))
    monkeypatch.setattr(table_run, "settings_for", settings)
    summary = _run(pipeline, spark, {"orders/a.csv": _csv(4).encode(), "api/b.csv": _csv(2).encode()})
    [returned] = summary["returned"]
    assert returned["file"] == f"s3://{RAW}/api/b.csv" and "table api failed" in returned["reason"]
    assert "missing" in returned["reason"]
    states = {i["key"]: (i["state"], int(i.get("attempts", 0))) for i in ledger.files()}
    assert states == {"orders/a.csv": ("DONE", 0), "api/b.csv": ("PENDING", 1)}
    assert _keys(aws, "api/") == []
    # the manifest's time (2026-11-25), not the rows' own (2026-11-24): one partition for the run
    assert {k.split("/run_id=")[0] for k in _keys(aws, "orders/")} == {"orders/year=2026/month=11/day=25"}


def test_a_decimal_column_is_written_and_registered_with_its_type(pipeline, spark):
    aws = pipeline[0]
    glue = aws.client("glue")
    glue.create_table(DatabaseName="raw_db", TableInput=catalog.table_input(
        "prices", f"s3://{RAW}/prices/", [("order_id", "string"), ("amount", "decimal(10,2)"),
                                            ("qty", "smallint"), ("event_time", "timestamp")], [], "csv",
        {"skip.header.line.count": "1"}))
    summary = _run(pipeline, spark, {"prices/p.csv": b"order_id,amount,qty,event_time\n"
                                     b"p-1,12.34,3,2026-11-24T01:00:00Z\np-2,0.5,7,2026-11-24T02:00:00Z\n"},
                   crawl=False)
    assert summary["totals"]["rows_out"] == 2
    key = next(k for k in _keys(aws, "prices/") if k.endswith(".parquet"))
    written = pq.read_table(io.BytesIO(aws.client("s3").get_object(Bucket=PROCESSED, Key=key)["Body"].read()))
    assert written.schema.field("amount").type == pa.decimal128(10, 2)
    assert written.schema.field("qty").type == pa.int16()
    table = glue.get_table(DatabaseName="processed_db", Name="prices")["Table"]
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert (columns["amount"], columns["qty"]) == ("decimal(10,2)", "smallint")


def _plan(df) -> str:
    return df._jdf.queryExecution().executedPlan().toString()


@pytest.mark.parametrize("keys", [("order_id",), ()])
def test_one_day_is_spread_over_every_task_by_one_exchange(spark, keys):
    rows = [(f"o-{i}", f"2026-11-24T{i % 24:02d}:00:00Z", None, i % 3) for i in range(400)]
    raw = spark.createDataFrame(rows, "order_id string, event_time string, _corrupt string, _file int")
    columns = [("order_id", "string"), ("event_time", "timestamp")]
    settings = DatasetSettings("event_time", dedup_keys=keys)
    prepared = table_write.prepared(RawRows(raw, columns), settings, None, 4)
    assert _plan(prepared).count("Exchange hashpartitioning") == 1
    sizes = prepared.rdd.glom().map(len).collect()
    assert len(sizes) == 4 and all(sizes) and sum(sizes) == 400  # one day, every task


def test_the_quarantine_shuffles_only_the_bad_rows_and_adaptive_execution_sizes_its_files(spark):
    rows = spark.createDataFrame([(0, "bad", ("x", None)), (0, None, None)],
                                 "_file int, _bad_reason string, _raw struct<a:string,_corrupt:string>")
    plan = _plan(table_write.quarantined(spark, rows.cache(), "r1", {0: "s3://raw/a.csv"}, {}))
    exchange = plan.index("REBALANCE_PARTITIONS_BY_NONE")  # AQE coalesces it: not one task for all
    assert plan.count("Exchange") == 1 and "isnotnull(_bad_reason" in plan[exchange:]  # filter below it


def test_header_names_drop_a_bom():
    from sluice_glue.raw_files import header_names

    assert header_names("\ufeff" + HEADER, ",")[0] == "order_id"


def test_no_query_sees_a_run_before_its_commit_point_and_a_run_that_dies_after_it_is_finished(
        pipeline, spark, monkeypatch):
    """Issue 19, finding 10: the run's partitions are registered after its summary, from its output
    records; a job that dies in between leaves a committed run that finishing registers."""
    from ledger.outputs import CatalogOutputs, recorded_outputs
    from tests.glue.conftest import ARTIFACTS

    aws, _, _ = pipeline
    glue, s3 = aws.client("glue"), aws.client("s3")
    seen = {}

    def dies_at_registration(s3_client, glue_client, artifacts, processed, database, run_id):
        summary = s3.list_objects_v2(Bucket=artifacts, Prefix=f"runs/{run_id}/summary.json")
        seen["summary"] = summary["KeyCount"]
        seen["partitions"] = glue.get_partitions(DatabaseName=database, TableName="orders")["Partitions"]
        raise RuntimeError("the job died after its commit point")

    monkeypatch.setattr(job, "register_recorded", dies_at_registration)
    with pytest.raises(RuntimeError, match="after its commit point"):
        _run(pipeline, spark, {"orders/a.csv": _csv(3).encode(), "orders/b.csv": _csv(2, start=5).encode()})
    assert seen == {"summary": 1, "partitions": []}  # committed, and nothing queryable yet
    [outputs] = recorded_outputs(s3, ARTIFACTS, "run-1")
    assert outputs.table == "orders" and outputs.partitions  # what finishing will register
    finish = CatalogOutputs(glue, s3, "processed_db", PROCESSED, ARTIFACTS).finish
    assert finish("run-1") == len(outputs.partitions) and finish("run-1") == 0
    registered = {p["StorageDescriptor"]["Location"] for p in
                  glue.get_partitions(DatabaseName="processed_db", TableName="orders")["Partitions"]}
    assert registered == {f"s3://{PROCESSED}/{p.folder}" for p in outputs.partitions}
    assert all(_keys(aws, p.folder) for p in outputs.partitions)  # each at a folder the job wrote
