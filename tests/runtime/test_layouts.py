"""The layouts people really land in S3, each end to end through the local runtime: put -> crawler
-> job -> processed table. For each, the raw table the local crawler writes is compared with the
one AWS Glue's crawler writes for it (the fixture names the AWS page that decides), and the output
is checked as a user would: every row once, every value kept (no NULL where the input had a
value), and registered so Athena reads it (each written file inside a registered partition whose
columns and types are the file's).

One runtime for the module; every layout's files are put at once, each in its own dataset folder.
docs/etl-job.md's "Layouts" table lists them with what is catalogued and written.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.aws.glue_schema import arrow_hive_type
from sluice.runtime import Runtime
from sluice.stack.publish import DATASETS, DATASETS_KEY, publish_code
from sluice_glue import catalog
from tests.runtime.conftest import ledger_items, processed_keys, put, started_runtime, wait

pytestmark = [pytest.mark.slow, pytest.mark.spark]

ADDED = {"ingested_at", "source_file", "run_id", "year", "month", "day"}
OPENX, HIVE_CSV, OPEN_CSV = catalog.OPENX_JSON_SERDE, catalog.LAZY_SIMPLE_SERDE, catalog.OPEN_CSV_SERDE


@dataclass
class Layout:
    """Files to put, the raw table AWS's crawler writes for them, and the rows the job must write
    (each with its raw partition values, by their processed names)."""

    objects: dict[str, bytes]
    columns: list[tuple[str, str]]
    partition_keys: list[str]
    serde: str
    parameters: dict[str, str]
    rows: list[dict[str, Any]]
    serde_parameters: dict[str, str] = field(default_factory=dict)


def _lines(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


FIREHOSE = [{"eventId": f"e-{i}", "Device": {"Id": f"d-{i % 2}", "Readings": [i, 2.5]},
             "at": f"2026-11-25T14:0{i}:00Z", "tags": ["a", "b"][: i % 3]} for i in range(4)]
TRAIL = {"Records": [
    {"eventVersion": "1.08", "eventTime": "2026-11-25T14:05:00Z", "eventName": "GetObject",
     "userIdentity": {"type": "IAMUser", "accountId": "111122223333"},
     "requestParameters": {"bucketName": "b"}},
    {"eventVersion": "1.08", "eventTime": "2026-11-25T14:06:00Z", "eventName": "PutObject",
     "userIdentity": {"type": "AssumedRole", "accountId": "111122223333"}, "requestParameters": None}]}
LEDGER = pa.table({
    "id": pa.array([1, 2], pa.int32()),
    "amount": pa.array([Decimal("12.34"), Decimal("-0.05")], pa.decimal128(10, 2)),
    "Address": pa.array([{"City": "Oslo", "zip": 150}, {"City": None, "zip": 9}]),
    "tags": pa.array([["x"], []])})
TRAIL_KEY = ("cloudtrail/AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/25/"
             "111122223333_CloudTrail_us-east-1_20261125T1405Z_a1b2.json.gz")
TRAIL_TYPE = ("array<struct<eventVersion:string,eventTime:timestamp,eventName:string,"
              "userIdentity:struct<type:string,accountId:string>,requestParameters:struct<bucketName:string>>>")


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


LAYOUTS: dict[str, Layout] = {
    # Firehose's default delivery: a YYYY/MM/dd/HH prefix ("Configure Amazon S3 object name format"),
    # gzip, no extension on an older or custom-extension stream; non-Hive folders are partition_0..
    # ("Managing partitions for ETL output in AWS Glue"); JSON tables use the OpenX SerDe.
    "firehose": Layout(
        {f"firehose/2026/11/25/{h}/sluice-stream-1-2026-11-25-{h}-05-00-0a1b":
         gzip.compress(_lines(FIREHOSE[h - 14::2])) for h in (14, 15)},
        [("eventid", "string"), ("device", "struct<Id:string,Readings:array<double>>"), ("at", "timestamp"),
         ("tags", "array<string>")],
        ["partition_0", "partition_1", "partition_2", "partition_3"], OPENX,
        {"classification": "json", "compressionType": "gzip", "typeOfData": "file"},
        [{"eventid": r["eventId"],
          "device": {"Id": r["Device"]["Id"], "Readings": [float(x) for x in r["Device"]["Readings"]]},
          "at": r["at"], "tags": r["tags"], "partition_0": "2026", "partition_1": "11", "partition_2": "25",
          "partition_3": str(14 + i % 2)} for i, r in enumerate(FIREHOSE)]),
    # Hive folders named like the output's partitions ("How does a crawler determine when to create
    # partitions?": year, month, day keys), and a raw column named like a column the job adds.
    "sales": Layout(
        {f"sales/year=2026/month=11/day={d}/part-{d}.csv":
             f"order_id,amount,ingested_at\no-{d},{d}.5,2026-11-{d}T08:00:00Z\n".encode() for d in (24, 25)},
        [("order_id", "string"), ("amount", "double"), ("ingested_at", "timestamp")],
        ["year", "month", "day"],
        HIVE_CSV, {"classification": "csv", "compressionType": "none", "typeOfData": "file", "delimiter": ",",
                   "areColumnsQuoted": "false", "skip.header.line.count": "1"},
        [{"order_id": f"o-{d}", "amount": d + 0.5, "raw_ingested_at": f"2026-11-{d}T08:00:00Z",
          "raw_year": "2026", "raw_month": "11", "raw_day": str(d)} for d in (24, 25)], {"field.delim": ","}),
    "events": Layout(
        {"events/dt=2026-11-25/e.jsonl": _lines([{"kind": "click", "n": 1}, {"kind": "view", "n": 2}])},
        [("kind", "string"), ("n", "bigint")], ["dt"], OPENX,
        {"classification": "json", "compressionType": "none", "typeOfData": "file"},
        [{"kind": "click", "n": 1, "dt": "2026-11-25"}, {"kind": "view", "n": 2, "dt": "2026-11-25"}]),
    # Parquet's schema is read from the file, nested and decimal types kept ("Built-in classifiers").
    "ledger": Layout(
        {"ledger/part-0.snappy.parquet": _parquet(LEDGER)},
        [("id", "int"), ("amount", "decimal(10,2)"), ("address", "struct<City:string,zip:bigint>"),
         ("tags", "array<string>")], [], "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        {"classification": "parquet", "compressionType": "none", "typeOfData": "file"},
        [{"id": 1, "amount": Decimal("12.34"), "address": {"City": "Oslo", "zip": 150}, "tags": ["x"]},
         {"id": 2, "amount": Decimal("-0.05"), "address": {"City": None, "zip": 9}, "tags": []}]),
    # An all-text CSV: no header by the built-in CSV classifier's rule, columns col0.. ("Built-in CSV
    # classifier"); the dataset says csv_header = "present", so the files' headers name them.
    "people": Layout(
        {"people/people.csv": b"name,email,city\nAnn,ann@example.org,Oslo\nBob,bob@example.org,Rome\n"},
        [("col0", "string"), ("col1", "string"), ("col2", "string")], [], HIVE_CSV,
        {"classification": "csv", "compressionType": "none", "typeOfData": "file", "delimiter": ",",
         "areColumnsQuoted": "false"},
        [{"name": "Ann", "email": "ann@example.org", "city": "Oslo"},
         {"name": "Bob", "email": "bob@example.org", "city": "Rome"}], {"field.delim": ","}),
    # The same without a setting: read by position, as Athena reads it, the header line kept as a row.
    "contacts": Layout(
        {"contacts/contacts.csv": b"name,email\nAnn,ann@example.org\n"},
        [("col0", "string"), ("col1", "string")], [], HIVE_CSV,
        {"classification": "csv", "compressionType": "none", "typeOfData": "file", "delimiter": ",",
         "areColumnsQuoted": "false"},
        [{"col0": "name", "col1": "email"}, {"col0": "Ann", "col1": "ann@example.org"}],
        {"field.delim": ","}),
    # AWS DMS writes CSV without a header by default: the first row is data.
    "dms": Layout(
        {"dms/LOAD00000001.csv": b"I,1,Ann,2026-11-25 10:00:00\nU,2,Bob,2026-11-25 10:01:00\n"},
        [("col0", "string"), ("col1", "bigint"), ("col2", "string"), ("col3", "timestamp")], [], HIVE_CSV,
        {"classification": "csv", "compressionType": "none", "typeOfData": "file", "delimiter": ",",
         "areColumnsQuoted": "false"},
        [{"col0": "I", "col1": 1, "col2": "Ann", "col3": "2026-11-25T10:00:00Z"},
         {"col0": "U", "col1": 2, "col2": "Bob", "col3": "2026-11-25T10:01:00Z"}], {"field.delim": ","}),
    # Quoted values holding the delimiter and quotes: OpenCSVSerde ("Open CSV SerDe for processing CSV").
    "quoted": Layout(
        {"quoted/q.csv": b'id,"note, free text",amount\n1,"a, b",2.5\n2,"say ""hi""",3\n'},
        [("id", "bigint"), ("note, free text", "string"), ("amount", "double")], [], OPEN_CSV,
        {"classification": "csv", "compressionType": "none", "typeOfData": "file", "delimiter": ",",
         "areColumnsQuoted": "true", "skip.header.line.count": "1"},
        [{"id": 1, "note, free text": "a, b", "amount": 2.5},
         {"id": 2, "note, free text": 'say "hi"', "amount": 3.0}],
        {"separatorChar": ",", "quoteChar": '"'}),
    "semicolon": Layout(
        {"semicolon/s.csv": b"id;city;amount\n1;Oslo;2.5\n2;Rome;3\n"},
        [("id", "bigint"), ("city", "string"), ("amount", "double")], [], HIVE_CSV,
        {"classification": "csv", "compressionType": "none", "typeOfData": "file", "delimiter": ";",
         "areColumnsQuoted": "false", "skip.header.line.count": "1"},
        [{"id": 1, "city": "Oslo", "amount": 2.5}, {"id": 2, "city": "Rome", "amount": 3.0}],
        {"field.delim": ";"}),
    "tabs": Layout(
        {"tabs/t.tsv": b"id\tcity\n1\tOslo\n2\tRome\n"},
        [("id", "bigint"), ("city", "string")], [], HIVE_CSV,
        {"classification": "csv", "compressionType": "none", "typeOfData": "file", "delimiter": "\t",
         "areColumnsQuoted": "false", "skip.header.line.count": "1"},
        [{"id": 1, "city": "Oslo"}, {"id": 2, "city": "Rome"}], {"field.delim": "\t"}),
    # CloudTrail writes one JSON document per file, {"Records": [...]}, gzipped, under
    # AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/ ("CloudTrail log file examples"); without a
    # JSON path the built-in classifier makes the whole document one row ("Writing JSON custom
    # classifiers"): one column records. Processed as one row per file, every record kept.
    "cloudtrail": Layout(
        {TRAIL_KEY: gzip.compress(json.dumps(TRAIL).encode())},
        [("records", TRAIL_TYPE)], [f"partition_{i}" for i in range(7)], OPENX,
        {"classification": "json", "compressionType": "gzip", "typeOfData": "file"},
        [{"records": [{k: r[k] for k in ("eventVersion", "eventTime", "eventName", "userIdentity",
                                         "requestParameters")} for r in TRAIL["Records"]],
          **{f"partition_{i}": v for i, v in enumerate(
              ["AWSLogs", "111122223333", "CloudTrail", "us-east-1", "2026", "11", "25"])}}]),
}
SECTIONS = "\n[datasets.people]\ncsv_header = \"present\"\n"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Iterator[Runtime]:
    with started_runtime(tmp_path_factory.mktemp("sluice-layouts"), MaxAttempts="1") as rt:
        s3, bucket = rt.aws.client("s3"), rt.stack.outputs["ArtifactsBucketName"]
        publish_code(s3, bucket)
        s3.put_object(Bucket=bucket, Key=DATASETS_KEY, Body=(DATASETS.read_text() + SECTIONS).encode())
        yield rt


