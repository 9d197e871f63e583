"""A processed table as a run leaves it, for tests that need one: the table put before the run's
commit point (catalog.put_processed_table), its partitions added after it as
ledger.outputs.register_recorded adds them (the table's storage descriptor, at the folders Spark
writes)."""

from __future__ import annotations

from typing import Any

from ledger.catalog_partitions import add_partitions
from sluice_glue import catalog


def register(glue: Any, database: str, table: str, location: str, columns: list[tuple[str, str]],
             keys: list[str], partitions: list[list[str | None]], output_format: str,
             run_id: str | None = None) -> int:
    """Returns how many partitions were new."""
    catalog.put_processed_table(glue, database, table, location, columns, keys, output_format)
    stored = glue.get_table(DatabaseName=database, Name=table)["Table"]
    return add_partitions(glue, database, stored, {
        tuple(values): location + catalog.partition_path(keys, values) for values in partitions},
        expression=f"run_id = '{run_id}'" if run_id else None)
