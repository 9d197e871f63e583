"""Per-dataset settings: datasets.toml validated on load, resolved per table against its columns
and the template's defaults, and published with the job's code."""

from __future__ import annotations

import pytest

from sluice import ROOT
from sluice.stack.publish import DATASETS_KEY, publish_code
from sluice_glue.datasets import (
    FIELDS,
    DatasetFile,
    DatasetSettings,
    SettingsError,
    defaults_from,
    fetch,
    load,
    resolve,
)

ORDERS = ["order_id", "customer_id", "country", "amount", "currency", "event_time"]
SENSORS = ["device", "reading", "unit", "at"]
CLICKS = ["user_id", "url", "duration_ms"]
# samconfig's [local] parameters, as the job receives them
LOCAL = defaults_from({"--timestamp_column": "event_time", "--dedup_keys": "order_id",
                       "--lookup_uri": "s3://artifacts/reference/countries.csv", "--lookup_key": "country",
                       "--partition_granularity": "day", "--output_format": "parquet",
                       "--compression": "snappy"})


# a section of datasets.toml -> the error (after "datasets.toml: [datasets.<its table>]: ")
BAD_SECTIONS = [
    ("orders", "timestamp = 'event_time'", "unknown field 'timestamp'"),
    ("orders", "dedup_keys = 'order_id'", "dedup_keys must be a list"),
    ("orders", "dedup_keys = ['order_id', '']", "dedup_keys must be a list"),
    ("orders", "timestamp_column = 3", "timestamp_column must be a string, not int"),
    ("orders", "output_format = true", "output_format must be a string, not bool"),
    ("s", "partition_granularity = 'week'", "partition_granularity 'week' is not one of none, year"),
    ("s", "output_format = 'csv'", "output_format 'csv' is not one of parquet, json"),
    ("s", "compression = 'lzo'", "compression 'lzo' is not one of"),
    ("s", "output_format = 'json'\ncompression = 'zstd'", "compression 'zstd' is not one of"),
    ("s", "output_format = 'parquet'\ncompression = 'bzip2'", "compression 'bzip2' is not one of"),
    ("s", "lookup_uri = 'reference/c.csv'", "lookup_uri and lookup_key go together"),
    ("s", "lookup_uri = ''\nlookup_key = 'country'", "lookup_uri and lookup_key go together"),
    ("s", "lookup_uri = 'https://x/c.csv'\nlookup_key = 'c'", "lookup_uri must be s3://bucket/key"),
    ("Orders-API", "", "not a table name: the crawler names a folder's table in lowercase with other "
                       "characters as _ (here: 'orders_api')"),
]


@pytest.mark.parametrize(("table", "section", "message"), BAD_SECTIONS)
def test_a_bad_section_is_refused_on_load_naming_the_dataset_and_the_field(table, section, message):
    with pytest.raises(SettingsError) as error:
        load(f"[datasets.{table}]\n{section}\n", source="datasets.toml")
    assert str(error.value).startswith(f"datasets.toml: [datasets.{table}]: {message}")


@pytest.mark.parametrize(("text", "message"), [
    ("[datasets]\norders = 1\n", "[datasets.orders]: must be a section of fields, not int"),
    ("[orders]\ntimestamp_column = 'x'\n", "unknown top-level key 'orders'"),
    ("datasets = 'orders'\n", "'datasets' must be a table of [datasets.<table>] sections"),
    ("[datasets.orders\n", "not valid TOML"),
])
def test_a_bad_file_is_refused_on_load(text, message):
    with pytest.raises(SettingsError, match=r"^datasets.toml: ") as error:
        load(text, source="datasets.toml")
    assert message in str(error.value)


def test_csv_header_says_whether_csv_files_start_with_a_header():
    from sluice_glue.datasets import csv_header

    file = load("[datasets.people]\ncsv_header = 'present'\n")
    assert (csv_header(file, "people"), csv_header(file, "orders")) == ("present", "auto")
    with pytest.raises(SettingsError, match="csv_header 'yes' is not one of auto, present, absent"):
        load("[datasets.people]\ncsv_header = 'yes'\n")


def test_json_output_takes_only_codecs_athena_reads():
    # "Use compression in Athena": DEFLATE "is relevant only for the Avro file format".
    with pytest.raises(SettingsError, match="compression 'deflate' is not one of"):
        load("[datasets.api]\noutput_format = 'json'\ncompression = 'deflate'\n")


def test_every_field_is_accepted_with_its_type():
    file = load("[datasets.sensors]\ntimestamp_column = 'at'\npartition_granularity = 'hour'\n"
                "dedup_keys = ['device', 'at']\nlookup_uri = 's3://ref/devices.parquet'\n"
                "lookup_key = 'device'\noutput_format = 'json'\ncompression = 'gzip'\n"
                "csv_header = 'present'\n")
    assert set(file.explicit("sensors")) == set(FIELDS)
    assert file.explicit("clicks") == {}


