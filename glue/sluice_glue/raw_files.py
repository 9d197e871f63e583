"""Reading a table's raw files as its catalog table describes them: every column a string.

The crawler catalogues what it finds (sluice.aws.glue_schema mirrors it locally), and this reads
every shape it catalogues, so that no value is lost on the way in:

- CSV by header name when the table has a header (`skip.header.line.count`), by position when it
  has not (the crawler's col0, col1... for an all-text or header-less file); a dataset's
  `csv_header` setting overrides the catalog either way. The delimiter, quote and escape come
  from the SerDe (LazySimpleSerDe's field.delim, OpenCSVSerde's separatorChar and quoteChar).
- JSON keys matched to columns case-insensitively at every level (the catalog stores names in
  lowercase, the data keeps its own case, and Spark's JSON reader matches exactly: it would read
  NULL); a nested value is kept as its JSON text until it is typed (transforms.typed).
- Parquet natively, a nested column as its JSON text.

Spark reads a file by its name: glob characters are escaped; a name Spark cannot address (a
leaf starting with `_` or `.`, which Spark skips; `//`, which it folds; `:`, which local
Hadoop rejects) and a compressed file whose name does not say so (Spark picks the codec by the
extension; Firehose, DMS and others write such files) are streamed by Python tasks instead,
decompressed by their magic bytes. A file that neither way can read is quarantined whole with
the reason.

    >>> header_names('order_id,"amount, EUR",event_time', ",", '"')
    ['order_id', 'amount, EUR', 'event_time']
    >>> spark_path("s3://raw/t/a[1].csv")
    's3://raw/t/a\\\\[1\\\\].csv'
"""

from __future__ import annotations

import bz2
import codecs
import csv
import re
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from sluice_glue import hive_types
from sluice_glue.catalog import OPEN_CSV_SERDE
from sluice_glue.transforms import CORRUPT, raw_schema

BOM = "\ufeff"
CODEC_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\x28\xb5\x2f\xfd": "zstd", b"\x04\x22\x4d\x18": "lz4",
               b"\xff\x06\x00\x00sNaPpY": "snappy", b"PK\x03\x04": "zip"}
READABLE_CODECS = ("gzip", "bzip2")
# The extensions Hadoop picks a codec by (CompressionCodecFactory); a file so named is Spark's.
CODEC_EXTENSIONS = (".gz", ".bz2", ".deflate", ".lz4", ".snappy", ".zst")
POSITIONAL = re.compile(r"col\d+")
CSV_HEADER_MODES = ("auto", "present", "absent")


@dataclass(frozen=True)
class RawLayout:
    """How a table's files are read: its classification, its catalog columns, CSV's dialect, and
    whether a CSV file's first line is its header."""

    kind: str
    columns: tuple[tuple[str, str], ...]
    delimiter: str = ","
    quote: str = '"'
    escape: str = "\\"
    header: bool = False
    compressed: bool = False

    @property
    def by_position(self) -> bool:
        """The crawler found no header and named the columns col0, col1...: a file's own header
        (when the dataset says it has one) names them instead."""
        return bool(self.columns) and all(POSITIONAL.fullmatch(n) for n, _ in self.columns)


def layout(table: dict, csv_header: str = "auto") -> RawLayout:
    """The RawLayout of a catalog table; `csv_header` (a dataset's setting: auto, present,
    absent) overrides whether its CSV files have a header line."""
    params = table.get("Parameters", {})
    descriptor = table["StorageDescriptor"]
    serde = descriptor.get("SerdeInfo", {}).get("Parameters", {})
    columns = tuple((c["Name"], c["Type"]) for c in descriptor["Columns"])
    kind = params.get("classification", "csv")
    delimiter = serde.get("field.delim") or serde.get("separatorChar") or params.get("delimiter") or ","
    header = {"present": True, "absent": False}.get(
        csv_header, params.get("skip.header.line.count", "0").strip() not in ("", "0"))
    # A quoted CSV (OpenCSVSerde) without an escapeChar is read as RFC 4180 writes quotes, doubled
    # inside a quoted value (Python's csv, Excel, pandas, DMS), which Spark reads only with the quote
    # as its escape; an unquoted one (LazySimpleSerDe) with Spark's default, the backslash.
    quoted = descriptor.get("SerdeInfo", {}).get("SerializationLibrary") == OPEN_CSV_SERDE
    escape = serde.get("escapeChar") or ('"' if quoted else "\\")
    return RawLayout(kind, columns, delimiter, serde.get("quoteChar") or '"', escape,
                     header if kind == "csv" else False,
                     params.get("compressionType", "none").lower() not in ("", "none"))


