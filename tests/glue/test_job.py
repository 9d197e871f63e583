"""The ETL job end to end against the emulator: from a manifest to processed objects, catalog
partitions, quarantine, the run summary and DONE ledger items."""

from __future__ import annotations

import gzip
import io
import json

import pyarrow.parquet as pq
import pytest

from ledger import FileRef, RunBudget, RunManifest, State, manifest_key, summary_key
from ledger.run_table import DynamoRunRecords
from sluice.aws import glue_crawl
from tests.glue.conftest import ARTIFACTS, PROCESSED, RAW

pytestmark = pytest.mark.spark


HEADER = "order_id,customer_id,country,amount,currency,event_time\n"


def _csv(rows: int, start: int = 0, day: str = "2026-11-24") -> str:
    return HEADER + "".join(f"o-{i:05d},c-{i % 7},DE,{i}.5,EUR,{day}T{i % 24:02d}:00:00Z\n"
                            for i in range(start, start + rows))


def _run(pipeline, spark, objects: dict[str, bytes], run_id: str = "run-1", crawl: bool = True,
         **options: str) -> dict:
    """Put the objects, crawl, record and claim them, write the manifest, run the job."""
    aws, ledger, table = pipeline
    s3 = aws.client("s3")
    refs = []
    for key, body in objects.items():
        etag = s3.put_object(Bucket=RAW, Key=key, Body=body)["ETag"].strip('"')
        refs.append(FileRef(RAW, key, etag, len(body)))
        ledger.record_pending(refs[-1])
    if crawl:
        glue_crawl.crawl(aws, "raw-crawler")
    claimed = ledger.claim_pending(run_id, RunBudget(1000, 10**12)) or refs
    _started(aws, table, run_id)
    s3.put_object(Bucket=ARTIFACTS, Key=manifest_key(run_id),
                  Body=RunManifest(run_id, "2026-11-25T00:00:00Z", claimed).to_json().encode())
    return _main(spark, _argv(table, run_id, **options))


def _started(aws, table: str, run_id: str) -> None:
    """What StartJobFunction does before StartJobRun: the run's record, STARTING (the job's fence
    lets it begin)."""
    runs = DynamoRunRecords(aws.resource("dynamodb").Table(table))
    runs.open(run_id)
    runs.starting(run_id)


def _argv(table: str, run_id: str, **options: str) -> list[str]:
    argv = ["etl_job.py", "--run_id", run_id, "--manifest_uri", f"s3://{ARTIFACTS}/{manifest_key(run_id)}",
            "--ledger_table", table, "--raw_database", "raw_db", "--processed_database", "processed_db",
            "--processed_bucket", PROCESSED, "--artifacts_bucket", ARTIFACTS, "--dedup_keys", "order_id",
            "--storage", "local"]
    for name, value in options.items():
        argv += [f"--{name}", value]
    return argv


def _main(spark, argv: list[str]) -> dict:
    """Run the job; its RunSummary in the shape summary.json has, which the tests compare to."""
    import etl_job

    return etl_job.main(argv, spark=spark).to_dict()


