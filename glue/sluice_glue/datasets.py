"""Per-dataset settings: how each table of the raw bucket is processed.

`datasets.toml` (repo root, published next to the job's script) holds one `[datasets.<table>]`
section per table; the template's parameters are the defaults for every field a section does not
set. A field a dataset sets is the user's intent, so naming a column the table lacks is an error
(that table fails, alone); a default that names a column the table lacks simply does not apply
to it, so any table can be processed with no settings at all.

    >>> file = load('[datasets.sensors]\\ntimestamp_column = "at"\\ndedup_keys = ["device", "at"]\\n')
    >>> settings, defaults = resolve(file, "sensors", ["device", "reading", "unit", "at"],
    ...                              DatasetSettings(timestamp_column="event_time"))
    >>> settings.timestamp_column, settings.dedup_keys, settings.partition_granularity
    ('at', ('device', 'at'), 'day')
    >>> defaults
    ['partition_granularity', 'lookup_uri', 'lookup_key', 'output_format', 'compression', 'csv_header']
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from botocore.exceptions import ClientError

# The date parts a row's timestamp gives its output partition, coarsest first (the job adds them as
# columns: transforms.ADDED); a granularity keeps those down to its own.
DATE_PARTS = ("year", "month", "day", "hour")
GRANULARITY = {"none": [], **{part: list(DATE_PARTS[:n + 1]) for n, part in enumerate(DATE_PARTS)}}
# Spark 3.5's short codec names per format (docs: spark.apache.org/docs/3.5.0/sql-data-sources-parquet.html
# and sql-data-sources-json.html "compression"), less Parquet's lzo and brotli: their codecs are not
# on Spark's or Glue's classpath, so a run would fail at write time; and less JSON's deflate, which
# Athena does not read in text files ("Use compression in Athena": "Deflate is relevant only for
# the Avro file format"; BZIP2, GZIP, Hadoop-compatible LZ4 and SNAPPY it reads).
CODECS = {"parquet": ("none", "uncompressed", "snappy", "gzip", "lz4", "zstd"),
          "json": ("none", "bzip2", "gzip", "lz4", "snappy")}
# Whether a dataset's CSV files start with a header: "auto" follows the crawler's table (its
# skip.header.line.count); "present" and "absent" say it whatever the crawler decided (it takes
# no header for an all-text CSV, and a header for a header-less file whose first row is text).
CSV_HEADER = ("auto", "present", "absent")
# A format's own codec when the template's default does not fit it (Spark's defaults).
FORMAT_DEFAULT_CODEC = {"parquet": "snappy", "json": "none"}
TABLE_NAME = re.compile(r"[a-z0-9_]+")  # what the crawler names a top-level folder's table


class SettingsError(ValueError):
    """A settings file or one dataset's settings that cannot be applied; the message names the
    dataset and the field."""


@dataclass(frozen=True)
class DatasetSettings:
    """The effective settings of one table. `timestamp_column` None: rows are placed in their
    partition by the run's ingest time."""

    timestamp_column: str | None = None
    partition_granularity: str = "day"
    dedup_keys: tuple[str, ...] = ()
    lookup_uri: str = ""
    lookup_key: str = ""
    output_format: str = "parquet"
    compression: str = "snappy"
    csv_header: str = "auto"

    @property
    def date_parts(self) -> list[str]:
        return GRANULARITY[self.partition_granularity]


FIELDS = tuple(f.name for f in fields(DatasetSettings))


@dataclass(frozen=True)
class DatasetFile:
    """A loaded, validated settings file: per table, the fields its section sets (as written)."""

    datasets: Mapping[str, Mapping[str, Any]]
    source: str = "datasets.toml"

    def explicit(self, table: str) -> Mapping[str, Any]:
        return self.datasets.get(table, {})