# --- which files Spark reads by name, which Python streams, which cannot be read ---------------

def spark_path(path: str) -> str:
    """A path as Spark must be given it to read exactly that file: glob characters escaped."""
    return re.sub(r"([\\\[\]{}*?])", r"\\\1", path)


def unnameable(key: str) -> str | None:
    """Why Spark cannot read the object by its key (None: it can)."""
    name = key.rsplit("/", 1)[-1]
    if name.startswith(("_", ".")):
        return f"Spark skips files whose name starts with {name[0]!r}"
    if "//" in key:
        return "Spark folds '//' in a path to '/'"
    if ":" in key:
        return "Hadoop's local file system rejects ':' in a file name"
    return None


def compression(head: bytes) -> str | None:
    """The codec a file is compressed with, by its magic bytes (None: not compressed)."""
    return next((codec for magic, codec in CODEC_MAGIC.items() if head.startswith(magic)), None)


@dataclass(frozen=True)
class FileRoute:
    """How one file of the manifest is read: by Spark, streamed by Python (with its codec), or
    not at all (with the reason, quarantined whole)."""

    index: int
    path: str
    how: str  # "spark" | "stream" | "unreadable"
    codec: str | None = None
    reason: str = ""


def route(index: int, key: str, path: str, kind: str, head: bytes | None) -> FileRoute:
    """How to read the file `key` (staged at `path`); `head`: its first bytes when known."""
    codec = compression(head) if head is not None else None
    named = key.lower().endswith(CODEC_EXTENSIONS)
    why = unnameable(key)
    if kind == "parquet":
        return FileRoute(index, path, "unreadable", reason=f"{why}: rename the file") if why else \
            FileRoute(index, path, "spark")
    if codec and not named and codec not in READABLE_CODECS:
        return FileRoute(index, path, "unreadable", codec,
                         f"{codec}-compressed, but its name does not end in the codec's extension: rename it")
    if why or (codec and not named):
        return FileRoute(index, path, "stream", codec if not named else _codec_of_name(key))
    return FileRoute(index, path, "spark")


def _codec_of_name(key: str) -> str | None:
    lower = key.lower()
    return "gzip" if lower.endswith(".gz") else "bzip2" if lower.endswith(".bz2") else None


# --- CSV headers ---------------------------------------------------------------------------------

def header_names(first_line: str, delimiter: str, quote: str = '"') -> list[str] | None:
    """Column names of a CSV header line (quoted names may hold the delimiter), or None if it
    does not look like one (an empty or repeated name)."""
    first_line = first_line.removeprefix(BOM).rstrip("\r\n")  # a UTF-8 BOM is not part of the first name
    try:
        names = next(csv.reader([first_line], delimiter=delimiter, quotechar=quote or None))
    except (csv.Error, StopIteration):
        return None
    names = [n.strip() for n in names]
    return names if all(names) and len({n.lower() for n in names}) == len(names) else None


def first_line(head: bytes, codec: str | None) -> str:
    """The first line of a file from its first bytes, decompressed by `codec`; "" if unreadable."""
    try:
        if codec == "gzip":  # a partial stream decompresses as far as it goes
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 65536)
        elif codec == "bzip2":
            head = bz2.BZ2Decompressor().decompress(head, 65536)
        return head.split(b"\n", 1)[0].decode("utf-8", errors="replace").removeprefix(BOM)
    except (zlib.error, OSError, EOFError):
        return ""


