"""The job's transformations, each a DataFrame -> DataFrame function over explicit schemas.

Raw rows are read as strings (the catalog's column names, nothing inferred per file), then typed
to the catalog's types; a row that cannot be typed, lacks a required value, or has a bad
timestamp gets a `_bad_reason` and is quarantined later, never dropped.

Internal columns: _file (index into the manifest), _corrupt (the raw line of a malformed row, until
typed), _bad_reason, _raw (a bad row's values), _bucket (its output partition's time), _duplicate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import reduce
from urllib.parse import unquote

from pyspark.sql import Column, DataFrame, DataFrameReader, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

CORRUPT = "_corrupt"


def raw_schema(columns: list[tuple[str, str]]) -> StructType:
    """Every catalog column as a string, plus the malformed-record column."""
    return StructType([StructField(name, StringType()) for name, _ in columns]
                      + [StructField(CORRUPT, StringType())])


def read_raw(spark: SparkSession, paths: list[str], table: dict, columns: list[tuple[str, str]],
             headers: Mapping[str, list[str] | None] | None = None) -> DataFrame:
    """Every catalog column as a string, by name. CSV files are read in groups of equal header
    (`headers`: path -> its header's column names, None for a file whose first line is not one),
    so a file with a column more, a column less or another order still lands in the right
    columns; a column a file lacks is null."""
    params = table.get("Parameters", {})
    serde = table["StorageDescriptor"].get("SerdeInfo", {}).get("Parameters", {})
    kind = params.get("classification", "csv")
    if kind == "parquet":
        df = spark.read.option("mergeSchema", True).parquet(*paths)
        return df.select(*[(F.col(n) if n in df.columns else F.lit(None)).cast("string").alias(n)
                           for n, _ in columns]).withColumn(CORRUPT, F.lit(None).cast("string"))
    if kind == "json":
        return _permissive(spark, columns).json(paths)
    delimiter = serde.get("field.delim") or serde.get("separatorChar") or params.get("delimiter", ",")
    header = params.get("skip.header.line.count", "1") != "0"
    catalog_names = [n for n, _ in columns]
    groups: dict[tuple[str, ...], list[str]] = {}
    for path in paths:
        file_names = (headers or {}).get(path) if header else None
        groups.setdefault(tuple(file_names or catalog_names), []).append(path)
    frames = []
    for names, group in groups.items():
        df = _permissive(spark, [(n, "string") for n in names]).option("header", header).option(
            "sep", delimiter).option("enforceSchema", True).csv(group)
        present = {n.lower() for n in names}  # Spark resolves column names case-insensitively
        frames.append(df.select(*[(F.col(n) if n.lower() in present else F.lit(None).cast("string")).alias(n)
                                  for n in catalog_names], CORRUPT))
    return reduce(DataFrame.unionByName, frames)


def _permissive(spark: SparkSession, columns: list[tuple[str, str]]) -> DataFrameReader:
    """Malformed records are kept, their raw text in the _corrupt column, never dropped."""
    return spark.read.schema(raw_schema(columns)).option("mode", "PERMISSIVE").option(
        "columnNameOfCorruptRecord", CORRUPT)


def header_names(first_line: str, delimiter: str) -> list[str] | None:
    """Column names of a CSV header line, or None if it does not look like one.

    >>> header_names('order_id,"amount",event_time', ",")
    ['order_id', 'amount', 'event_time']
    """
    first_line = first_line.removeprefix("\ufeff")  # a UTF-8 BOM is not part of the first name
    names = [n.strip().strip('"').strip() for n in first_line.rstrip("\r\n").split(delimiter)]
    return names if all(names) and len(set(names)) == len(names) else None


def with_file_index(df: DataFrame, paths: dict[str, int]) -> DataFrame:
    """`_file`: the manifest index of the file each row came from. `paths` holds real paths
    (s3://bucket/key, file:///staged/key); Spark reports a file (input_file_name, and the same
    string in DataFrame.inputFiles) as its URI, Hadoop's Path.toUri: a space is %20, "%" is %25,
    while "=", "+" and non-ASCII letters stay as they are. So each name Spark reports is decoded
    once per file, here in the driver (percent-decoding, which leaves "+" alone), and rows are
    joined on the name as reported: no per-row decoding. A name that decodes to no manifest path
    leaves the row's `_file` null, which fails the table (its files go back with the reason,
    never DONE with 0 rows).
    A broadcast join, not a map literal: looking up a map literal compares the key with every
    entry, and a run can hold hundreds of files."""
    reported = {name: paths[unquote(name)] for name in df.inputFiles() if unquote(name) in paths}
    index = df.sparkSession.createDataFrame(list(reported.items()), "_path string, _file int")
    return df.withColumn("_path", F.input_file_name()).join(F.broadcast(index), "_path", "left").drop("_path")


def with_partition_values(df: DataFrame, keys: list[str], values: dict[int, dict[str, str]]) -> DataFrame:
    """Hive partition columns (k=v folders of each file's key), filled per file."""
    return df.withColumns({key: by_file({i: v.get(key) for i, v in values.items()}) for key in keys})


def by_file(values: Mapping[int, str | None]) -> Column:
    """Each row's entry of `values` (manifest index -> value), looked up by its `_file` in an
    array: constant time per row, where a map literal's lookup grows with the run's files. The
    array is one JSON literal (Spark folds it into a constant once): a literal per file would be
    a call into the JVM each, which for a run of 1,000 files took 0.3 s."""
    array = json.dumps([values.get(i) for i in range(max(values, default=-1) + 1)])
    return F.try_element_at(F.from_json(F.lit(array), "array<string>"), F.col("_file") + 1)


def typed(df: DataFrame, columns: list[tuple[str, str]], timestamp_column: str | None,
          required: list[str]) -> DataFrame:
    """Cast to the catalog's types; the first problem of each row becomes its _bad_reason.

    Two projections: the casts, then the columns and checks that use them. In one, each cast
    would run twice per row (Spark does not share an expression between a column and a check
    that only some rows reach); Spark keeps the two apart because the second uses each cast
    twice. Not a withColumn per column: each is a round of plan analysis, which a small run pays
    for in wall time.
    """
    problems: list[Column] = [F.when(F.col(CORRUPT).isNotNull(), F.lit("malformed record"))]
    casts: dict[str, Column] = {}
    for name, hive_type in columns:
        if name == timestamp_column or hive_type == "timestamp":
            casts[name], problem = parse_timestamp(F.col(name)), f"bad timestamp in {name}: "
        elif hive_type != "string":
            casts[name], problem = F.col(name).cast(hive_type), f"not a {hive_type} in {name}: "
        else:
            continue
        problems.append(F.when(F.col(name).isNotNull() & F.col(f"_typed_{name}").isNull(),
                               F.concat(F.lit(problem), F.col(name))))
    for name in required:
        if name not in dict(columns):
            problems.append(F.lit(f"missing required column {name}"))
        else:
            problems.append(F.when(F.col(name).isNull() | (F.trim(F.col(name)) == ""),
                                   F.lit(f"missing value for {name}")))
    reason = F.coalesce(*problems)
    # A bad row's raw values are kept as a struct and turned into text only in the quarantine:
    # to_json has no generated code, and one such expression takes the whole projection (every
    # cast and check of every row) out of Spark's whole-stage code generation.
    raw_values = F.struct(*[F.col(n) for n, _ in columns], F.col(CORRUPT))
    cast = df.select("*", *[c.alias(f"_typed_{name}") for name, c in casts.items()])
    return cast.select(*[F.col(f"_typed_{c}").alias(c) if c in casts else F.col(c)
                         for c in df.columns if c != CORRUPT],
                       reason.alias("_bad_reason"), F.when(reason.isNotNull(), raw_values).alias("_raw"))


def parse_timestamp(text: Column) -> Column:
    """A string as a timestamp (null if it is not one), read as Spark's cast reads it.

    A "Z" right after hh:mm:ss is cut and the rest read in the session time zone, which the job
    sets to UTC. For any zone written in the string, Spark 3.5 compiles two regular expressions
    per value (SparkDateTimeUtils.getZoneId), and "Z" is what most feeds write (1M values:
    0.40 s -> 0.10 s). Other zones ("+01:00"), and fractions of a second, take Spark's own path.
    """
    without_z = text.substr(F.lit(1), F.length(text) - 1)
    return F.when(ends_in_utc_time(text), without_z.cast("timestamp")).otherwise(text.cast("timestamp"))


def ends_in_utc_time(text: Column) -> Column:
    """True for "...hh:mm:ssZ": the strings parse_timestamp reads without Spark's zone lookup."""
    return text.endswith("Z") & (F.substring(text, -4, 1) == ":") & (F.substring(text, -7, 1) == ":")


def with_time_bucket(df: DataFrame, timestamp: Column | None, date_parts: list[str]) -> DataFrame:
    """`_bucket`: the row's timestamp (`timestamp`, a column or a literal such as the run's
    ingest time) truncated to the finest date part (the day, at day granularity).

    It stands for the output partition while rows are shuffled and sorted: one timestamp instead
    of a string per date part makes the exchange smaller and gives the sort a prefix that tells
    buckets apart (every row's year string is the same)."""
    bucket = F.date_trunc(date_parts[-1], timestamp) if date_parts and timestamp is not None else F.lit(None)
    return df.withColumn("_bucket", bucket.cast("timestamp"))


def distributed(df: DataFrame, within: list[str], dedup_keys: tuple[str, ...], tasks: int) -> DataFrame:
    """The job's one exchange: rows hashed by output partition (`within`) and dedup keys into
    `tasks` tasks, so one output day is spread over every task (at most `tasks` files each) and
    rows with the same key in the same output partition still meet (flag_duplicates needs no
    exchange of its own). Without dedup keys a salt spreads the rows: a hash of the file and the
    row's position in its input split, which a retried task computes again the same way (rand()
    would not). One task (a small run) is no exchange at all: one partition already holds every
    key together (Spark's SinglePartition satisfies the window's clustering)."""
    if tasks == 1:
        return df.coalesce(1)
    spread = [F.col(k) for k in dedup_keys] or [F.xxhash64("_file", F.monotonically_increasing_id())]
    return df.repartition(tasks, *[F.col(c) for c in within], *spread)


def with_output_partition(df: DataFrame, run_id: str, timestamp_column: str,
                          date_parts: list[str]) -> DataFrame:
    """The columns the output is partitioned by: date parts of the timestamp (null for a row
    without one, which is bad anyway) and the run id."""
    ts = F.col(timestamp_column)
    parts = {"year": F.year(ts), "month": F.month(ts), "day": F.dayofmonth(ts), "hour": F.hour(ts)}
    return df.withColumns({
        **{part: F.lpad(parts[part].cast("string"), 4 if part == "year" else 2, "0") for part in date_parts},
        "run_id": F.lit(run_id)})


def flag_duplicates(df: DataFrame, keys: tuple[str, ...], within: Sequence[str] = ()) -> DataFrame:
    """Among good rows with the same key in the same output partition (`within`), all but the
    first are duplicates (earliest file wins). Scoping by output partition is what lets the job
    dedup and lay out files with one shuffle instead of two."""
    if not keys:
        return df.withColumn("_duplicate", F.lit(False))
    window = Window.partitionBy(*within, *keys).orderBy(F.col("_bad_reason").isNotNull(), "_file")
    return df.withColumn("_duplicate", F.col("_bad_reason").isNull() & (F.row_number().over(window) > 1))


def enriched(df: DataFrame, source_uris: dict[int, str], lookup: DataFrame | None,
             lookup_key: str, broadcast: bool = True) -> DataFrame:
    """Ingest time, the source file's URI, and the lookup table's columns (a broadcast join
    when `broadcast`, the lookup being small; else Spark chooses)."""
    out = df.withColumns({"ingested_at": F.current_timestamp(), "source_file": by_file(source_uris)})
    if lookup is not None:
        out = out.join(F.broadcast(lookup) if broadcast else lookup, on=lookup_key, how="left")
    return out


def quarantine_records(df: DataFrame, run_id: str, source_uris: dict[int, str]) -> DataFrame:
    record = F.coalesce(F.col("_raw").getField(CORRUPT), F.to_json(F.col("_raw").dropFields(CORRUPT)))
    return df.select(by_file(source_uris).alias("source_file"), record.alias("record"),
                     F.col("_bad_reason").alias("reason"), F.lit(run_id).alias("run_id"),
                     F.current_timestamp().alias("quarantined_at"))
