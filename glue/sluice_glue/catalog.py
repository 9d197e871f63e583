"""The Glue Data Catalog: the raw tables the crawler wrote, and the processed tables we write."""

from __future__ import annotations

from typing import Any

from ledger import FileRef

HIVE_TO_SPARK = {"string": "string", "bigint": "bigint", "int": "int", "double": "double",
                 "float": "float", "boolean": "boolean", "timestamp": "timestamp", "date": "date"}
SPARK_TO_HIVE = {"StringType": "string", "LongType": "bigint", "IntegerType": "int",
                 "DoubleType": "double", "FloatType": "float", "BooleanType": "boolean",
                 "TimestampType": "timestamp", "DateType": "date"}


def raw_tables(glue: Any, database: str) -> list[dict]:
    return [t for page in glue.get_paginator("get_tables").paginate(DatabaseName=database)
            for t in page["TableList"]]


def table_for(ref: FileRef, tables: list[dict]) -> dict | None:
    """The table whose location is the longest prefix of the file's URI (None: not catalogued)."""
    matches = [t for t in tables if ref.uri.startswith(t["StorageDescriptor"]["Location"].rstrip("/") + "/")]
    if not matches:
        return None
    return max(matches, key=lambda t: len(t["StorageDescriptor"]["Location"]))


def register(glue: Any, database: str, table: str, location: str, columns: list[tuple[str, str]],
             partition_keys: list[str], partitions: list[list[str]], output_format: str) -> int:
    """Create or update the processed table, add its new partitions; returns how many were new."""
    if output_format == "parquet":
        formats = ("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                   "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                   "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")
    else:
        formats = ("org.apache.hadoop.mapred.TextInputFormat",
                   "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                   "org.openx.data.jsonserde.JsonSerDe")
    descriptor = {"Columns": [{"Name": n, "Type": t} for n, t in columns], "Location": location,
                  "InputFormat": formats[0], "OutputFormat": formats[1],
                  "SerdeInfo": {"SerializationLibrary": formats[2]}}
    table_input = {"Name": table, "TableType": "EXTERNAL_TABLE", "StorageDescriptor": descriptor,
                   "PartitionKeys": [{"Name": k, "Type": "string"} for k in partition_keys],
                   "Parameters": {"classification": output_format}}
    try:
        glue.get_table(DatabaseName=database, Name=table)
        glue.update_table(DatabaseName=database, TableInput=table_input)
    except glue.exceptions.EntityNotFoundException:
        glue.create_table(DatabaseName=database, TableInput=table_input)
    existing = {tuple(p["Values"]) for page in glue.get_paginator("get_partitions").paginate(
        DatabaseName=database, TableName=table) for p in page["Partitions"]}
    new = [values for values in partitions if tuple(values) not in existing]
    inputs = [{"Values": values, "StorageDescriptor": {**descriptor, "Location": location + "/".join(
        f"{k}={v}" for k, v in zip(partition_keys, values, strict=True)) + "/"}} for values in new]
    for start in range(0, len(inputs), 100):
        glue.batch_create_partition(DatabaseName=database, TableName=table,
                                    PartitionInputList=inputs[start:start + 100])
    return len(new)
