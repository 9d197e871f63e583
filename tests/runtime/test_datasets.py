"""Datasets of your own, end to end through the local runtime: tables with other columns than the
samples' are processed by their datasets.toml section or by the defaults that fit them, and a
section naming a column its table lacks fails that table alone. One runtime for the module
(MaxAttempts=1, so a failing table's files end FAILED in one run); each test has its own folders."""

from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from sluice import ROOT
from sluice.datasets_report import DatasetReport, dataset_reports
from sluice.runtime import Runtime
from sluice.stack.publish import DATASETS, DATASETS_KEY, publish_code
from tests.runtime.conftest import ledger_items, orders_csv, processed_keys, put, started_runtime, wait

pytestmark = [pytest.mark.slow, pytest.mark.spark]

SAMPLES = ROOT / "samples"
# The checked-in file plus the sections these tests need, published where the job reads it.
SECTIONS = """
[datasets.sensors_feed]
timestamp_column = "at"
partition_granularity = "hour"
dedup_keys = ["device", "at"]
output_format = "json"
compression = "gzip"

[datasets.wrong_column]
timestamp_column = "created_at"
"""


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Iterator[Runtime]:
    with started_runtime(tmp_path_factory.mktemp("sluice-datasets"), MaxAttempts="1") as rt:
        s3, bucket = rt.aws.client("s3"), rt.stack.outputs["ArtifactsBucketName"]
        publish_code(s3, bucket)
        s3.put_object(Bucket=bucket, Key=DATASETS_KEY, Body=(DATASETS.read_text() + SECTIONS).encode())
        yield rt


def _objects(rt: Runtime, prefix: str) -> dict[str, bytes]:
    s3, bucket = rt.aws.client("s3"), rt.stack.outputs["ProcessedBucketName"]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in processed_keys(rt, prefix)}


def _report(rt: Runtime, table: str) -> DatasetReport:
    reports = dataset_reports(rt.aws.client, rt.aws.resource, rt.stack.outputs)
    return next(r for r in reports if r.table == table)


def test_a_csv_dataset_without_a_timestamp_column_is_done_by_the_defaults_that_fit(runtime):
    body = (SAMPLES / "clicks" / "clicks-2026-11-24.csv").read_bytes()
    before = datetime.now(UTC).date()
    put(runtime, "clicks-feed/clicks.csv", body)  # table clicks_feed: no section, no event_time
    [item] = wait(runtime, "clicks-feed", 1)
    after = datetime.now(UTC).date()
    assert (item["state"], item["rows_in"], item["rows_out"], item["rows_bad"]) == ("DONE", 30, 30, 0)
    objects = {k: b for k, b in _objects(runtime, "clicks_feed").items() if k.endswith(".parquet")}
    rows = [r for b in objects.values() for r in pq.read_table(io.BytesIO(b)).to_pylist()]
    expected = [tuple(line.split(",")) for line in body.decode().splitlines()[1:]]
    assert Counter((r["user_id"], r["url"], str(r["duration_ms"])) for r in rows) == Counter(expected)
    assert "region" not in rows[0]  # the default lookup joins on country, which clicks lacks: none
    days = {tuple(int(part.split("=")[1]) for part in k.split("/")[1:4]) for k in objects}
    assert days <= {(d.year, d.month, d.day) for d in (before, after)}  # placed by the ingest time (UTC)
    report = _report(runtime, "clicks_feed")
    assert report.settings.timestamp_column is None and report.settings.dedup_keys == ()
    assert report.settings.lookup_uri == "" and len(report.defaults) == 8  # every field a default
    assert (report.files["DONE"], report.rows.rows_out, report.processed_table) == (
        1, 30, f"{runtime.stack.outputs['ProcessedDatabaseName']}.clicks_feed")


def test_a_json_lines_dataset_is_placed_by_its_own_timestamp_column(runtime):
    body = (SAMPLES / "sensors" / "sensors-2026-11-24.jsonl").read_bytes()
    put(runtime, "Sensors-Feed/readings.jsonl", body)  # the crawler's table: sensors_feed
    [item] = wait(runtime, "Sensors-Feed", 1)
    assert (item["state"], item["rows_in"], item["rows_out"], item["rows_bad"], item["rows_duplicate"]) == (
        "DONE", 25, 24, 0, 1)  # one reading sent twice
    objects = _objects(runtime, "sensors_feed")
    data = {k: b for k, b in objects.items() if k.endswith(".json.gz")}
    assert data and all(k.endswith(".json.gz") for k in objects if "/part-" in k)
    written = [json.loads(line) for b in data.values() for line in gzip.decompress(b).decode().splitlines()]
    sent = [json.loads(line) for line in body.splitlines()]

    def reading(row: dict) -> tuple:
        return row["device"], row["reading"], row["unit"], datetime.fromisoformat(row["at"])

    assert len(written) == len(set(map(reading, sent))) == 24
    assert Counter(map(reading, written)) == Counter(set(map(reading, sent)))  # each once
    hours = {k.split("/hour=")[1][:2] for k in data}
    assert hours == {f"{h:02d}" for h in range(8)} and all("/day=24/" in k for k in data)
    report = _report(runtime, "sensors_feed")
    assert (report.settings.timestamp_column, report.settings.output_format, report.settings.lookup_uri) == (
        "at", "json", "")
    assert report.defaults == ["lookup_uri", "lookup_key", "csv_header"] and report.rows.rows_duplicate == 1


def test_a_section_naming_a_missing_column_fails_its_table_alone(runtime):
    # Both files in one run: they are recorded while a crawl is under way, so the next crawl
    # catalogues both and the run it triggers claims both.
    crawler = runtime.crawlers[0]
    crawler.paused.set()
    try:
        runtime.aws.client("glue").start_crawler(Name=crawler.name)
        put(runtime, "wrong_column/a.csv", orders_csv(6, start=500))  # has event_time, not created_at
        put(runtime, "right_column/a.csv", orders_csv(4, start=600))
        wait(runtime, "wrong_column", 1, states=("PENDING",))
        wait(runtime, "right_column", 1, states=("PENDING",))
    finally:
        crawler.paused.clear()
    [failed] = wait(runtime, "wrong_column", 1)
    [done] = wait(runtime, "right_column", 1)
    assert (done["state"], done.get("rows_out")) == ("DONE", 4), done.get("reason")
    assert failed["state"] == "FAILED" and failed["last_run_id"] == done["run_id"]  # the same run
    assert "[datasets.wrong_column]: timestamp_column names column 'created_at'" in failed["reason"]
    assert "its columns: order_id, customer_id, country, amount, currency, event_time" in failed["reason"]
    assert processed_keys(runtime, "wrong_column") == []
    assert "names column 'created_at'" in _report(runtime, "wrong_column").error
    assert [i["state"] for i in ledger_items(runtime, "right_column")] == ["DONE"]
