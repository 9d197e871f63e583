"""The names the job adds, against the names raw data brings: one rule (a raw column named like a
column the job adds is kept as raw_<name>), refused with a clear message where it cannot be
resolved, and a run whose every table was refused says so in its summary."""

from __future__ import annotations

import pytest

from tests.glue.test_job import ARTIFACTS, _keys, _rows, _run

pytestmark = pytest.mark.spark


def test_raw_columns_and_hive_folders_named_like_the_jobs_are_kept_as_raw_names(pipeline, spark):
    aws = pipeline[0]
    body = (b"order_id,source_file,run_id,event_time\n"
            b"o-1,upstream.csv,batch-7,2026-11-24T10:00:00Z\no-2,upstream.csv,batch-7,2026-11-24T11:00:00Z\n")
    summary = _run(pipeline, spark, {"sales/year=2026/month=11/day=24/a.csv": body})
    assert summary["totals"]["rows_out"] == 2 and summary["returned"] == []
    [row, _] = sorted(_rows(aws, "sales/"), key=lambda r: r["order_id"])
    assert (row["raw_source_file"], row["raw_run_id"]) == ("upstream.csv", "batch-7")
    assert row["source_file"].endswith("sales/year=2026/month=11/day=24/a.csv")
    table = aws.client("glue").get_table(DatabaseName="processed_db", Name="sales")["Table"]
    assert [k["Name"] for k in table["PartitionKeys"]] == [
        "raw_year", "raw_month", "raw_day", "year", "month", "day", "run_id"]


def test_a_reserved_name_that_cannot_be_renamed_fails_its_table_and_the_summary_says_so(pipeline, spark):
    _, ledger, _ = pipeline
    summary = _run(pipeline, spark, {"clash/a.csv": b"order_id,day,raw_day,n\no-1,Mon,x,1\n"})
    [returned] = summary["returned"]
    assert "'raw_day', the name it would be kept under, is a raw column too" in returned["reason"]
    assert summary["totals"]["returned"] == 1 and summary["files"] == []
    from ledger import RunSummary

    assert RunSummary.from_dict(summary).outcome == "returned"
    [item] = [i for i in ledger.table.scan()["Items"] if i.get("key") == "clash/a.csv"]
    assert (item["state"], int(item["attempts"])) == ("PENDING", 1)


@pytest.mark.parametrize(("lookup", "reason"), [
    (b"country,region\nDE,EMEA\nDE,Europe\n", "more than one row for country 'DE'"),
    (b"country,amount\nDE,1\n", "its columns amount have the names of the table's columns"),
    (b"code,region\nDE,EMEA\n", "has no column 'country'"),
])
@pytest.mark.parametrize("checked_by", ["driver", "spark"])
def test_a_lookup_that_would_multiply_or_clash_is_refused(pipeline, spark, lookup, reason, checked_by):
    """The table's own section names the lookup: what it cannot join is refused, the table alone.
    A lookup under the broadcast threshold is checked in the driver, a larger one by Spark (a
    threshold of -1 sends every lookup there): the same refusals either way."""
    aws, _, _ = pipeline
    s3 = aws.client("s3")
    s3.put_object(Bucket=ARTIFACTS, Key="reference/lookup.csv", Body=lookup)
    s3.put_object(Bucket=ARTIFACTS, Key="code/datasets.toml", Body=(
        b'[datasets.orders]\nlookup_uri = "reference/lookup.csv"\nlookup_key = "country"\n'))
    if checked_by == "spark":
        spark.conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
    try:
        summary = _run(pipeline, spark, {"orders/a.csv": b"order_id,country,amount\no-1,DE,2.5\n"},
                       datasets_uri=f"s3://{ARTIFACTS}/code/datasets.toml")
    finally:
        spark.conf.unset("spark.sql.autoBroadcastJoinThreshold")
    [returned] = summary["returned"]
    assert reason in returned["reason"] and summary["totals"]["rows_out"] == 0


def test_a_default_lookup_that_clashes_with_a_table_does_not_apply_to_it(pipeline, spark):
    """The template's LookupUri is every table's default: a table with a column of the lookup's name
    (a raw `region=` folder beside a countries file's `region`) is written without the lookup, as a
    default naming a column the table lacks does not apply. A broken lookup file still fails."""
    aws, _, _ = pipeline
    lookup = b"country,region\nDE,EMEA\n"
    aws.client("s3").put_object(Bucket=ARTIFACTS, Key="reference/lookup.csv", Body=lookup)
    summary = _run(pipeline, spark, {"visits/region=north/a.csv": b"order_id,country,amount\no-1,DE,2.5\n"},
                   lookup_uri=f"s3://{ARTIFACTS}/reference/lookup.csv", lookup_key="country")
    assert summary["returned"] == [] and summary["totals"]["rows_out"] == 1
    [row] = _rows(aws, "visits/")
    assert row["country"] == "DE" and "region" not in row  # no lookup column in the data
    assert all("/region=north/" in k for k in _keys(aws, "visits/"))  # the table's own region stays
