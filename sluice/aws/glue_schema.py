"""Glue's classifiers, for the local crawler: what the crawler makes of one file's first MiB.

Each rule follows a documented one, named where it applies; where AWS documents nothing the choice
is said. By content, never by name ("Built-in classifiers", Glue developer guide):

- compression by magic bytes: gzip and bzip2 are read through; the other codecs Glue can classify
  (zip, lz4, snappy, zstd) are named and reported unreadable here;
- Parquet by its magic ("Reads the schema at the end of the file"), nested types and decimals
  kept (`struct<...>`, `array<...>`, `map<...>`, `decimal(p,s)`);
- JSON before CSV, as Glue tries the built-in classifiers in that order: one record per line or
  one document (a CloudTrail file's `{"Records": [...]}` is one column `records array<...>`);
  nested objects and arrays typed as `struct<...>` / `array<...>`;
- CSV: delimiters , | tab ; and Ctrl-A; at least two columns and two lines; the header rule of
  "Built-in CSV classifier": the first row is a header only when every cell of it is text, each
  (but a trailing empty one) under 150 characters, and some column below it parses as other than
  STRING. Otherwise the columns are col0, col1, ... and no `skip.header.line.count` is set.
  Quoted values give OpenCSVSerde with separatorChar and quoteChar, unquoted LazySimpleSerDe with
  field.delim.

Column names are stored in lowercase, as the Data Catalog stores them; scalar types are ours
(AWS does not document Glue's): whole numbers bigint, fractions double, true/false boolean,
ISO dates and times date and timestamp, anything else string; a column's types over rows and
files widen by sluice_glue.hive_types.widen.

    >>> infer(b"id,price\\n1,2.5\\n").columns
    [('id', 'bigint'), ('price', 'double')]
    >>> infer(b"name,email\\nann,a@x.org\\n").columns
    [('col0', 'string'), ('col1', 'string')]
"""

from __future__ import annotations

import bz2
import csv
import io
import json
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as papq

from sluice_glue import catalog, hive_types

SAMPLE_BYTES = 1 << 20  # infer from the first MiB of each file, as Glue samples
# Magic bytes of the codecs Glue names among "Files in the following compressed formats can be
# classified" (and zstd); only gzip and bzip2 can be read through here and by the job.
CODEC_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\x28\xb5\x2f\xfd": "zstd", b"\x04\x22\x4d\x18": "lz4",
               b"\xff\x06\x00\x00sNaPpY": "snappy", b"PK\x03\x04": "zip"}
READABLE_CODECS = ("gzip", "bzip2")
DELIMITERS = (",", "|", "\t", ";", "\x01")
HEADER_CELL_LIMIT = 150
# A column name must match the catalog's "Single-line string pattern" (Glue API reference).
NAME = re.compile("[\u0020-\ud7ff\ue000-\ufffd\t]+")
_INTEGER = re.compile(r"[+-]?\d+")
_FRACTION = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?")


class Unclassified(ValueError):
    """No built-in classifier recognises the file (Glue: classification UNKNOWN)."""


@dataclass
class FileSchema:
    """What the classifier said about one file: its classification and compression, its columns
    [(name, hive type)], and what the table records for it (Parameters, SerDe)."""

    kind: str
    codec: str | None
    columns: list[tuple[str, str]]
    parameters: dict[str, str] = field(default_factory=dict)
    serde: str | None = None
    serde_parameters: dict[str, str] = field(default_factory=dict)

    @property
    def has_header(self) -> bool:
        return self.parameters.get("skip.header.line.count") == "1"


def compression(head: bytes) -> str | None:
    """The codec a file is compressed with, by its magic bytes (None: not compressed)."""
    return next((codec for magic, codec in CODEC_MAGIC.items() if head.startswith(magic)), None)


def _decompressed(body: bytes, codec: str) -> tuple[bytes, bool]:
    """Up to SAMPLE_BYTES of the decompressed stream, and whether that is all of it."""
    if codec not in READABLE_CODECS:
        raise Unclassified(f"{codec}-compressed: only gzip and bzip2 can be read here")
    inflate: Any = zlib.decompressobj(16 + zlib.MAX_WBITS) if codec == "gzip" else bz2.BZ2Decompressor()
    try:
        data = inflate.decompress(body, SAMPLE_BYTES + 1)
    except (zlib.error, OSError) as error:
        raise ValueError(f"corrupt {codec} stream ({error})") from error
    return data[:SAMPLE_BYTES], len(data) <= SAMPLE_BYTES and inflate.eof