def _keys(aws, prefix: str) -> list[str]:
    listed = aws.client("s3").list_objects_v2(Bucket=PROCESSED, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def _rows(aws, prefix: str) -> list[dict]:
    s3 = aws.client("s3")
    rows = []
    for key in _keys(aws, prefix):
        if key.endswith(".parquet"):
            body = s3.get_object(Bucket=PROCESSED, Key=key)["Body"].read()
            rows += pq.read_table(io.BytesIO(body)).to_pylist()
    return rows


def _order_ids(aws, prefix: str) -> list[str]:
    return [r["order_id"] for r in _rows(aws, prefix)]


def test_formats_quarantine_dedup_catalog_summary_and_ledger(pipeline, spark):
    aws, ledger, _ = pipeline
    bad = _csv(5, start=100) + "o-x,c,DE,1.0,EUR,not-a-time\n" + ",c,DE,1.0,EUR,2026-11-24T01:00:00Z\n"
    bad += "o-00100,c-2,DE,100.5,EUR,2026-11-24T04:00:00Z\n"  # a duplicate of the first row
    api = "".join(json.dumps({"order_id": f"a-{i}", "customer_id": "c", "country": "FR", "amount": 2.5,
                              "currency": "EUR", "event_time": "2026-11-23T10:00:00Z"}) + "\n"
                  for i in range(4))
    summary = _run(pipeline, spark, {
        "orders/plain.csv": _csv(10).encode(),
        "orders/zipped.csv.gz": gzip.compress(_csv(6, start=50, day="2026-11-25").encode()),
        "orders/bad.csv": bad.encode(),
        "api/orders.jsonl": api.encode()})
    assert summary["totals"] == {"rows_in": 28, "rows_out": 25, "rows_bad": 2, "rows_duplicate": 1,
                                 "files": 4, "returned": 0}
    assert sorted(set(_order_ids(aws, "orders/"))) == sorted(_order_ids(aws, "orders/"))
    assert len(_order_ids(aws, "orders/")) == 10 + 6 + 5 and len(_order_ids(aws, "api/")) == 4
    assert any("year=2026/month=11/day=25/run_id=run-1/" in k for k in _keys(aws, "orders/"))
    quarantine = aws.client("s3")
    lines = [json.loads(line) for key in _keys(aws, "_quarantine/orders/run_id=run-1/")
             for line in quarantine.get_object(Bucket=PROCESSED, Key=key)["Body"].read().splitlines()]
    assert sorted(r["reason"] for r in lines) == ["bad timestamp in event_time: not-a-time",
                                                  "missing value for order_id"]
    assert {r["source_file"] for r in lines} == {f"s3://{RAW}/orders/bad.csv"}
    glue = aws.client("glue")
    partitions = glue.get_partitions(DatabaseName="processed_db", TableName="orders")["Partitions"]
    assert sorted(p["Values"] for p in partitions) == [
        ["2026", "11", "24", "run-1"], ["2026", "11", "25", "run-1"]]
    stored = aws.client("s3").get_object(Bucket=ARTIFACTS, Key=summary_key("run-1"))["Body"].read()
    stored = json.loads(stored)
    assert stored["totals"] == summary["totals"]
    items = {i["key"]: i for i in ledger.by_state(State.DONE)}
    assert (items["orders/bad.csv"]["rows_in"], items["orders/bad.csv"]["rows_out"],
            items["orders/bad.csv"]["rows_bad"], items["orders/bad.csv"]["rows_duplicate"]) == (8, 5, 2, 1)


def test_rerunning_the_same_run_id_leaves_exactly_one_copy(pipeline, spark):
    aws, _, table = pipeline
    _run(pipeline, spark, {"orders/a.csv": _csv(12).encode()})
    first = _keys(aws, "orders/")
    _main(spark, _argv(table, "run-1"))  # the same run, attempted again
    assert len(_keys(aws, "orders/")) == len(first)
    assert sorted(_order_ids(aws, "orders/")) == [f"o-{i:05d}" for i in range(12)]


@pytest.mark.parametrize("codec", ["snappy", "zstd", "gzip"])
def test_each_codec_is_really_written(pipeline, spark, codec):
    aws, _, _ = pipeline
    _run(pipeline, spark, {"orders/a.csv": _csv(5).encode()}, compression=codec)
    key = next(k for k in _keys(aws, "orders/") if k.endswith(".parquet"))
    body = aws.client("s3").get_object(Bucket=PROCESSED, Key=key)["Body"].read()
    metadata = pq.ParquetFile(io.BytesIO(body)).metadata
    assert metadata.row_group(0).column(0).compression == codec.upper()


def test_empty_and_corrupt_files_are_accounted_for(pipeline, spark):
    aws, ledger, _ = pipeline
    summary = _run(pipeline, spark, {"orders/good.csv": _csv(3).encode(),
                                     "orders/header-only.csv": HEADER.encode(),
                                     "orders/broken.csv.gz": b"\x1f\x8b\x08\x00truncated"})
    notes = {f["file"].rsplit("/", 1)[-1]: f.get("note") for f in summary["files"]}
    assert notes["good.csv"] is None
    assert notes["header-only.csv"] and notes["broken.csv.gz"]
    assert all(i["state"] == "DONE" for i in ledger.files())
    quarantined = b"".join(aws.client("s3").get_object(Bucket=PROCESSED, Key=k)["Body"].read()
                           for k in _keys(aws, "_quarantine/orders/"))
    assert b"header-only.csv" in quarantined and b"broken.csv.gz" in quarantined


def test_a_file_without_a_catalog_table_goes_back_alone(pipeline, spark):
    _, ledger, _ = pipeline
    summary = _run(pipeline, spark, {"uncrawled/a.csv": _csv(2).encode()}, crawl=False)
    [item] = ledger.files()
    assert (item["state"], item["attempts"]) == ("PENDING", 1)
    assert "no catalog table" in item["reason"] and summary["returned"][0]["file"].endswith("uncrawled/a.csv")


def test_parquet_input_with_hive_partitions_uses_the_catalog_schema(pipeline, spark):
    import pyarrow as pa

    aws = pipeline[0]
    table = pa.table({"order_id": ["p-1", "p-2"], "amount": [1.5, 2.5],
                      "event_time": ["2026-11-24T01:00:00Z", "2026-11-24T02:00:00Z"]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    summary = _run(pipeline, spark, {"sales/region=eu/part-0.parquet": sink.getvalue()})
    assert summary["totals"]["rows_out"] == 2
    keys = _keys(aws, "sales/")
    assert any("region=eu/year=2026/month=11/day=24/run_id=run-1/" in k for k in keys)
    body = aws.client("s3").get_object(Bucket=PROCESSED, Key=next(k for k in keys if k.endswith(".parquet")))
    written = pq.read_table(io.BytesIO(body["Body"].read()))
    assert written.schema.field("amount").type == pa.float64()
    assert str(written.schema.field("event_time").type).startswith("timestamp")


def test_csv_columns_are_matched_by_header_name_not_position(pipeline, spark):
    aws, _, _ = pipeline
    _run(pipeline, spark, {
        "orders/a.csv": _csv(2).encode(),
        "orders/reordered.csv": b"event_time,order_id,amount,country,customer_id,currency\n"
                                b"2026-11-24T05:00:00Z,o-r1,3.50,FR,c-9,EUR\n",
        "orders/fewer.csv": b"order_id,event_time,amount\no-f1,2026-11-24T06:00:00Z,1.25\n"})
    rows = {r["order_id"]: r for r in _rows(aws, "orders/")}
    reordered = rows["o-r1"]
    assert (reordered["country"], reordered["amount"], reordered["customer_id"]) == ("FR", 3.5, "c-9")
    assert (rows["o-f1"]["amount"], rows["o-f1"]["country"]) == (1.25, None)  # a missing column is null


def test_rerunning_the_same_run_id_leaves_one_copy_of_its_quarantine(pipeline, spark):
    aws, _, table = pipeline
    _run(pipeline, spark, {"orders/bad.csv": (_csv(2) + "o-x,c,DE,1.0,EUR,not-a-time\n").encode()})
    first = _keys(aws, "_quarantine/orders/run_id=run-1/")
    _main(spark, _argv(table, "run-1"))
    assert len(_keys(aws, "_quarantine/orders/run_id=run-1/")) == len(first) > 0