def effective_columns(raw: RawLayout, names: Mapping[int, list[str] | None]) -> list[tuple[str, str]]:
    """The table's columns as this run reads them. Catalog names as they are, except when the
    crawler named them by position (col0...) and the files have a header: then the headers name
    them (lowercased, as the catalog would), in order of first appearance, each typed as the
    catalog typed its position in the file where it first appears (string beyond)."""
    if not (raw.kind == "csv" and raw.header and raw.by_position):
        return list(raw.columns)
    columns: dict[str, str] = {}
    for index in sorted(names):
        for position, name in enumerate(names[index] or []):
            typed_as = raw.columns[position][1] if position < len(raw.columns) else "string"
            columns.setdefault(name.lower(), typed_as)
    return list(columns.items()) or list(raw.columns)


# --- reading -----------------------------------------------------------------------------------

def read(spark: SparkSession, raw: RawLayout, columns: list[tuple[str, str]], routes: list[FileRoute],
         names: Mapping[int, list[str] | None], reported: Any,
         renames: Mapping[str, str] | None = None) -> DataFrame:
    """Every column of `columns` as a string (a nested value as its JSON text), `_corrupt` (the raw
    line of a malformed record) and `_file` (its manifest index), from the files of `routes` that
    can be read. `names`: each CSV file's header names (None: no usable header); `reported`: a
    function DataFrame -> DataFrame that gives a Spark-read frame its `_file`
    (transforms.with_file_index); `renames`: columns read under another name (a reserved one's
    raw_<name>), from the start, so that no raw name meets the job's own."""
    by_spark = [r for r in routes if r.how == "spark"]
    streamed = [r for r in routes if r.how == "stream"]
    target = _Target(renames or {})
    frames = []
    if by_spark:
        frames.append(reported(_read_by_spark(spark, raw, columns, by_spark, names, target)))
    if streamed:
        headed = {r.index for r in streamed if has_header(raw, columns, names.get(r.index))}
        lines = stream_lines(spark, streamed, skip_first=headed)
        frames.append(_parsed_lines(raw, columns, lines, names, [r.index for r in streamed], target))
    if not frames:
        return spark.createDataFrame([], raw_schema([(target(n), t) for n, t in columns])).withColumn(
            "_file", F.lit(None).cast("int"))
    return reduce(lambda a, b: a.unionByName(b), frames)


class _Target:
    """The name a raw column is read under (case-insensitively: Spark resolves names so)."""

    def __init__(self, renames: Mapping[str, str]) -> None:
        self.renames = {old.lower(): new for old, new in renames.items()}

    def __call__(self, name: str) -> str:
        return self.renames.get(name.lower(), name)


def _read_by_spark(spark: SparkSession, raw: RawLayout, columns: list[tuple[str, str]],
                   routes: list[FileRoute], names: Mapping[int, list[str] | None],
                   target: _Target) -> DataFrame:
    paths = [spark_path(r.path) for r in routes]
    if raw.kind == "parquet":
        df = spark.read.option("mergeSchema", True).parquet(*paths)
        present = {c.lower() for c in df.columns}
        return df.select(*[_as_text(F.col(f"`{n}`"), t).alias(target(n)) if n.lower() in present else
                           F.lit(None).cast("string").alias(target(n)) for n, t in columns],
                         F.lit(None).cast("string").alias(CORRUPT))
    if raw.kind == "json":
        return json_columns(spark.read.text(paths), columns, target)
    groups: dict[tuple[tuple[str, ...], bool], list[str]] = {}
    for r, path in zip(routes, paths, strict=True):
        file_header = has_header(raw, columns, names.get(r.index))
        groups.setdefault((_file_names(raw, columns, names.get(r.index)), file_header), []).append(path)
    frames = []
    for (file_names, file_header), group in groups.items():
        file_names = tuple(target(n) for n in file_names)
        df = (spark.read.schema(raw_schema([(n, "string") for n in file_names])).option("mode", "PERMISSIVE")
              .option("columnNameOfCorruptRecord", CORRUPT).option("header", file_header)
              .option("sep", raw.delimiter).option("quote", raw.quote).option("escape", raw.escape)
              .option("enforceSchema", True).csv(group))
        frames.append(_by_name(df, file_names, [target(n) for n, _ in columns]))
    return reduce(DataFrame.unionByName, frames)