def infer(body: bytes, whole: bool = True) -> FileSchema:
    """The classification and schema of a file from its first bytes (`whole`: they are all of it)."""
    if body.startswith(b"PAR1"):
        schema = papq.read_schema(io.BytesIO(body))
        return FileSchema("parquet", None, [(f.name.lower(), arrow_hive_type(f.type)) for f in schema])
    codec = compression(body)
    if codec:
        data, complete = _decompressed(body, codec)
    else:
        data, complete = body[:SAMPLE_BYTES], whole and len(body) <= SAMPLE_BYTES
    if not data.strip():
        raise ValueError("empty file")
    if not complete:  # a sample cut mid-line: the partial last line is not a record
        data = data[:data.rfind(b"\n") + 1] or data
    text = data.decode("utf-8")  # invalid UTF-8 is unreadable, not a schema
    json_columns = _json_columns(text, complete)
    if json_columns is not None:
        return FileSchema("json", codec, json_columns)
    return _csv_schema(text, codec)


# --- JSON -------------------------------------------------------------------------------------

def _json_columns(text: str, complete: bool) -> list[tuple[str, str]] | None:
    """Columns of JSON records (one per line, or one document), or None if the text is not JSON."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError:
        if not complete:
            return None
        try:
            records = [json.loads(text)]  # one document over several lines
        except json.JSONDecodeError:
            return None
    if not all(isinstance(r, dict) for r in records):
        raise Unclassified("JSON whose records are not objects: the built-in classifier makes the whole "
                           "array one column; a custom JSON classifier ($[*]) is needed for its records")
    columns: dict[str, Any] = {}
    for record in records:
        for key, value in record.items():
            name = key.lower()
            columns[name] = _widen_json(columns.get(name), _json_type(value))
    return [(name, hive_types.render(_resolved(t))) for name, t in columns.items()]


def _json_type(value: Any) -> Any:
    """A JSON value's type as a hive_types tree; None for null (unknown until another value says)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint" if -(1 << 63) <= value < (1 << 63) else "string"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "timestamp" if _TIMESTAMP.fullmatch(value) else "string"
    if isinstance(value, list):
        element = None
        for item in value:
            element = _widen_json(element, _json_type(item))
        return ("array", element)
    fields: dict[str, tuple[str, Any]] = {}
    for key, item in value.items():
        kept = fields.get(key.lower())
        name, known = kept if kept else (key, None)
        fields[key.lower()] = (name, _widen_json(known, _json_type(item)))
    return ("struct", tuple(fields.values()))


