"""The local crawler's schema inference (sluice.aws.glue_schema): bytes in, Hive columns out, no AWS."""

from __future__ import annotations

import gzip
import io
import json
from datetime import date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.aws import glue_schema
from sluice.aws.glue_schema import SAMPLE_BYTES, classify, infer, merge

ORDERS = [("order_id", "string"), ("amount", "double"), ("quantity", "bigint"), ("event_time", "timestamp"),
          ("paid", "boolean"), ("day", "date")]


def _csv(delimiter: str, rows: int = 3) -> bytes:
    lines = [delimiter.join(name for name, _ in ORDERS)]
    lines += [delimiter.join([f"o-{i}", f"{i}.5", str(i), f"2026-11-24T{i:02d}:15:00Z", "true", "2026-11-24"])
              for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("delimiter", [",", ";", "|", "\t"])
def test_csv_columns_and_delimiter(delimiter):
    columns, params = infer(_csv(delimiter), "csv", gz=False)
    assert columns == ORDERS
    assert params == {"delimiter": delimiter, "skip.header.line.count": "1", "areColumnsQuoted": "false"}


def test_csv_delimiter_is_the_one_the_header_uses_most():
    columns, params = infer(b"name;note\nann;a,b\n", "csv", gz=False)  # a comma inside a value
    assert params["delimiter"] == ";"
    assert columns == [("name", "string"), ("note", "string")]


def test_csv_ragged_rows_are_skipped_not_fatal():
    columns, _ = infer(b"id,price\n1,2.5\n2\n3,4.0,extra\n", "csv", gz=False)
    assert columns == [("id", "bigint"), ("price", "double")]


def test_json_lines():
    body = b"".join(json.dumps({"order_id": f"a-{i}", "amount": i + 0.5, "quantity": i, "paid": i % 2 == 0,
                                "event_time": f"2026-11-24T0{i}:00:00Z"}).encode() + b"\n" for i in range(3))
    columns, params = infer(body, "json", gz=False)
    assert columns == [("order_id", "string"), ("amount", "double"), ("quantity", "bigint"),
                       ("paid", "boolean"), ("event_time", "timestamp")]
    assert params == {}


def test_json_sample_cut_mid_line_drops_the_partial_line():
    line = json.dumps({"order_id": "a-000001", "amount": 2.5}).encode() + b"\n"
    body = line * (SAMPLE_BYTES // len(line) + 2)
    columns, _ = infer(body[:SAMPLE_BYTES + 1], "json", gz=False)  # what a ranged GET returns
    assert columns == [("order_id", "string"), ("amount", "double")]


def test_parquet_types_map_to_hive():
    table = pa.table({
        "id": pa.array([1], pa.int32()), "big": pa.array([1], pa.int64()),
        "price": pa.array([1.5], pa.float32()), "name": ["a"], "ok": [True],
        "at": pa.array([datetime(2026, 11, 24, 1)], pa.timestamp("us", tz="UTC")),
        "day": pa.array([date(2026, 11, 24)], pa.date32()),
        "amount": pa.array([1], pa.decimal128(10, 2)),
    })
    out = io.BytesIO()
    pq.write_table(table, out)
    columns, params = infer(out.getvalue(), "parquet", gz=False)
    assert columns == [("id", "bigint"), ("big", "bigint"), ("price", "double"), ("name", "string"),
                       ("ok", "boolean"), ("at", "timestamp"), ("day", "date"), ("amount", "double")]
    assert params == {}


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_gzip_is_read_through(kind):
    body = _csv(",") if kind == "csv" else b'{"id": 1, "name": "x"}\n'
    assert infer(gzip.compress(body), kind, gz=True) == infer(body, kind, gz=False)


@pytest.mark.parametrize(("body", "gz"),
                         [(b"", False), (b"  \n\n", False), (gzip.compress(b"", mtime=0), True)])
def test_empty_file_is_unreadable(body, gz):
    with pytest.raises(ValueError, match="empty file"):
        infer(body, "csv", gz=gz)


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_invalid_utf8_is_unreadable(kind):
    with pytest.raises(UnicodeDecodeError):
        infer(b"id,name\n1,caf\xe9\n" if kind == "csv" else b'{"name": "caf\xe9"}\n', kind, gz=False)


@pytest.mark.parametrize(("a", "b", "merged"), [
    ("bigint", "bigint", "bigint"),
    ("bigint", "double", "double"),
    ("double", "bigint", "double"),
    ("bigint", "string", "string"),
    ("timestamp", "date", "string"),
    ("boolean", "bigint", "string"),
    ("date", "date", "date"),
])
def test_merge_widens_as_glue_combines_schemas(a, b, merged):
    assert merge(a, b) == merged


@pytest.mark.parametrize(("key", "expected"), [
    ("orders/a.csv", ("csv", False)),
    ("orders/a.TSV", ("csv", False)),
    ("orders/a.txt.gz", ("csv", True)),
    ("orders/a.jsonl", ("json", False)),
    ("orders/a.ndjson.gz", ("json", True)),
    ("orders/a.json", ("json", False)),
    ("orders/part-0.parquet", ("parquet", False)),
    ("orders/a.xlsx", (None, False)),
    ("orders/a.gz", (None, True)),
])
def test_classify_by_name(key, expected):
    assert classify(key) == expected


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
    s3 = _S3({"t/a.csv": b"id\n1\n", "t/bad.csv": b"id\n\xff\n"})
    assert glue_schema.inferred(s3, "b", "t/a.csv", "e1", "csv", False)[0] == [("id", "bigint")]
    glue_schema.inferred(s3, "b", "t/a.csv", "e1", "csv", False)
    s3.bodies["t/a.csv"] = b"id\nx\n"
    assert glue_schema.inferred(s3, "b", "t/a.csv", "e2", "csv", False)[0] == [("id", "string")]  # changed
    reason = glue_schema.inferred(s3, "b", "t/bad.csv", "e1", "csv", False)
    assert isinstance(reason, str) and reason.startswith("UnicodeDecodeError")
    assert s3.reads == ["t/a.csv", "t/a.csv", "t/bad.csv"]