def has_header(raw: RawLayout, columns: list[tuple[str, str]], names: list[str] | None) -> bool:
    """Whether a CSV file's first line is read as its header: the table's files have one, and
    this file's names any of the table's columns. A first line that names none of them is data
    (a file without the header its table's other files have), kept as a row."""
    return bool(raw.header and names and {n.lower() for n in names} & {n.lower() for n, _ in columns})


def _file_names(raw: RawLayout, columns: list[tuple[str, str]], names: list[str] | None) -> tuple[str, ...]:
    """The names of a CSV file's columns, in its order: its header's, else the table's (by
    position)."""
    if names and has_header(raw, columns, names):
        return tuple(n.lower() for n in names)
    return tuple(n for n, _ in columns)


def _by_name(df: DataFrame, file_names: Iterable[str], columns: list[str]) -> DataFrame:
    present = {n.lower() for n in file_names}  # Spark resolves column names case-insensitively
    return df.select(*[(F.col(f"`{n}`") if n.lower() in present else F.lit(None).cast("string")).alias(n)
                       for n in columns], CORRUPT, *[c for c in ("_file",) if c in df.columns])


def _as_text(column: Column, hive_type: str) -> Column:
    """A Parquet value as the string the job types: a nested one as its JSON text."""
    return F.to_json(column) if hive_types.is_complex(hive_type) else column.cast("string")


def json_columns(lines: DataFrame, columns: list[tuple[str, str]], target: Any = None) -> DataFrame:
    """JSON lines (`value`) as the table's columns, each key matched to its column whatever its
    case; a nested value as its JSON text. A line that is not one JSON object (malformed, an
    array, or several objects run together, as Firehose writes them without a newline delimiter),
    or whose keys differ only in case, is a malformed record: its text stays in `_corrupt`."""
    value = F.col("value")
    parsed = F.from_json(value, "map<string,string>")
    lowered = F.transform(F.map_keys(parsed), F.lower)
    clash = F.size(F.array_distinct(lowered)) < F.size(lowered)
    # Spark's parser stops after the first object of a line: a line with more than one must not
    # pass as that one. Only lines that may hold several are parsed again, as an array.
    several = value.rlike(r"\}\s*\{") & (F.size(F.from_json(F.concat(F.lit("["), value, F.lit("]")),
                                                            "array<string>")) != 1)
    bad = parsed.isNull() | clash | several
    keyed = F.when(bad, F.lit(None)).otherwise(F.map_from_arrays(lowered, F.map_values(parsed)))
    rest = [c for c in lines.columns if c != "value"]
    target = target or (lambda n: n)
    return (lines.filter(F.trim(value) != "")
            .select(*[keyed.getItem(n.lower()).alias(target(n)) for n, _ in columns],
                    F.when(bad, value).alias(CORRUPT), *rest))


def _parsed_lines(raw: RawLayout, columns: list[tuple[str, str]], lines: DataFrame,
                  names: Mapping[int, list[str] | None], indexes: list[int], target: _Target) -> DataFrame:
    """Streamed lines (`_file`, `value`) of the files `indexes`, parsed as the table's format."""
    lines = lines.filter(F.trim("value") != "")
    if raw.kind == "json":
        return json_columns(lines, columns, target)
    groups: dict[tuple[str, ...], list[int]] = {}
    for index in indexes:
        groups.setdefault(_file_names(raw, columns, names.get(index)), []).append(index)
    frames = []
    for file_names, group in groups.items():
        file_names = tuple(target(n) for n in file_names)
        ddl = ", ".join(f"`{n.replace('`', '``')}` STRING" for n in (*file_names, CORRUPT))
        parsed = F.from_csv("value", ddl, {
            "sep": raw.delimiter, "quote": raw.quote, "escape": raw.escape, "mode": "PERMISSIVE",
            "columnNameOfCorruptRecord": CORRUPT})
        rows = lines.filter(F.col("_file").isin(group)).select(parsed.alias("_row"), "_file")
        frames.append(_by_name(rows.select("_row.*", "_file"), file_names, [target(n) for n, _ in columns]))
    return reduce(DataFrame.unionByName, frames)


