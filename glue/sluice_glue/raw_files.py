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

Each file is read the way its route says (file_routes.py): by Spark by its name, or streamed
by Python tasks; both give the same columns.

    >>> header_names('order_id,"amount, EUR",event_time', ",", '"')
    ['order_id', 'amount, EUR', 'event_time']
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from sluice_glue import hive_types
from sluice_glue.catalog import OPEN_CSV_SERDE
from sluice_glue.file_routes import BOM, FileRoute, spark_path, stream_lines
from sluice_glue.transforms import CORRUPT, raw_schema

POSITIONAL = re.compile(r"col\d+")


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


