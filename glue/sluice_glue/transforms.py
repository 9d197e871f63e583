"""The job's transformations, each a DataFrame -> DataFrame function over explicit schemas.

Raw rows are read as strings (the catalog's column names, nothing inferred per file; a nested
value as its JSON text: sluice_glue.raw_files), then typed to the catalog's types, nested ones
included; a row that cannot be typed, lacks a required value, or has a bad timestamp gets a
`_bad_reason` and is quarantined later, never dropped.

Internal columns: _file (index into the manifest), _corrupt (the raw line of a malformed row, until
typed), _bad_reason, _raw (a bad row's values), _bucket (its output partition's time), _duplicate.

The names the job adds (its partition columns year/month/day/hour/run_id, ingested_at,
source_file, and the internal ones) are reserved: a raw column or partition key with one of
them is kept as `raw_<name>` (`reserved_renames`), never replaced by the job's value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    ByteType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from sluice_glue import hive_types
from sluice_glue.datasets import DATE_PARTS

CORRUPT = "_corrupt"
# The columns the job adds to every output row, and those it uses while it works: a raw column
# of the same name (case-insensitively, as Spark resolves names) is renamed raw_<name>.
ADDED = (*DATE_PARTS, "run_id", "ingested_at", "source_file")
INTERNAL = ("_file", CORRUPT, "_bad_reason", "_raw", "_bucket", "_duplicate", "_path", "_row")
RESERVED = ADDED + INTERNAL


class ReservedNameError(ValueError):
    """A raw column takes a reserved name and its raw_<name> is taken too."""


def reserved_renames(names: Sequence[str]) -> dict[str, str]:
    """{raw name: new name} for the raw columns and partition keys (`names`) that take a name
    the job adds or uses: each is kept as raw_<name>. ReservedNameError when raw_<name> is a
    raw column too (nothing can be renamed without taking another's name).

    >>> reserved_renames(["order_id", "day", "Run_Id"])
    {'day': 'raw_day', 'Run_Id': 'raw_Run_Id'}
    """
    lower = {n.lower() for n in names}
    renames = {}
    for name in names:
        if name.lower() in RESERVED or name.lower().startswith("_typed_"):
            new = f"raw_{name}"
            if new.lower() in lower:
                raise ReservedNameError(
                    f"raw column {name!r} has a name the job adds to its output ({', '.join(ADDED)}) or "
                    f"uses itself, and {new!r}, the name it would be kept under, is a raw column too: "
                    f"rename one of them in the raw files")
            renames[name] = new
    return renames


def raw_schema(columns: list[tuple[str, str]]) -> StructType:
    """Every catalog column as a string, plus the malformed-record column."""
    return StructType([StructField(name, StringType()) for name, _ in columns]
                      + [StructField(CORRUPT, StringType())])


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


def with_partition_values(df: DataFrame, keys: list[str],
                          values: Mapping[int, Mapping[str, str | None]]) -> DataFrame:
    """Hive partition columns (k=v folders of each file's key), filled per file."""
    return df.withColumns({key: by_file({i: v.get(key) for i, v in values.items()}) for key in keys})


def by_file(values: Mapping[int, str | None]) -> Column:
    """Each row's entry of `values` (manifest index -> value), looked up by its `_file` in an
    array: constant time per row, where a map literal's lookup grows with the run's files. The
    array is one JSON literal (Spark folds it into a constant once): a literal per file would be
    a call into the JVM each, which for a run of 1,000 files took 0.3 s."""
    array = json.dumps([values.get(i) for i in range(max(values, default=-1) + 1)])
    return F.try_element_at(F.from_json(F.lit(array), "array<string>"), F.col("_file") + 1)


def spark_type(hive_type: hive_types.HiveType) -> DataType:
    """The Spark type of a (parsed) Hive type; types Spark has no own name for (varchar, char)
    are strings."""
    if isinstance(hive_type, str):
        decimal = hive_types.DECIMAL.fullmatch(hive_type)
        if decimal:
            return DecimalType(int(decimal[1]), int(decimal[2]))
        return _PRIMITIVES.get(hive_type, StringType())
    if hive_type[0] == "array":
        return ArrayType(spark_type(hive_type[1]))
    if hive_type[0] == "map":
        return MapType(spark_type(hive_type[1]), spark_type(hive_type[2]))
    return StructType([StructField(name, spark_type(t)) for name, t in hive_type[1]])


_PRIMITIVES: dict[str, DataType] = {
    "string": StringType(), "bigint": LongType(), "int": IntegerType(), "integer": IntegerType(),
    "smallint": ShortType(), "tinyint": ByteType(), "double": DoubleType(), "float": FloatType(),
    "boolean": BooleanType(), "date": DateType(), "timestamp": TimestampType(), "binary": BinaryType()}


def conformed(text: Column, hive_type: str, where: str) -> tuple[Column, Column]:
    """A value's JSON text as the catalog's (nested) type, and the first problem found in it (null
    when none): fields matched to the type's whatever their case, each leaf cast; a leaf that
    does not fit its type, or text that is not the object or array the type says, is a problem
    (the row's quarantine reason), never a silent null. Spark cannot cast a string to a complex
    type (SPARK-33354), and its JSON parser matches field names exactly."""
    return _conformed(text, hive_types.parse(hive_type), where)


def _conformed(text: Column, hive_type: hive_types.HiveType, where: str) -> tuple[Column, Column]:
    if isinstance(hive_type, str):
        if spark_type(hive_type) == StringType():
            return text, F.lit(None).cast("string")
        value = parse_timestamp(text) if hive_type == "timestamp" else text.cast(spark_type(hive_type))
        return value, F.when(text.isNotNull() & value.isNull(),
                             F.concat(F.lit(f"not a {hive_type} in {where}: "), text))
    kind, described = hive_type[0], hive_types.render(hive_type)
    parsed = F.from_json(text, "array<string>" if kind == "array" else "map<string,string>")
    unparsed = F.when(text.isNotNull() & parsed.isNull(),
                      F.concat(F.lit(f"not a {described} in {where}: "), text))
    if kind == "array":
        value = F.transform(parsed, lambda x: _conformed(x, hive_type[1], f"{where}[]")[0])
        inner = F.filter(F.transform(parsed, lambda x: _conformed(x, hive_type[1], f"{where}[]")[1]),
                         lambda p: p.isNotNull())
        return value, F.coalesce(unparsed, F.try_element_at(inner, F.lit(1)))
    if kind == "map":
        value = F.transform_values(parsed, lambda k, v: _conformed(v, hive_type[2], f"{where}[{{}}]")[0])
        inner = F.filter(F.map_values(F.transform_values(
            parsed, lambda k, v: _conformed(v, hive_type[2], f"{where}[{{}}]")[1])), lambda p: p.isNotNull())
        key_type = spark_type(hive_type[1])
        bad_key = F.lit(None).cast("string")
        if key_type != StringType():
            bad_key = F.when(F.exists(F.map_keys(parsed), lambda k: k.cast(key_type).isNull()), F.concat(
                F.lit(f"a key that is not a {hive_types.render(hive_type[1])} in {where}: "), text))
            value = F.when(bad_key.isNull(), F.transform_keys(value, lambda k, v: k.cast(key_type)))
        return value, F.coalesce(unparsed, bad_key, F.try_element_at(inner, F.lit(1)))
    fields, problems = [], [unparsed]
    for name, field_type in hive_type[1]:
        found = F.try_element_at(F.map_values(F.map_filter(parsed, _named(name))), F.lit(1))
        value, problem = _conformed(found, field_type, f"{where}.{name}")
        fields.append(value.alias(name))
        problems.append(problem)
    return (F.when(parsed.isNull(), F.lit(None).cast(spark_type(hive_type))).otherwise(F.struct(*fields)),
            F.coalesce(*problems))


def _named(name: str) -> Any:
    """A map_filter predicate: the entry whose key is `name`, whatever its case."""
    return lambda key, value: F.lower(key) == name.lower()


def typed(df: DataFrame, columns: list[tuple[str, str]], timestamp_column: str | None,
          required: list[str]) -> DataFrame:
    """Cast to the catalog's types; the first problem of each row becomes its _bad_reason.

    Two projections: the casts, then the columns and checks that use them. In one, each cast
    would run twice per row (Spark does not share an expression between a column and a check
    that only some rows reach); Spark keeps the two apart because the second uses each cast
    twice. Not a withColumn per column: each is a round of plan analysis, which a small run pays
    for in wall time. A nested column is typed field by field (`conformed`), its problem found
    in the same first projection.
    """
    problems: list[Column] = [F.when(F.col(CORRUPT).isNotNull(), F.lit("malformed record"))]
    casts: dict[str, Column] = {}
    nested: dict[str, Column] = {}
    for name, hive_type in columns:
        if hive_types.is_complex(hive_type):
            casts[name], nested[name] = conformed(F.col(name), hive_type, name)
            problems.append(F.col(f"_problem_{name}"))
            continue
        if name == timestamp_column or hive_type == "timestamp":
            casts[name], problem = parse_timestamp(F.col(name)), f"bad timestamp in {name}: "
        elif spark_type(hive_type) != StringType():
            casts[name], problem = F.col(name).cast(spark_type(hive_type)), f"not a {hive_type} in {name}: "
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
    cast = df.select("*", *[c.alias(f"_typed_{name}") for name, c in casts.items()],
                     *[c.alias(f"_problem_{name}") for name, c in nested.items()])
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