# table, its columns, its section in datasets.toml -> effective settings, fields from the defaults
RESOLVED = [
    ("orders", ORDERS, "", LOCAL, list(FIELDS)),  # no section: today's behaviour, all defaults
    ("clicks", CLICKS, "",  # the defaults name columns clicks lacks: ingest time, no dedup, no lookup
     DatasetSettings(None, "day", (), "", "", "parquet", "snappy"), list(FIELDS)),
    ("sensors", SENSORS, "timestamp_column = 'at'\npartition_granularity = 'hour'\n",
     DatasetSettings("at", "hour", (), "", "", "parquet", "snappy"),
     ["dedup_keys", "lookup_uri", "lookup_key", "output_format", "compression", "csv_header"]),
    ("orders", ORDERS, "timestamp_column = ''\ndedup_keys = []\n",  # explicitly off
     DatasetSettings(None, "day", (), LOCAL.lookup_uri, "country", "parquet", "snappy"),
     ["partition_granularity", "lookup_uri", "lookup_key", "output_format", "compression", "csv_header"]),
    ("orders", ORDERS, "lookup_uri = ''\nlookup_key = ''\n",
     DatasetSettings("event_time", "day", ("order_id",), "", "", "parquet", "snappy"),
     ["timestamp_column", "partition_granularity", "dedup_keys", "output_format", "compression",
      "csv_header"]),
    ("orders", ORDERS, "lookup_uri = 'reference/countries.csv'\nlookup_key = 'country'\n",  # artifacts key
     DatasetSettings("event_time", "day", ("order_id",), "s3://art/reference/countries.csv", "country",
                     "parquet", "snappy"),
     ["timestamp_column", "partition_granularity", "dedup_keys", "output_format", "compression",
      "csv_header"]),
    ("sensors", SENSORS, "timestamp_column = 'AT'\ndedup_keys = ['Device', 'at']\n",  # Glue ignores case
     DatasetSettings("at", "day", ("device", "at"), "", "", "parquet", "snappy"),
     ["partition_granularity", "lookup_uri", "lookup_key", "output_format", "compression", "csv_header"]),
    ("sensors", SENSORS, "output_format = 'json'\n",  # the default codec fits JSON too: kept
     DatasetSettings(None, "day", (), "", "", "json", "snappy"), [f for f in FIELDS if f != "output_format"]),
]


@pytest.mark.parametrize(("table", "columns", "section", "expected", "defaults"), RESOLVED)
def test_resolve_applies_the_section_over_the_defaults_that_fit_the_table(table, columns, section, expected,
                                                                         defaults):
    file = load(f"[datasets.{table}]\n{section}" if section else "")
    assert resolve(file, table, columns, LOCAL, artifacts_bucket="art") == (expected, defaults)


def test_a_default_codec_that_does_not_fit_the_format_falls_back_to_the_formats_own():
    zstd = DatasetSettings(compression="zstd")  # valid for Parquet, not a Spark 3.5 JSON codec
    settings, _ = resolve(load("[datasets.s]\noutput_format = 'json'\n"), "s", SENSORS, zstd)
    assert settings.compression == "none"


@pytest.mark.parametrize(("section", "message"), [
    ("timestamp_column = 'event_time'", "timestamp_column names column 'event_time'"),
    ("dedup_keys = ['device', 'serial']", "dedup_keys names column 'serial'"),
    ("lookup_uri = 's3://ref/units.csv'\nlookup_key = 'unit_code'", "lookup_key names column 'unit_code'"),
    ("output_format = 'json'\ncompression = 'zstd'", None),  # refused on load already
    ("compression = 'bzip2'", "compression 'bzip2' does not fit output_format 'parquet'"),
    ("lookup_uri = 'reference/units.csv'\nlookup_key = 'unit'", "is a key in the artifacts bucket"),
])
def test_a_setting_the_table_cannot_take_is_an_error_naming_dataset_field_and_columns(section, message):
    if message is None:
        with pytest.raises(SettingsError):
            load(f"[datasets.sensors]\n{section}\n")
        return
    file = load(f"[datasets.sensors]\n{section}\n")
    with pytest.raises(SettingsError) as error:
        resolve(file, "sensors", SENSORS, LOCAL)
    assert str(error.value).startswith("datasets.toml: [datasets.sensors]: ")
    assert message in str(error.value)
    if "names column" in message:
        assert "(its columns: device, reading, unit, at)" in str(error.value)


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"--timestamp_column": "", "--dedup_keys": " a , b,"}, DatasetSettings(None, dedup_keys=("a", "b"))),
    ({"timestamp_column": "ts", "dedup_keys": ("k",), "partition_granularity": "hour", "run_id": "r"},
     DatasetSettings("ts", "hour", ("k",))),  # a JobArguments as a dict: other fields ignored
    ({}, DatasetSettings()),
])
def test_defaults_come_from_the_jobs_arguments(arguments, expected):
    assert defaults_from(arguments) == expected


def test_the_checked_in_file_keeps_the_orders_samples_as_they_were():
    file = load((ROOT / "datasets.toml").read_text())
    for table in ("orders", "orders_api"):
        settings, _ = resolve(file, table, ORDERS, LOCAL, artifacts_bucket="artifacts")
        assert settings == LOCAL  # samconfig [local]: event_time, dedup order_id, the countries lookup
    sensors, _ = resolve(file, "sensors", SENSORS, LOCAL, artifacts_bucket="artifacts")
    assert (sensors.timestamp_column, sensors.output_format, sensors.lookup_uri) == ("at", "json", "")
    assert resolve(file, "clicks", CLICKS, LOCAL) == (
        DatasetSettings(None, "day", (), "", "", "parquet", "snappy"), list(FIELDS))


def test_published_with_the_code_and_fetched_by_the_job(aws):
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="artifacts")
    uri = f"s3://artifacts/{DATASETS_KEY}"
    assert fetch(s3, uri).datasets == {}  # nothing published yet: the template's defaults only
    written = publish_code(s3, "artifacts")
    assert {uri, "s3://artifacts/code/etl_job.py", "s3://artifacts/code/sluice_glue.zip",
            "s3://artifacts/reference/countries.csv"} <= set(written)
    assert fetch(s3, uri) == DatasetFile(load((ROOT / "datasets.toml").read_text()).datasets, uri)
    s3.put_object(Bucket="artifacts", Key=DATASETS_KEY, Body=b"[datasets.x]\nformat = 'json'\n")
    with pytest.raises(SettingsError, match=r"^s3://artifacts/code/datasets.toml: \[datasets.x\]: unknown"):
        fetch(s3, uri)