# --- streaming a file through Python -----------------------------------------------------------

def _chunks(source: str) -> Iterator[bytes]:
    """The bytes of a staged path or an s3:// object, 1 MiB at a time (runs on an executor)."""
    if source.startswith("s3://"):
        import boto3

        bucket, key = source.removeprefix("s3://").split("/", 1)
        yield from boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(1 << 20)
        return
    with open(source, "rb") as stream:
        while chunk := stream.read(1 << 20):
            yield chunk


def decompressed(chunks: Iterable[bytes], codec: str | None) -> Iterator[bytes]:
    """The decompressed bytes of a stream (concatenated gzip members and bzip2 streams read in
    turn); raises ValueError when the stream is corrupt or ends before its end."""
    if codec is None:
        yield from chunks
        return

    def fresh() -> Any:
        return zlib.decompressobj(16 + zlib.MAX_WBITS) if codec == "gzip" else bz2.BZ2Decompressor()

    inflate, seen = fresh(), False
    try:
        for chunk in chunks:
            while chunk:
                seen = True
                yield inflate.decompress(chunk)
                if not inflate.eof:
                    break
                chunk = inflate.unused_data
                inflate = fresh()
                seen = bool(chunk)
    except (zlib.error, OSError, EOFError) as error:
        raise ValueError(f"corrupt {codec} stream ({error})") from error
    if seen and not inflate.eof:
        raise ValueError(f"truncated {codec} stream (unexpected end of file)")


def lines_of(data: Iterable[bytes]) -> Iterator[str]:
    """Text lines of a byte stream as Hadoop's line reader splits them (\\n, \\r\\n or \\r ends a
    line), decoded as UTF-8 with invalid bytes replaced, as Spark decodes text."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in data:
        pending += decoder.decode(chunk)
        parts = re.split(r"\r\n|\n|\r(?!$)", pending)
        pending = parts.pop()
        yield from parts
    pending += decoder.decode(b"", final=True)
    if pending.endswith("\r"):
        pending = pending[:-1]
    if pending:
        yield pending


def _problem(item: tuple[int, str, str | None]) -> tuple[int, str | None, str]:
    """(index, why the file cannot be read or None, its first line): one pass over the stream."""
    index, source, codec = item
    first = None
    try:
        for line in lines_of(decompressed(_chunks(source), codec)):
            first = line if first is None else first
    except ValueError as error:
        return index, str(error), ""
    return index, None, (first or "").removeprefix(BOM)


def checked(spark: SparkSession, routes: list[FileRoute]) -> dict[int, tuple[str | None, str]]:
    """For each streamed file: (why it cannot be read or None, its first line), one Spark task
    per file, before any of it is read: a stream truncated mid-way must be quarantined whole,
    never counted DONE with the rows before the break."""
    if not routes:
        return {}
    from pyspark import cloudpickle

    # Local Spark's Python workers do not have glue/ on their path (Glue's have --extra-py-files).
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    items = [(r.index, r.path, r.codec) for r in routes]
    found = spark.sparkContext.parallelize(items, len(items)).map(_problem).collect()
    return {index: (problem, first) for index, problem, first in found}


def stream_lines(spark: SparkSession, routes: list[FileRoute], skip_first: set[int]) -> DataFrame:
    """The lines (`_file`, `value`) of files Spark cannot read by name, streamed and decompressed
    by Python tasks, one per file; the first line left out for the files `skip_first` (headers)."""
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    items = [(r.index, r.path, r.codec, r.index in skip_first) for r in routes]

    def lines(item: tuple[int, str, str | None, bool]) -> Iterator[tuple[int, str]]:
        index, source, codec, skip = item
        for number, line in enumerate(lines_of(decompressed(_chunks(source), codec))):
            if number or not skip:
                yield index, line.removeprefix(BOM) if number == 0 else line

    rdd = spark.sparkContext.parallelize(items, len(items)).flatMap(lines)
    return spark.createDataFrame(rdd, "_file int, value string")