@pytest.fixture(scope="module")
def settled(runtime) -> dict[str, list[dict]]:
    for layout in LAYOUTS.values():
        for key, body in layout.objects.items():
            put(runtime, key, body)
    return {name: wait(runtime, name, len(layout.objects)) for name, layout in LAYOUTS.items()}


def _table(rt: Runtime, database: str, name: str) -> dict:
    return rt.aws.client("glue").get_table(DatabaseName=rt.stack.outputs[database], Name=name)["Table"]


def _plain(value: Any) -> Any:
    """A value read back from Parquet, in the shape the expectations are written in."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat") and hasattr(value, "hour"):  # Spark writes UTC (the job's session zone)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _written(rt: Runtime, table: str) -> list[dict]:
    """Every row of the processed table's files, with the values of its folders (as Athena reads
    them), without the columns the job adds."""
    s3, bucket = rt.aws.client("s3"), rt.stack.outputs["ProcessedBucketName"]
    rows = []
    for key in processed_keys(rt, table):
        if not key.endswith(".parquet"):
            continue
        folders = dict(unquote(part).split("=", 1) for part in key.split("/")[1:-1])
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        for row in pq.read_table(io.BytesIO(body)).to_pylist():
            rows.append({k: v for k, v in {**row, **folders}.items() if k not in ADDED})
    return rows


def _normalised(row: dict) -> str:
    return json.dumps(_plain(row), sort_keys=True, default=str)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_the_raw_table_is_the_one_awss_crawler_writes(runtime, settled, name):
    layout, table = LAYOUTS[name], _table(runtime, "RawDatabaseName", name)
    descriptor = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == layout.columns
    assert [k["Name"] for k in table["PartitionKeys"]] == layout.partition_keys
    assert descriptor["SerdeInfo"]["SerializationLibrary"] == layout.serde
    assert descriptor["SerdeInfo"].get("Parameters", {}) == layout.serde_parameters
    assert table["Parameters"] == layout.parameters


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_row_once_every_value_kept(runtime, settled, name):
    items = settled[name]
    assert {i["state"] for i in items} == {"DONE"}, [(i["key"], i["state"], i.get("reason")) for i in items]
    assert sum(int(i["rows_bad"]) + int(i["rows_duplicate"]) for i in items) == 0
    expected = sorted(map(_normalised, LAYOUTS[name].rows))
    assert sorted(map(_normalised, _written(runtime, name))) == expected
    assert sum(int(i["rows_out"]) for i in items) == len(expected)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_the_output_is_registered_so_athena_reads_it(runtime, settled, name):
    table = _table(runtime, "ProcessedDatabaseName", name)
    glue, bucket = runtime.aws.client("glue"), runtime.stack.outputs["ProcessedBucketName"]
    pages = glue.get_paginator("get_partitions").paginate(
        DatabaseName=runtime.stack.outputs["ProcessedDatabaseName"], TableName=name)
    partitions = [p for page in pages for p in page["Partitions"]]
    locations = {p["StorageDescriptor"]["Location"].removeprefix(f"s3://{bucket}/") for p in partitions}
    files = [k for k in processed_keys(runtime, name) if k.endswith(".parquet")]
    assert files and {k.rsplit("/", 1)[0] + "/" for k in files} == locations  # each in a registered folder
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    keys = [k["Name"] for k in table["PartitionKeys"]]
    s3 = runtime.aws.client("s3")
    schema = pq.read_schema(io.BytesIO(s3.get_object(Bucket=bucket, Key=files[0])["Body"].read()))
    assert {f.name.lower(): arrow_hive_type(f.type) for f in schema} == columns
    assert keys[-1] == "run_id" and len(set(keys)) == len(keys)
    for partition in partitions:
        assert len(partition["Values"]) == len(keys) and None not in partition["Values"]


def test_a_later_file_that_adds_a_column_widens_both_tables(runtime, settled):
    put(runtime, "growing/v1.csv", b"id,amount\n1,2.5\n")
    wait(runtime, "growing", 1)
    put(runtime, "growing/v2.csv", b"id,amount,coupon\n2,3.5,WELCOME\n")
    items = wait(runtime, "growing", 2)
    assert {i["state"] for i in items} == {"DONE"}, [i.get("reason") for i in items]
    raw = _table(runtime, "RawDatabaseName", "growing")["StorageDescriptor"]["Columns"]
    processed = _table(runtime, "ProcessedDatabaseName", "growing")["StorageDescriptor"]["Columns"]
    assert [c["Name"] for c in raw] == ["id", "amount", "coupon"]
    assert [c["Name"] for c in processed if c["Name"] not in ADDED] == ["id", "amount", "coupon"]
    assert sorted(map(_normalised, _written(runtime, "growing"))) == sorted(map(_normalised, [
        {"id": 1, "amount": 2.5}, {"id": 2, "amount": 3.5, "coupon": "WELCOME"}]))
    assert all(i["state"] == "DONE" for i in ledger_items(runtime, "growing"))
