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

SPARK_TO_HIVE = {"StringType": "string", "LongType": "bigint", "IntegerType": "int",
                 "DoubleType": "double", "FloatType": "float", "BooleanType": "boolean",
                 "TimestampType": "timestamp", "DateType": "date"}


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


def put_table(glue: Any, database: str, table: dict,
              update_if: Callable[[dict], bool] = lambda existing: True) -> str | None:
    """Create the table, or update it if `update_if(the table as it is)`; returns "created",
    "updated" or None (left as it was)."""
    try:
        existing = glue.get_table(DatabaseName=database, Name=table["Name"])["Table"]
    except glue.exceptions.EntityNotFoundException:
        glue.create_table(DatabaseName=database, TableInput=table)
        return "created"
    if not update_if(existing):
        return None
    glue.update_table(DatabaseName=database, TableInput=table)
    return "updated"


def add_partitions(glue: Any, database: str, table: dict, locations: Mapping[tuple[str, ...], str]) -> int:
    """Add the partitions (values -> location) the table does not have yet, with the table's
    storage descriptor; returns how many were new."""
    name = table["Name"]
    existing = {tuple(p["Values"]) for page in glue.get_paginator("get_partitions").paginate(
        DatabaseName=database, TableName=name) for p in page["Partitions"]}
    descriptor = table["StorageDescriptor"]
    new = [{"Values": list(values), "StorageDescriptor": {**descriptor, "Location": location}}
           for values, location in sorted(locations.items()) if tuple(values) not in existing]
    for start in range(0, len(new), PARTITIONS_PER_CALL):
        glue.batch_create_partition(DatabaseName=database, TableName=name,
                                    PartitionInputList=new[start:start + PARTITIONS_PER_CALL])
    return len(new)


def register(glue: Any, database: str, table: str, location: str, columns: list[tuple[str, str]],
             partition_keys: list[str], partitions: list[list[str]], output_format: str) -> int:
    """Create or update the processed table, add its new partitions; returns how many were new."""
    processed = table_input(table, location, columns, partition_keys, output_format)
    put_table(glue, database, processed)
    return add_partitions(glue, database, processed, {
        tuple(values): location + "".join(f"{k}={v}/" for k, v in zip(partition_keys, values, strict=True))
        for values in partitions})
