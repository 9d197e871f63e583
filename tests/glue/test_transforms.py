"""The job's transforms on small explicit DataFrames (chispa for equality)."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from sluice_glue import raw_files, transforms

pytestmark = pytest.mark.spark

COLUMNS = [("order_id", "string"), ("amount", "double"), ("event_time", "timestamp")]


def _raw(spark, rows):
    return spark.createDataFrame(rows, transforms.raw_schema(COLUMNS)).withColumn("_file", F.lit(0))


def test_typed_gives_each_bad_row_its_reason(spark):
    raw = _raw(spark, [
        ("o-1", "1.50", "2026-11-24T10:00:00Z", None),
        ("o-2", "abc", "2026-11-24T10:00:00Z", None),
        ("o-3", "2.00", "yesterday", None),
        (None, "2.00", "2026-11-24T10:00:00Z", None),
        ("o-5", None, None, "o-5,ragged"),
    ])
    out = transforms.typed(raw, COLUMNS, "event_time", ["event_time", "order_id"])
    reasons = [r["_bad_reason"] for r in out.orderBy(F.col("order_id").asc_nulls_last()).collect()]
    assert reasons == [None, "not a double in amount: abc", "bad timestamp in event_time: yesterday",
                       "malformed record", "missing value for order_id"]
    assert dict(out.dtypes)["amount"] == "double" and dict(out.dtypes)["event_time"] == "timestamp"


def test_quarantine_records_keep_what_the_file_said(spark):
    raw = _raw(spark, [("o-1", "1.50", "2026-11-24T10:00:00Z", None),
                       ("o-2", "abc", "2026-11-24T10:00:00Z", None),
                       ("o-5", None, None, "o-5,ragged")])
    typed = transforms.typed(raw, COLUMNS, "event_time", ["event_time", "order_id"])
    out = transforms.quarantine_records(typed.filter(F.col("_bad_reason").isNotNull()), "run-1",
                                        {0: "s3://raw/orders/a.csv"})
    records = {r["reason"]: (r["record"], r["source_file"]) for r in out.collect()}
    assert records == {
        "not a double in amount: abc": (
            '{"order_id":"o-2","amount":"abc","event_time":"2026-11-24T10:00:00Z"}', "s3://raw/orders/a.csv"),
        "malformed record": ("o-5,ragged", "s3://raw/orders/a.csv")}


def test_timestamps_with_and_without_a_zone_are_read_as_spark_reads_them(spark):
    values = ["2026-11-24T10:00:00Z", "2026-11-24T10:00:00.250Z", "2026-11-24T11:00:00+01:00",
              "2026-11-24 10:00:00", "2026-11-24Z", "Z", "not a time", None, "2026-11-24T10Z",
              "2026-11-24T10:00Z", "T10:00:00Z", "10:00:00Z", "2026-11-24T10:00:00+00:00Z",
              " 2026-11-24T10:00:00Z ",
              "2026-11-24T10:00:00z", "2026-11-24T25:00:00Z", "2026-11-24T10:00:00UTC", ":Z"]
    df = spark.createDataFrame([(v,) for v in values], "t string")
    ours = [r[0] for r in df.select(transforms.parse_timestamp(F.col("t"))).collect()]
    sparks = [r[0] for r in df.select(F.col("t").cast("timestamp")).collect()]
    assert ours == sparks
    assert ours[0] == ours[2] == ours[3] and ours[5] is None and ours[6] is None
    fast = [r[0] for r in df.select(transforms.ends_in_utc_time(F.col("t"))).collect()]
    assert [v for v, f in zip(values, fast, strict=True) if f] == [
        "2026-11-24T10:00:00Z", "T10:00:00Z", "10:00:00Z", "2026-11-24T25:00:00Z"]


def test_missing_required_column_is_a_reason(spark):
    raw = _raw(spark, [("o-1", "1.0", "2026-11-24T10:00:00Z", None)])
    out = transforms.typed(raw, COLUMNS, "event_time", ["customer_id"])
    assert out.first()["_bad_reason"] == "missing required column customer_id"


def test_duplicates_keep_the_first_file_and_never_a_bad_row(spark):
    df = spark.createDataFrame(
        [("o-1", 0, None), ("o-1", 1, None), ("o-1", 2, "bad"), ("o-2", 1, None)],
        "order_id string, _file int, _bad_reason string")
    out = transforms.flag_duplicates(df, ("order_id",)).select("order_id", "_file", "_duplicate")
    expected = spark.createDataFrame(
        [("o-1", 0, False), ("o-1", 1, True), ("o-1", 2, False), ("o-2", 1, False)],
        "order_id string, _file int, _duplicate boolean")
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_duplicates_are_scoped_to_the_output_partition(spark):
    df = spark.createDataFrame(
        [("o-1", "24", 0, None), ("o-1", "24", 1, None), ("o-1", "25", 2, None)],
        "order_id string, day string, _file int, _bad_reason string")
    out = transforms.flag_duplicates(df, ("order_id",), within=["day"])
    assert sorted((r["_file"], r["_duplicate"]) for r in out.collect()) == [(0, False), (1, True), (2, False)]


@pytest.mark.parametrize(("granularity", "parts"), [
    (["year"], {"year": "2026"}),
    (["year", "month", "day"], {"year": "2026", "month": "03", "day": "04"}),
    (["year", "month", "day", "hour"], {"year": "2026", "month": "03", "day": "04", "hour": "07"}),
    ([], {}),
])
def test_output_partition_is_zero_padded_date_parts_and_the_run(spark, granularity, parts):
    df = spark.createDataFrame([("o-1",)], "order_id string").withColumn(
        "event_time", F.to_timestamp(F.lit("2026-03-04T07:30:00Z")))
    out = transforms.with_output_partition(df, "run-1", "event_time", granularity).first().asDict()
    assert {k: out[k] for k in ("year", "month", "day", "hour") if k in out} == parts
    assert out["run_id"] == "run-1"


def test_a_row_without_timestamp_has_no_date_parts(spark):
    df = spark.createDataFrame([("o-1", None)], "order_id string, event_time timestamp")
    out = transforms.with_output_partition(df, "run-1", "event_time", ["year", "month"]).first()
    assert (out["year"], out["month"]) == (None, None)


def test_enrichment_adds_ingest_time_source_and_lookup(spark):
    df = spark.createDataFrame([("o-1", "DE", 0), ("o-2", "XX", 0)],
                               "order_id string, country string, _file int")
    lookup = spark.createDataFrame([("DE", "EMEA")], "country string, region string")
    out = transforms.enriched(df, {0: "s3://raw/orders/a.csv"}, lookup, "country")
    rows = {r["order_id"]: r for r in out.collect()}
    assert (rows["o-1"]["source_file"], rows["o-1"]["region"]) == ("s3://raw/orders/a.csv", "EMEA")
    assert rows["o-2"]["region"] is None  # unmatched lookup keeps the row
    assert rows["o-1"]["ingested_at"] is not None


def test_each_row_knows_its_file_and_each_files_values(spark, tmp_path):
    paths = []
    for n in range(3):
        (tmp_path / f"f{n}.csv").write_text(f"order_id\no-{n}\n")
        paths.append(str(tmp_path / f"f{n}.csv"))
    layout = raw_files.RawLayout("csv", (("order_id", "string"),), header=True)
    routes = [raw_files.FileRoute(n, p, "spark") for n, p in enumerate(paths)]
    known = {f"file://{p}": n for n, p in enumerate(paths[:2])}  # the third file is not in the map
    raw = raw_files.read(spark, layout, [("order_id", "string")], routes, {n: ["order_id"] for n in range(3)},
                         lambda df: transforms.with_file_index(df, known))
    out = transforms.with_partition_values(raw, ["region"], {0: {"region": "eu"}, 1: {}})
    rows = {r["order_id"]: (r["_file"], r["region"]) for r in out.collect()}
    assert rows == {"o-0": (0, "eu"), "o-1": (1, None), "o-2": (None, None)}  # no row is dropped
