"""The Glue Data Catalog: the raw tables the crawler wrote, and the processed tables we write.

This is the one catalog writer: the job registers its processed tables with it, and the local
runtime's crawler (sluice.aws.glue_crawler) writes the raw tables with it. It also holds the rules
both sides must agree on: which partition value a folder gives (`partition_values`), and where a
partition's files are (`partition_path`, escaped as Spark names the folders it writes).

    >>> partition_values(["region=eu", "2026", "day=25"])
    [('region', 'eu'), ('partition_1', '2026'), ('day', '25')]
    >>> partition_path(["at", "run_id"], ["2026-01-01T10:00", "r1"])
    'at=2026-01-01T10%3A00/run_id=r1/'
    >>> table_input("orders", "s3://raw/orders/", [("id", "bigint")], ["region"], "parquet")["Parameters"]
    {'classification': 'parquet'}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import unquote

from ledger import FileRef
from ledger.catalog_partitions import DEFAULT_PARTITION_NAME
from sluice_glue import hive_types


class StorageFormat(NamedTuple):
    input_format: str
    output_format: str
    serde: str


_TEXT = ("org.apache.hadoop.mapred.TextInputFormat",
         "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat")
# The classes Glue and Athena name for each format (Athena, "Choose a SerDe for your data":
# https://docs.aws.amazon.com/athena/latest/ug/supported-serdes.html; LazySimpleSerDe is the
# unquoted-CSV one, https://docs.aws.amazon.com/athena/latest/ug/lazy-simple-serde.html, OpenCSVSerde
# the quoted-CSV one, https://docs.aws.amazon.com/athena/latest/ug/csv-serde.html).
LAZY_SIMPLE_SERDE = "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
OPEN_CSV_SERDE = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
# The crawler catalogues JSON with the OpenX SerDe; the processed JSON is registered with the Hive
# JSON SerDe, which Athena recommends: the OpenX SerDe's results can be non-deterministic ("Use
# the OpenX JSON SerDe" and "Use the Hive JSON SerDe", Athena user guide).
OPENX_JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
HIVE_JSON_SERDE = "org.apache.hive.hcatalog.data.JsonSerDe"
FORMATS = {
    "csv": StorageFormat(*_TEXT, LAZY_SIMPLE_SERDE),
    "json": StorageFormat(*_TEXT, OPENX_JSON_SERDE),
    "parquet": StorageFormat("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                             "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                             "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"),
}
OUTPUT_SERDES = {"json": HIVE_JSON_SERDE}  # what the job registers, where it differs from FORMATS
# The characters Spark escapes as %XX in a partition folder's name (ExternalCatalogUtils.charToEscape,
# Spark 3.5: the control characters, " # % ' * / : = ? \ DEL { [ ] ^); a test compares with the
# folders Spark really writes (tests/glue/test_catalog_run.py).
_ESCAPED = {chr(c) for c in range(1, 32)} | set("\"#%'*/:=?\\\x7f{[]^")


def partition_values(folders: Iterable[str]) -> list[tuple[str, str]]:
    """The partition (key, value) each folder below a table's location gives, in order: a Hive
    folder `k=v` gives key k and value v (its %XX escapes decoded, as Hive and Spark decode
    them); any other folder gives `partition_<level>` and its name. That is how the crawler names
    partition keys ("Managing partitions for ETL output in AWS Glue": "For Apache Hive-style
    partitioned paths in key=val style, crawlers automatically populate the column name using the
    key name. Otherwise, it uses default names like partition_0, partition_1, and so on")."""
    values = []
    for level, folder in enumerate(folders):
        key, equals, value = folder.partition("=")
        values.append((key, unquote(value)) if equals and key else (f"partition_{level}", folder))
    return values


def file_partition_values(keys: Sequence[str], folders: Sequence[str]) -> list[str | None]:
    """The values of a table's partition `keys` for a file whose key has `folders` below the
    table's location, by level: the folder's value when it is `<key>=<value>` for the key at its
    level (`partition_values`' rule), else the folder's whole name (partition_N keys, or a level
    whose files disagree on the key). A file with fewer folders than keys has None for the rest.

    >>> file_partition_values(["region", "partition_1", "day"], ["region=eu", "2026"])
    ['eu', '2026', None]
    """
    found = partition_values(folders)
    return [None if level >= len(folders) else found[level][1] if found[level][0] == key else folders[level]
            for level, key in enumerate(keys)]


def escape_path_name(text: str) -> str:
    """A partition column's name or value as Spark writes it in a folder name."""
    return "".join(f"%{ord(c):02X}" if c in _ESCAPED else c for c in text)


def partition_path(keys: Sequence[str], values: Sequence[str | None]) -> str:
    """The folders `k=v/...` Spark writes a partition's files to: names and values escaped, a null
    or empty value as __HIVE_DEFAULT_PARTITION__ (ExternalCatalogUtils.getPartitionPathString)."""
    return "".join(f"{escape_path_name(k)}={escape_path_name(v) if v else DEFAULT_PARTITION_NAME}/"
                   for k, v in zip(keys, values, strict=True))


def raw_tables(glue: Any, database: str) -> list[dict]:
    return [t for page in glue.get_paginator("get_tables").paginate(DatabaseName=database)
            for t in page["TableList"]]


def table_for(ref: FileRef, tables: list[dict]) -> dict | None:
    """The table whose location is the longest prefix of the file's URI (None: not catalogued)."""
    matches = [t for t in tables if ref.uri.startswith(t["StorageDescriptor"]["Location"].rstrip("/") + "/")]
    if not matches:
        return None
    return max(matches, key=lambda t: len(t["StorageDescriptor"]["Location"]))


def table_input(name: str, location: str, columns: Iterable[tuple[str, str]], partition_keys: list[str],
                kind: str, parameters: Mapping[str, str] | None = None,
                serde_parameters: Mapping[str, str] | None = None, serde: str | None = None) -> dict:
    """The TableInput of an external table of `kind` (csv, json, parquet) files at `location`;
    `columns` are [(name, hive type)] without the partition keys, which are strings. `serde`:
    another SerDe than the format's usual one (OpenCSVSerde for quoted CSV, the Hive JSON SerDe)."""
    storage = FORMATS[kind]
    descriptor = {"Columns": [{"Name": n, "Type": t} for n, t in columns], "Location": location,
                  "InputFormat": storage.input_format, "OutputFormat": storage.output_format,
                  "SerdeInfo": {"SerializationLibrary": serde or storage.serde,
                                "Parameters": dict(serde_parameters or {})}}
    return {"Name": name, "TableType": "EXTERNAL_TABLE", "StorageDescriptor": descriptor,
            "PartitionKeys": [{"Name": k, "Type": "string"} for k in partition_keys],
            "Parameters": {"classification": kind, **(parameters or {})}}


def hive_columns(schema: Any, without: Iterable[str] = ()) -> list[tuple[str, str]]:
    """[(name, type)] of a Spark schema as the catalog names them: Spark's simpleString is the
    Hive DDL type (decimal(10,2), smallint, tinyint, array<int>, struct<a:int>, map<string,int>),
    the names Athena reads Parquet with ("Data types in Amazon Athena",
    https://docs.aws.amazon.com/athena/latest/ug/data-types.html)."""
    return [(f.name, f.dataType.simpleString()) for f in schema.fields if f.name not in set(without)]


class SchemaConflict(RuntimeError):
    """A processed table cannot take this run's layout without breaking what earlier runs wrote."""


# How often put_table reads the table again after another writer changed it under it.
PUT_ATTEMPTS = 8


def put_table(glue: Any, database: str, table: dict,
              merge: Callable[[dict], dict | None] = lambda existing: None,
              skip_archive: bool = False) -> str | None:
    """Create the table, or else update it to `merge(the table as it is)` (None: leave it as it
    is); returns "created", "updated" or None. Safe when several writers put the same table at
    once (a backfill runs the job several times in parallel on a new table): a CreateTable that
    loses the race (AlreadyExistsException) merges into the winner's table instead, and each
    UpdateTable names the version it merged into (VersionId), so a writer that changed the table
    meanwhile makes it fail with ConcurrentModificationException and it is read and merged
    again: no writer's columns are lost to another's ("UpdateTable", Glue API reference: VersionId
    "The version ID at which to update the table contents"). `skip_archive`: no archived table
    version for the update (UpdateTable's SkipArchive)."""
    for _ in range(PUT_ATTEMPTS):
        try:
            existing = glue.get_table(DatabaseName=database, Name=table["Name"])["Table"]
        except glue.exceptions.EntityNotFoundException:
            try:
                glue.create_table(DatabaseName=database, TableInput=table)
                return "created"
            except glue.exceptions.AlreadyExistsException:
                continue  # created meanwhile by another writer: merge into it
        wanted = merge(existing)
        if wanted is None:
            return None
        version = {"VersionId": existing["VersionId"]} if existing.get("VersionId") else {}
        try:
            glue.update_table(DatabaseName=database, TableInput=wanted, SkipArchive=skip_archive, **version)
            return "updated"
        except glue.exceptions.ConcurrentModificationException:
            continue  # another writer updated it first: read its version and merge again
    raise RuntimeError(f"{database}.{table['Name']}: still changed by other writers after "
                       f"{PUT_ATTEMPTS} attempts")


def drop_run_partitions(glue: Any, database: str, table: str, run_id: str) -> int:
    """Delete the run's partitions of the table (found by a run_id Expression); returns how many."""
    try:
        pages = glue.get_paginator("get_partitions").paginate(
            DatabaseName=database, TableName=table, Expression=f"run_id = '{run_id}'")
        values = [p["Values"] for page in pages for p in page["Partitions"]]
    except glue.exceptions.EntityNotFoundException:
        return 0
    for start in range(0, len(values), 25):  # BatchDeletePartition: at most 25 a call
        glue.batch_delete_partition(DatabaseName=database, TableName=table,
                                    PartitionsToDelete=[{"Values": v} for v in values[start:start + 25]])
    return len(values)


def _layout(table: dict) -> tuple:
    descriptor = table["StorageDescriptor"]
    return ([(c["Name"], c["Type"]) for c in descriptor["Columns"]],
            [(k["Name"], k["Type"]) for k in table.get("PartitionKeys", [])],
            descriptor.get("InputFormat"), descriptor.get("SerdeInfo", {}).get("SerializationLibrary"))


def widened(existing: dict, new: dict) -> dict | None:
    """The processed table `new` merged into `existing` so that its schema only widens: every
    column either had stays (a run without it must not hide the earlier runs' values from
    Athena), a column in both takes the type that holds both (hive_types.widen), new columns are
    appended, the format is the newest run's (each partition keeps its own). None when the result
    is the existing table. A change of partition keys cannot be merged: SchemaConflict."""
    old_keys = [k["Name"] for k in existing.get("PartitionKeys", [])]
    new_keys = [k["Name"] for k in new.get("PartitionKeys", [])]
    if [k.lower() for k in old_keys] != [k.lower() for k in new_keys]:
        raise SchemaConflict(
            f"processed table {new['Name']} is partitioned by {', '.join(old_keys)}; this run writes "
            f"{', '.join(new_keys)} (was partition_granularity or the raw folders' layout changed?). "
            f"Set it back, or delete the processed table (its files stay) so the next run registers it anew")
    columns = {c["Name"].lower(): (c["Name"], c["Type"]) for c in existing["StorageDescriptor"]["Columns"]}
    for column in new["StorageDescriptor"]["Columns"]:
        kept = columns.get(column["Name"].lower())
        name, hive_type = column["Name"], column["Type"]
        columns[name.lower()] = (kept[0], hive_types.widen(kept[1], hive_type)) if kept else (name, hive_type)
    merged = {**new, "StorageDescriptor": {**new["StorageDescriptor"],
                                          "Columns": [{"Name": n, "Type": t} for n, t in columns.values()]}}
    return None if _layout(existing) == _layout(merged) else merged


def put_processed_table(glue: Any, database: str, table: str, location: str, columns: list[tuple[str, str]],
                        partition_keys: list[str], output_format: str) -> None:
    """Create the processed table, or widen it (`widened`; no archived version per run). Its
    partitions are registered after the run's commit point, from the run's output records
    (ledger.outputs.register_recorded), each with this storage descriptor at the folder Spark
    wrote: until then no query reads a row of the run."""
    processed = table_input(table, location, columns, partition_keys, output_format,
                            serde=OUTPUT_SERDES.get(output_format))
    put_table(glue, database, processed, merge=lambda existing: widened(existing, processed),
              skip_archive=True)
