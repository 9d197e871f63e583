"""Registering partitions in the Data Catalog: one rule for the Glue job (its run's partitions,
after its commit point), StartJobFunction and the local runtime (finishing a committed run whose
job died before registering them) and the local crawler (raw partitions).

    >>> DEFAULT_PARTITION_NAME
    '__HIVE_DEFAULT_PARTITION__'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# BatchCreatePartition takes at most 100 PartitionInputs a call
# (https://docs.aws.amazon.com/glue/latest/webapi/API_BatchCreatePartition.html).
PARTITIONS_PER_CALL = 100
# Spark's and Hive's folder for a null or empty partition value, and the value Hive and Athena
# read back as NULL (ExternalCatalogUtils.DEFAULT_PARTITION_NAME).
DEFAULT_PARTITION_NAME = "__HIVE_DEFAULT_PARTITION__"


class PartitionError(RuntimeError):
    """BatchCreatePartition refused partitions: it reports them in Errors and does not raise."""


def add_partitions(glue: Any, database: str, table: dict, locations: Mapping[tuple[str | None, ...], str],
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
    stored = {tuple(v or DEFAULT_PARTITION_NAME for v in values): location
              for values, location in locations.items()}  # a null or empty value: Hive's default partition
    new = [{"Values": list(values), "StorageDescriptor": {**descriptor, "Location": location}}
           for values, location in sorted(stored.items()) if values not in existing]
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