def load(text: str, source: str = "datasets.toml") -> DatasetFile:
    """Parse and validate a settings file; `SettingsError` names the dataset and the field."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{source}: not valid TOML: {error}") from error
    unknown = sorted(set(document) - {"datasets"})
    if unknown:
        raise SettingsError(f"{source}: unknown top-level key {unknown[0]!r}: "
                            "settings go under [datasets.<table>]")
    sections = document.get("datasets", {})
    if not isinstance(sections, dict):
        raise SettingsError(f"{source}: 'datasets' must be a table of [datasets.<table>] sections")
    datasets = {}
    for table, section in sections.items():
        where = f"{source}: [datasets.{table}]"
        if not TABLE_NAME.fullmatch(table):
            raise SettingsError(f"{where}: not a table name: the crawler names a folder's table in "
                                f"lowercase with other characters as _ (here: "
                                f"{re.sub(r'[^a-z0-9_]', '_', table.lower())!r})")
        if not isinstance(section, dict):
            raise SettingsError(f"{where}: must be a section of fields, not {type(section).__name__}")
        datasets[table] = _validated(where, section)
    return DatasetFile(datasets, source)


def fetch(s3: Any, uri: str) -> DatasetFile:
    """The settings file at `uri` (s3://bucket/key), loaded and validated. No object there (or
    no uri): no per-dataset settings, so every table takes the template's parameters, as a
    stack did before the file existed."""
    if not uri:
        return DatasetFile({}, "(no datasets_uri)")
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    try:
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
            raise
        return DatasetFile({}, f"{uri} (not published)")
    return load(text, source=uri)


def _validated(where: str, section: dict[str, Any]) -> dict[str, Any]:
    for field, value in section.items():
        if field not in FIELDS:
            raise SettingsError(f"{where}: unknown field {field!r} (fields: {', '.join(FIELDS)})")
        if field == "dedup_keys":
            if not (isinstance(value, list) and all(isinstance(k, str) and k.strip() for k in value)):
                raise SettingsError(f"{where}: dedup_keys must be a list of column names, "
                                    f'e.g. ["order_id"], not {value!r}')
        elif not isinstance(value, str):
            raise SettingsError(f"{where}: {field} must be a string, not {type(value).__name__} {value!r}")
    _one_of(where, section, "partition_granularity", GRANULARITY)
    _one_of(where, section, "csv_header", CSV_HEADER)
    _one_of(where, section, "output_format", CODECS)
    codecs = CODECS.get(section.get("output_format", ""), sorted({c for cs in CODECS.values() for c in cs}))
    _one_of(where, section, "compression", codecs)
    uri = section.get("lookup_uri", "")
    if ("lookup_uri" in section) != ("lookup_key" in section) or bool(uri) != bool(section.get("lookup_key")):
        raise SettingsError(f"{where}: lookup_uri and lookup_key go together (both set, or both \"\")")
    if "://" in uri and not re.fullmatch(r"s3://[^/]+/.+", uri):
        raise SettingsError(f"{where}: lookup_uri must be s3://bucket/key or a key in the artifacts "
                            f"bucket, not {uri!r}")
    return dict(section)


def _one_of(where: str, section: dict[str, Any], field: str, allowed: Iterable[str]) -> None:
    if field in section and section[field] not in allowed:
        raise SettingsError(f"{where}: {field} {section[field]!r} is not one of {', '.join(allowed)}")


def csv_header(file: DatasetFile, table: str) -> str:
    """A table's csv_header setting (auto when its section does not set it): needed before the
    table's columns are known, since it decides how they are named."""
    return file.explicit(table).get("csv_header", DatasetSettings.csv_header)


def defaults_from(arguments: Mapping[str, Any]) -> DatasetSettings:
    """The template's parameters as every dataset's defaults, from the job's arguments (as
    arguments.parse reads them, or the job's DefaultArguments: "--" prefixes and "a,b" dedup keys
    accepted; other names ignored). An empty timestamp column is the ingest time."""
    values = {name.removeprefix("--"): value for name, value in arguments.items()}
    settings = {name: values[name] for name in FIELDS if values.get(name) not in (None, "")}
    keys = settings.get("dedup_keys", ())
    settings["dedup_keys"] = tuple(k.strip() for k in (keys.split(",") if isinstance(keys, str) else keys)
                                   if k.strip())
    settings.setdefault("timestamp_column", None)
    return DatasetSettings(**settings)


def resolve(file: DatasetFile, table: str, columns: Iterable[str], defaults: DatasetSettings,
            artifacts_bucket: str = "") -> tuple[DatasetSettings, list[str]]:
    """The effective settings of `table` (whose columns, partition keys included, are `columns`)
    and which fields came from the defaults. A `lookup_uri` without s3:// is a key in
    `artifacts_bucket`, so the checked-in file fits every stack."""
    explicit = file.explicit(table)
    where = f"{file.source}: [datasets.{table}]"
    by_lower = {c.lower(): c for c in columns}  # Glue and Spark match column names case-insensitively

    def column(field: str, name: str) -> str | None:
        found = by_lower.get(name.lower())
        if found is None and field in explicit:
            raise SettingsError(f"{where}: {field} names column {name!r}, which table {table} does not "
                                f"have (its columns: {', '.join(by_lower.values())})")
        return found

    overrides: dict[str, Any] = {f: tuple(v) if f == "dedup_keys" else v for f, v in explicit.items()}
    settings = replace(defaults, **overrides)
    timestamp = column("timestamp_column", settings.timestamp_column) if settings.timestamp_column else None
    keys = [column("dedup_keys", k) for k in settings.dedup_keys]
    dedup = tuple(k for k in keys if k) if all(keys) else ()  # a default naming a missing column: none
    lookup_key = column("lookup_key", settings.lookup_key) if settings.lookup_uri else None
    lookup_uri = settings.lookup_uri if lookup_key else ""
    if lookup_uri and "://" not in lookup_uri:
        if not artifacts_bucket:
            raise SettingsError(f"{where}: lookup_uri {lookup_uri!r} is a key in the artifacts bucket, "
                                "which the job was not told")
        lookup_uri = f"s3://{artifacts_bucket}/{lookup_uri}"
    codec = settings.compression
    if codec not in CODECS[settings.output_format]:
        if "compression" in explicit:
            fits = ", ".join(CODECS[settings.output_format])
            raise SettingsError(f"{where}: compression {codec!r} does not fit output_format "
                                f"{settings.output_format!r} (one of {fits})")
        codec = FORMAT_DEFAULT_CODEC[settings.output_format]
    resolved = replace(settings, timestamp_column=timestamp, dedup_keys=dedup, lookup_uri=lookup_uri,
                       lookup_key=lookup_key or "", compression=codec)
    return resolved, [f for f in FIELDS if f not in explicit]
