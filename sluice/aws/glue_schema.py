"""Glue's schema inference, for the local crawler: what a classifier makes of one file's sample.

CSV (delimiter sniffed among , ; | and tab), JSON lines and Parquet, gzip or not, read with pyarrow
from the first MiB as Glue samples; types are widened the way Glue's CombineCompatibleSchemas
does across a table's files.

    >>> infer(b"id,price\\n1,2.5\\n", "csv", gz=False)[0]
    [('id', 'bigint'), ('price', 'double')]
"""

from __future__ import annotations

import gzip
import io
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as papq

SAMPLE_BYTES = 1 << 20  # infer from the first MiB of each file, as Glue samples


def classify(key: str) -> tuple[str | None, bool]:
    """(classification, gzip) from the object's name."""
    name = key.lower()
    gz = name.endswith(".gz")
    name = name.removesuffix(".gz")
    for suffix, kind in ((".csv", "csv"), (".tsv", "csv"), (".txt", "csv"), (".jsonl", "json"),
                         (".json", "json"), (".ndjson", "json"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return kind, gz
    return None, gz


def _hive_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "bigint"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "double"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_date(arrow_type):
        return "date"
    return "string"


def merge(a: str, b: str) -> str:
    """CombineCompatibleSchemas: equal stays, bigint+double widens, anything else is string."""
    if a == b:
        return a
    if {a, b} == {"bigint", "double"}:
        return "double"
    return "string"


def infer(body: bytes, kind: str, gz: bool) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Columns [(name, hive type)] and table parameters for one file's sample."""
    if kind == "parquet":
        schema = papq.read_schema(io.BytesIO(body))
        return [(f.name, _hive_type(f.type)) for f in schema], {}
    data = gzip.GzipFile(fileobj=io.BytesIO(body)).read(SAMPLE_BYTES) if gz else body[:SAMPLE_BYTES]
    if not data.strip():
        raise ValueError("empty file")
    data.decode("utf-8")  # invalid UTF-8 is unreadable, not a schema
    if kind == "json":
        lines = data.splitlines()
        sample = b"\n".join(lines[:-1] if len(lines) > 1 and len(data) >= SAMPLE_BYTES else lines)
        table = pajson.read_json(io.BytesIO(sample))
        return [(f.name, _hive_type(f.type)) for f in table.schema], {}
    header = data.split(b"\n", 1)[0].decode()
    delimiter = max([",", ";", "|", "\t"], key=header.count)
    lines = data.splitlines()
    sample = b"\n".join(lines[:-1] if len(data) >= SAMPLE_BYTES else lines)
    options = pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=lambda row: "skip")  # ragged rows
    table = pacsv.read_csv(io.BytesIO(sample), parse_options=options)
    params = {"delimiter": delimiter, "skip.header.line.count": "1", "areColumnsQuoted": "false"}
    return [(f.name, _hive_type(f.type)) for f in table.schema], params


# (bucket, key, ETag) -> what infer() said about those bytes. The same bytes give the same answer,
# so a crawl re-reads only new or changed objects: CRAWL_EVERYTHING's result at the cost of the new
# files (a 10,000-file burst otherwise makes every crawl read every file again).
_INFERENCE_CACHE: dict[tuple[str, str, str], tuple[list[tuple[str, str]], dict[str, str]] | str] = {}


def inferred(s3: Any, bucket: str, key: str, etag: str, kind: str,
              gz: bool) -> tuple[list[tuple[str, str]], dict[str, str]] | str:
    """infer() for one object, or the reason it is unreadable; cached by ETag."""
    if (bucket, key, etag) not in _INFERENCE_CACHE:
        try:
            ranged = {} if kind == "parquet" else {"Range": f"bytes=0-{SAMPLE_BYTES}"}
            body = s3.get_object(Bucket=bucket, Key=key, **ranged)["Body"].read()
            _INFERENCE_CACHE[(bucket, key, etag)] = infer(body, kind, gz)
        except Exception as error:
            _INFERENCE_CACHE[(bucket, key, etag)] = f"{type(error).__name__}: {error}"
    return _INFERENCE_CACHE[(bucket, key, etag)]
