"""The Glue Data Catalog: the raw tables the crawler wrote, and the processed tables we write.

This is the one catalog writer: the job registers its processed tables with it, and the local
runtime's crawler (sluice.aws.glue_crawler) writes the raw tables with it.

    >>> partition_values(["region=eu", "2026", "day=25"])
    [('region', 'eu'), ('day', '25')]
    >>> table_input("orders", "s3://raw/orders/", [("id", "bigint")], ["region"], "parquet")["Parameters"]
    {'classification': 'parquet'}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from ledger import FileRef


class StorageFormat(NamedTuple):
    input_format: str
    output_format: str
    serde: str


_TEXT = ("org.apache.hadoop.mapred.TextInputFormat",
         "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat")
# The classes Glue and Athena name for each format (Athena, "Choose a SerDe for your data":
# https://docs.aws.amazon.com/athena/latest/ug/supported-serdes.html; LazySimpleSerDe is the
# unquoted-CSV one, https://docs.aws.amazon.com/athena/latest/ug/lazy-simple-serde.html).
FORMATS = {
    "csv": StorageFormat(*_TEXT, "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"),
    "json": StorageFormat(*_TEXT, "org.openx.data.jsonserde.JsonSerDe"),
    "parquet": StorageFormat("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                             "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                             "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"),
}
# BatchCreatePartition takes at most 100 PartitionInputs a call
# (https://docs.aws.amazon.com/glue/latest/webapi/API_BatchCreatePartition.html).
PARTITIONS_PER_CALL = 100


def partition_values(folders: Iterable[str]) -> list[tuple[str, str]]:
    """The Hive partitions (key, value) of an object's folders, in order: each `k=v` folder."""
    return [(key, value) for key, _, value in (f.partition("=") for f in folders if "=" in f)]


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
                serde_parameters: Mapping[str, str] | None = None) -> dict:
    """The TableInput of an external table of `kind` (csv, json, parquet) files at `location`;
    `columns` are [(name, hive type)] without the partition keys, which are strings."""
    storage = FORMATS[kind]
    descriptor = {"Columns": [{"Name": n, "Type": t} for n, t in columns], "Location": location,
                  "InputFormat": storage.input_format, "OutputFormat": storage.output_format,
                  "SerdeInfo": {"SerializationLibrary": storage.serde,
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


def put_table(glue: Any, database: str, table: dict,
              update_if: Callable[[dict], bool] = lambda existing: True,
              skip_archive: bool = False) -> str | None:
    """Create the table, or update it if `update_if(the table as it is)`; returns "created",
    "updated" or None (left as it was). `skip_archive`: no archived table version for the update
    (UpdateTable's SkipArchive, https://docs.aws.amazon.com/glue/latest/webapi/API_UpdateTable.html)."""
    try:
        existing = glue.get_table(DatabaseName=database, Name=table["Name"])["Table"]
    except glue.exceptions.EntityNotFoundException:
        glue.create_table(DatabaseName=database, TableInput=table)
        return "created"
    if not update_if(existing):
        return None
    glue.update_table(DatabaseName=database, TableInput=table, SkipArchive=skip_archive)
    return "updated"


class PartitionError(RuntimeError):
    """BatchCreatePartition refused partitions: it reports them in Errors and does not raise."""


def add_partitions(glue: Any, database: str, table: dict, locations: Mapping[tuple[str, ...], str],
                   expression: str | None = None) -> int:
    """Add the partitions (values -> location) the table does not have yet, with the table's
    storage descriptor; returns how many were new. `expression` (a GetPartitions Expression
    that covers every one of `locations`) limits the listing of existing partitions to those.

    BatchCreatePartition answers failures in its Errors list, per partition, without raising
    (https://docs.aws.amazon.com/glue/latest/webapi/API_BatchCreatePartition.html): any but
    AlreadyExistsException (a partition registered meanwhile, by a retried attempt) raises."""
    name = table["Name"]
    listing = {"Expression": expression} if expression else {}
    existing = {tuple(p["Values"]) for page in glue.get_paginator("get_partitions").paginate(
        DatabaseName=database, TableName=name, **listing) for p in page["Partitions"]}
    descriptor = table["StorageDescriptor"]
    new = [{"Values": list(values), "StorageDescriptor": {**descriptor, "Location": location}}
           for values, location in sorted(locations.items()) if tuple(values) not in existing]
    for start in range(0, len(new), PARTITIONS_PER_CALL):
        answer = glue.batch_create_partition(DatabaseName=database, TableName=name,
                                             PartitionInputList=new[start:start + PARTITIONS_PER_CALL])
        errors = [e for e in answer.get("Errors", [])
                  if e.get("ErrorDetail", {}).get("ErrorCode") != "AlreadyExistsException"]
        if errors:
            raise PartitionError(f"{database}.{name}: " + "; ".join(
                f"{e.get('PartitionValues')}: {e['ErrorDetail'].get('ErrorCode')} "
                f"{e['ErrorDetail'].get('ErrorMessage', '')}".strip() for e in errors))
    return len(new)


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


def register(glue: Any, database: str, table: str, location: str, columns: list[tuple[str, str]],
             partition_keys: list[str], partitions: list[list[str]], output_format: str,
             run_id: str | None = None) -> int:
    """Create the processed table, or update it only when its columns, partition keys or format
    changed (without archiving a version per run); add the run's new partitions. Only this
    run's partitions are listed (`run_id`, the last partition key): a table's other partitions
    only grow. Returns how many partitions were new."""
    processed = table_input(table, location, columns, partition_keys, output_format)
    put_table(glue, database, processed, update_if=lambda existing: _layout(existing) != _layout(processed),
              skip_archive=True)
    return add_partitions(glue, database, processed, {
        tuple(values): location + "".join(f"{k}={v}/" for k, v in zip(partition_keys, values, strict=True))
        for values in partitions}, expression=f"run_id = '{run_id}'" if run_id else None)
