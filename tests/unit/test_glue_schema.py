"""The local crawler's classifiers (sluice.aws.glue_schema): bytes in, classification and Hive
columns out, no AWS. Each rule names the AWS page it follows."""

from __future__ import annotations

import bz2
import gzip
import io
import json
from datetime import date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.aws import glue_schema
from sluice.aws.glue_schema import SAMPLE_BYTES, Unclassified, infer, merge
from sluice_glue import catalog

ORDERS = [("order_id", "string"), ("amount", "double"), ("quantity", "bigint"), ("event_time", "timestamp"),
          ("paid", "boolean"), ("day", "date")]


def _csv(delimiter: str, rows: int = 3) -> bytes:
    lines = [delimiter.join(name for name, _ in ORDERS)]
    lines += [delimiter.join([f"o-{i}", f"{i}.5", str(i), f"2026-11-24T{i:02d}:15:00Z", "true", "2026-11-24"])
              for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


# --- "Built-in classifiers" / "Built-in CSV classifier" (Glue developer guide, add-classifier) ---

@pytest.mark.parametrize("delimiter", [",", ";", "|", "\t", "\x01"])
def test_csv_with_a_header_its_columns_and_delimiter(delimiter):
    found = infer(_csv(delimiter))
    assert (found.kind, found.columns) == ("csv", ORDERS)
    assert found.parameters == {"delimiter": delimiter, "areColumnsQuoted": "false",
                                "skip.header.line.count": "1"}
    assert (found.serde, found.serde_parameters) == (catalog.LAZY_SIMPLE_SERDE, {"field.delim": delimiter})


def test_an_all_text_csv_has_no_header_its_columns_are_col0_and_on():
    # "If all columns are of type STRING, then the first row of data is not sufficiently different
    # from subsequent rows to be used as the header."
    found = infer(b"name,email,city\nann,a@x.org,Oslo\nbob,b@x.org,Rome\n")
    assert found.columns == [("col0", "string"), ("col1", "string"), ("col2", "string")]
    assert "skip.header.line.count" not in found.parameters


def test_a_csv_without_header_is_typed_by_position():
    # AWS DMS writes CSV without a header by default: the first row is data.
    found = infer(b"I,orders,1,2026-11-24 10:00:00,9.5\nU,orders,2,2026-11-24 10:01:00,3\n")
    assert found.columns == [("col0", "string"), ("col1", "string"), ("col2", "bigint"),
                             ("col3", "timestamp"), ("col4", "double")]
    assert not found.has_header


def test_a_header_needs_text_cells_under_150_characters():
    long_name = "x" * 150
    assert not infer(f"{long_name},b\n1,2\n".encode()).has_header
    assert not infer(b"2026,b\n1,2\n").has_header  # a number is not a column name
    assert infer(b"a,b,\n1,2,\n").has_header  # a trailing delimiter: the last column may be empty


def test_csv_delimiter_is_the_one_the_first_line_uses_most():
    found = infer(b"name;note\nann;a,b\nbob;c\n")  # a comma inside a value
    assert found.parameters["delimiter"] == ";"
    assert found.columns == [("col0", "string"), ("col1", "string")]  # all text: no header


def test_quoted_values_are_catalogued_with_opencsvserde():
    found = infer(b'id,note\n1,"a, b"\n2,"c"\n')
    assert found.columns == [("id", "bigint"), ("note", "string")]
    assert found.serde == catalog.OPEN_CSV_SERDE
    assert found.serde_parameters == {"separatorChar": ",", "quoteChar": '"'}
    assert found.parameters["areColumnsQuoted"] == "true"


def test_csv_ragged_rows_do_not_type_the_columns():
    assert infer(b"id,price\n1,2.5\n2\n3,4.0,extra\n").columns == [("id", "bigint"), ("price", "double")]


def test_csv_needs_two_columns_and_two_lines():
    # "To be classified as CSV, the table schema must have at least two columns and two rows of data."
    with pytest.raises(Unclassified):
        infer(b"just one column\nanother line\n")
    with pytest.raises(Unclassified):
        infer(b"a,b\n")


# --- JSON: nested objects and arrays are struct<...> and array<...> ----------------------------

def test_json_lines_with_nested_objects_and_arrays():
    body = b"".join(json.dumps(r).encode() + b"\n" for r in [
        {"OrderId": "a-1", "amount": 2.5, "qty": 1, "paid": True, "at": "2026-11-24T01:00:00Z",
         "customer": {"Id": 7, "tags": ["vip"]}, "items": [{"sku": "x", "n": 1}]},
        {"OrderId": "a-2", "amount": 3, "qty": 2, "paid": False, "at": "2026-11-24T02:00:00Z",
         "customer": {"Id": 8, "tags": [], "since": None}, "items": [{"sku": "y", "n": 2, "note": "gift"}]}])
    found = infer(body)
    assert (found.kind, found.parameters) == ("json", {})
    assert found.columns == [
        ("orderid", "string"), ("amount", "double"), ("qty", "bigint"), ("paid", "boolean"),
        ("at", "timestamp"), ("customer", "struct<Id:bigint,tags:array<string>,since:string>"),
        ("items", "array<struct<sku:string,n:bigint,note:string>>")]


def test_a_cloudtrail_document_is_one_records_column():
    # "Writing JSON custom classifiers": without a JSON path the built-in classifier uses the whole
    # file as one object; CloudTrail writes {"Records": [...]} (CloudTrail log file examples).
    trail = {"Records": [{"eventVersion": "1.08", "eventTime": "2026-11-25T14:00:00Z",
                          "eventName": "GetObject",
                          "userIdentity": {"type": "IAMUser", "accountId": "111122223333"},
                          "requestParameters": {"bucketName": "b"}}]}
    found = infer(gzip.compress(json.dumps(trail).encode()))
    assert (found.kind, found.codec) == ("json", "gzip")
    assert found.columns == [("records", "array<struct<eventVersion:string,eventTime:timestamp,"
                                         "eventName:string,userIdentity:struct<type:string,accountId:string>,"
                                         "requestParameters:struct<bucketName:string>>>")]


def test_a_pretty_printed_json_document_is_json():
    assert infer(json.dumps({"a": 1, "b": {"c": "x"}}, indent=2).encode()).columns == [
        ("a", "bigint"), ("b", "struct<c:string>")]


def test_json_sample_cut_mid_line_drops_the_partial_line():
    line = json.dumps({"order_id": "a-000001", "amount": 2.5}).encode() + b"\n"
    body = line * (SAMPLE_BYTES // len(line) + 2)
    found = infer(body[:SAMPLE_BYTES + 1], whole=False)  # what a ranged GET returns
    assert found.columns == [("order_id", "string"), ("amount", "double")]


# --- Parquet: the schema at the end of the file, nested and decimal types kept ------------------

def test_parquet_types_map_to_hive():
    table = pa.table({
        "id": pa.array([1], pa.int32()), "big": pa.array([1], pa.int64()), "small": pa.array([1], pa.int16()),
        "price": pa.array([1.5], pa.float32()), "name": ["a"], "ok": [True],
        "at": pa.array([datetime(2026, 11, 24, 1)], pa.timestamp("us", tz="UTC")),
        "day": pa.array([date(2026, 11, 24)], pa.date32()),
        "amount": pa.array([1], pa.decimal128(10, 2)),
        "Address": pa.array([{"City": "Oslo", "zip": 150}]),
        "tags": pa.array([["a", "b"]]),
    })
    out = io.BytesIO()
    pq.write_table(table, out)
    found = infer(out.getvalue())
    assert found.kind == "parquet" and found.codec is None
    assert found.columns == [("id", "int"), ("big", "bigint"), ("small", "smallint"), ("price", "float"),
                             ("name", "string"), ("ok", "boolean"), ("at", "timestamp"), ("day", "date"),
                             ("amount", "decimal(10,2)"), ("address", "struct<City:string,zip:bigint>"),
                             ("tags", "array<string>")]


# --- compression by content, whatever the name ---------------------------------------------------

@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_compressed_files_are_read_through_whatever_their_name(compress):
    body = _csv(",")
    found = infer(compress(body))
    assert (found.kind, found.columns) == ("csv", ORDERS)
    assert found.codec == ("gzip" if compress is gzip.compress else "bzip2")


@pytest.mark.parametrize(("magic", "codec"), [(b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4"),
                                              (b"PK\x03\x04", "zip")])
def test_codecs_that_cannot_be_read_here_are_named(magic, codec):
    with pytest.raises(Unclassified, match=codec):
        infer(magic + b"\x00" * 20)


@pytest.mark.parametrize("body", [b"", b"  \n\n", gzip.compress(b"", mtime=0)])
def test_empty_file_is_unreadable(body):
    with pytest.raises(ValueError, match="empty file"):
        infer(body)


@pytest.mark.parametrize("body", [b"id,name\n1,caf\xe9\n", b'{"name": "caf\xe9"}\n'])
def test_invalid_utf8_is_unreadable(body):
    with pytest.raises(UnicodeDecodeError):
        infer(body)


@pytest.mark.parametrize(("a", "b", "merged"), [
    ("bigint", "bigint", "bigint"),
    ("bigint", "double", "double"),
    ("double", "bigint", "double"),
    ("int", "bigint", "bigint"),
    ("bigint", "string", "string"),
    ("timestamp", "date", "string"),
    ("boolean", "bigint", "string"),
    ("date", "date", "date"),
    ("struct<a:int>", "struct<A:string,b:int>", "struct<a:string,b:int>"),
    ("array<int>", "array<double>", "array<double>"),
    ("array<int>", "string", "string"),
])
def test_merge_widens_as_glue_combines_schemas(a, b, merged):
    assert merge(a, b) == merged


class _S3:
    """get_object over a dict of bodies, counting the reads."""

    def __init__(self, bodies: dict[str, bytes]) -> None:
        self.bodies = bodies
        self.reads: list[str] = []

    def get_object(self, Bucket: str, Key: str, Range: str | None = None) -> dict:
        self.reads.append(Key)
        body = self.bodies[Key]
        if Range:
            body = body[:int(Range.removeprefix("bytes=0-")) + 1]
        return {"Body": io.BytesIO(body)}


def test_inferred_reads_an_object_once_per_etag_and_reports_unreadable(monkeypatch):
    monkeypatch.setattr(glue_schema, "_INFERENCE_CACHE", {})
    s3 = _S3({"t/a": b"id,n\n1,2\n", "t/bad.csv": b"id\n\xff\n"})
    assert glue_schema.inferred(s3, "b", "t/a", "e1").columns == [("id", "bigint"), ("n", "bigint")]
    glue_schema.inferred(s3, "b", "t/a", "e1")
    s3.bodies["t/a"] = b"id,n\nx,y\n"
    assert glue_schema.inferred(s3, "b", "t/a", "e2").columns[0] == ("col0", "string")  # changed: no header
    reason = glue_schema.inferred(s3, "b", "t/bad.csv", "e1")
    assert isinstance(reason, str) and reason.startswith("UnicodeDecodeError")
    assert s3.reads == ["t/a", "t/a", "t/bad.csv"]


def test_a_large_parquet_file_is_read_whole_for_its_footer(monkeypatch):
    monkeypatch.setattr(glue_schema, "_INFERENCE_CACHE", {})
    out = io.BytesIO()
    pq.write_table(pa.table({"blob": [b"x" * (SAMPLE_BYTES + 10)]}), out, compression="none")
    s3 = _S3({"t/p": out.getvalue()})
    assert glue_schema.inferred(s3, "b", "t/p", "e1").columns == [("blob", "binary")]
    assert s3.reads == ["t/p", "t/p"]