def _widen_json(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "array":
        return ("array", _widen_json(a[1], b[1]))
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "struct":
        fields = {name.lower(): (name, t) for name, t in a[1]}
        for name, t in b[1]:
            kept = fields.get(name.lower())
            fields[name.lower()] = (kept[0], _widen_json(kept[1], t)) if kept else (name, t)
        return ("struct", tuple(fields.values()))
    rendered = hive_types.render(_resolved(a)), hive_types.render(_resolved(b))
    return hive_types.parse(hive_types.widen(*rendered))


def _resolved(t: Any) -> Any:
    """Unknown types (only nulls seen) as string, at every level."""
    if t is None:
        return "string"
    if isinstance(t, tuple) and t[0] == "array":
        return ("array", _resolved(t[1]))
    if isinstance(t, tuple) and t[0] == "struct":
        return ("struct", tuple((name, _resolved(ft)) for name, ft in t[1]))
    return t


# --- CSV ----------------------------------------------------------------------------------------

def cell_type(cell: str) -> str | None:
    """The type one CSV cell parses as (None: empty, fits any)."""
    cell = cell.strip()
    if not cell:
        return None
    if _INTEGER.fullmatch(cell):
        return "bigint" if -(1 << 63) <= int(cell) < (1 << 63) else "string"
    if _FRACTION.fullmatch(cell):
        return "double"
    if cell.lower() in ("true", "false"):
        return "boolean"
    if _DATE.fullmatch(cell):
        return "date"
    if _TIMESTAMP.fullmatch(cell):
        return "timestamp"
    return "string"


def _column_types(rows: list[list[str]], width: int) -> list[str | None]:
    types: list[str | None] = [None] * width
    for row in rows:
        if len(row) != width:
            continue  # a ragged row does not type the columns (the job quarantines it)
        for i, cell in enumerate(row):
            found, known = cell_type(cell), types[i]
            if found is not None:
                types[i] = found if known is None else hive_types.widen(known, found)
    return types


def _is_header(names: list[str], data_types: list[str | None]) -> bool:
    """The built-in CSV classifier's header rule ("Built-in CSV classifier"): every cell of the
    first row parses as STRING, each is a valid column name under 150 characters (the last one
    may be empty: a trailing delimiter), and the rows below differ from it: some column parses as
    other than STRING. Duplicate names are not a header here (AWS does not say; a header that
    names two columns alike cannot be read by name, while col0... keep every value)."""
    body, last = names[:-1], names[-1]
    return (all(n and cell_type(n) == "string" and NAME.fullmatch(n) and len(n) < HEADER_CELL_LIMIT
                for n in body)
            and (not last or (cell_type(last) == "string" and len(last) < HEADER_CELL_LIMIT))
            and len(set(names)) == len(names)
            and any(t not in (None, "string") for t in data_types))


def _csv_schema(text: str, codec: str | None) -> FileSchema:
    lines = text.splitlines()
    first = lines[0]
    delimiter = max(DELIMITERS, key=first.count)
    quoted = bool(re.search(f'(^|{re.escape(delimiter)})\\s*"', text, re.MULTILINE))
    rows = list(csv.reader(lines, delimiter=delimiter, quotechar='"'))
    width = len(rows[0])
    if width < 2 or len(rows) < 2:
        # "To be classified as CSV, the table schema must have at least two columns and two rows
        # of data"; whether the header counts as a row is not said: here it does (breaks least).
        raise Unclassified("not CSV: at least two columns and two lines are needed")
    data_types = _column_types(rows[1:], width)
    names = [n.strip().lower() for n in rows[0]]
    is_header = _is_header(names, data_types)
    if is_header:
        types, names = data_types, [n or f"col{i}" for i, n in enumerate(names)]
    else:
        types, names = _column_types(rows, width), [f"col{i}" for i in range(width)]
    parameters = {"delimiter": delimiter, "areColumnsQuoted": str(quoted).lower(),
                  **({"skip.header.line.count": "1"} if is_header else {})}
    if quoted:
        serde, serde_parameters = catalog.OPEN_CSV_SERDE, {"separatorChar": delimiter, "quoteChar": '"'}
    else:
        serde, serde_parameters = catalog.LAZY_SIMPLE_SERDE, {"field.delim": delimiter}
    return FileSchema("csv", codec, [(n, t or "string") for n, t in zip(names, types, strict=True)],
                      parameters, serde, serde_parameters)


# --- Parquet ------------------------------------------------------------------------------------

def arrow_hive_type(arrow_type: pa.DataType) -> str:
    """The Hive type Glue records for a Parquet column's type (Athena, "Data types in Amazon
    Athena"): nested types and decimals kept as they are."""
    t = pa.types
    simple = [(t.is_boolean, "boolean"), (t.is_int8, "tinyint"), (t.is_int16, "smallint"),
              (t.is_int32, "int"),
              (t.is_integer, "bigint"), (t.is_float32, "float"), (t.is_floating, "double"),
              (t.is_timestamp, "timestamp"), (t.is_date, "date"), (t.is_binary, "binary"),
              (t.is_large_binary, "binary")]
    for test, name in simple:
        if test(arrow_type):
            return name
    if t.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    if t.is_list(arrow_type) or t.is_large_list(arrow_type):
        return f"array<{arrow_hive_type(arrow_type.value_type)}>"
    if t.is_map(arrow_type):
        return f"map<{arrow_hive_type(arrow_type.key_type)},{arrow_hive_type(arrow_type.item_type)}>"
    if t.is_struct(arrow_type):
        return "struct<" + ",".join(f"{f.name}:{arrow_hive_type(f.type)}" for f in arrow_type) + ">"
    return "string"


def merge(a: str, b: str) -> str:
    """Two files' types of one column as one (CombineCompatibleSchemas): sluice_glue.hive_types.widen."""
    return hive_types.widen(a, b)


def common_kind(schemas: list[FileSchema]) -> str | None:
    """The classification most of a table's files have (its own), or None."""
    kinds = Counter(s.kind for s in schemas)
    return kinds.most_common(1)[0][0] if kinds else None


# (bucket, key, ETag) -> what infer() said about those bytes. The same bytes give the same answer,
# so a crawl re-reads only new or changed objects: CRAWL_EVERYTHING's result at the cost of the new
# files (a 10,000-file burst otherwise makes every crawl read every file again).
_INFERENCE_CACHE: dict[tuple[str, str, str], FileSchema | str] = {}


def inferred(s3: Any, bucket: str, key: str, etag: str) -> FileSchema | str:
    """infer() for one object, or the reason it is unreadable; cached by ETag. Reads the first MiB
    (and a Parquet file whole: its schema is in its footer)."""
    if (bucket, key, etag) not in _INFERENCE_CACHE:
        try:
            body = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{SAMPLE_BYTES}")["Body"].read()
            whole = len(body) <= SAMPLE_BYTES
            if body.startswith(b"PAR1") and not whole:
                body, whole = s3.get_object(Bucket=bucket, Key=key)["Body"].read(), True
            _INFERENCE_CACHE[(bucket, key, etag)] = infer(body, whole)
        except Exception as error:
            _INFERENCE_CACHE[(bucket, key, etag)] = f"{type(error).__name__}: {error}"
    return _INFERENCE_CACHE[(bucket, key, etag)]
