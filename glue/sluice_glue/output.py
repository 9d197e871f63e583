"""One table's write as both write paths see it (table_write.py, the large one; small_write.py):
what a write is given, named by what each part is, what it gives back, and the output layout
they share.

A write is given the rows (`RawRows`: the raw frame, its columns, its raw partition keys), the
run they belong to (`RunFiles`: run id, the files' URIs, ingest time, unreadable files), how to
write them (`WritePlan`: settings, size, lookup) and where (`OutputRoots`), and a `BeforeWrite`
hook; it gives back a `TableOutput`. Each output partition is one folder per run,
`<partition keys>/<date parts>/run_id=<run>` (`run_dir`), the run's quarantine one folder per
table (`quarantine_prefix`).

    >>> run_dir(["year", "month", "run_id"], ("2026", "11", "run-1"))
    'year=2026/month=11/run_id=run-1'
    >>> quarantine_prefix("orders", "run-1")
    '_quarantine/orders/run_id=run-1/'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pyspark.sql import DataFrame

from ledger import RowCounts
from sluice_glue import catalog, transforms
from sluice_glue.datasets import DatasetSettings
from sluice_glue.sizing import RunSize

# A file's note in the run summary when it gave no rows, and its quarantine record's reason.
EMPTY_FILE = "no data rows (empty, header only, or unreadable)"
# What a write calls just before any row is written: (partition columns, the partitions' values).
BeforeWrite = Callable[[list[str], list[tuple[str | None, ...]]], None]


def nothing_before_write(partition_by: list[str], partitions: list[tuple[str | None, ...]]) -> None:
    """The default BeforeWrite: nothing to record, nothing to empty."""


@dataclass(frozen=True)
class RawRows:
    """The rows to write, as read (raw_files.read): every column a string, with `_file` and
    `_corrupt`; `columns` are [(name, catalog type)], `partition_keys` the raw table's partition
    columns (strings), which the output keeps before its date parts."""

    frame: DataFrame
    columns: list[tuple[str, str]]
    partition_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunFiles:
    """The run the rows belong to: its id, its files' URIs by manifest index, the time a row is
    placed by when the table has no timestamp column (the manifest's), and the files left out of
    the read (index -> why), quarantined whole."""

    run_id: str
    uris: dict[int, str]
    ingest_time: datetime | None = None
    unreadable: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WritePlan:
    """How to write: the table's settings; its size (sizing.RunSize: the shuffle's width, the
    cache's codec, the small-run path; None: every core, an uncompressed cache, the large path);
    the lookup table joined onto every row, broadcast when it is small."""

    settings: DatasetSettings
    size: RunSize | None = None
    lookup: DataFrame | None = None
    broadcast: bool = True


@dataclass(frozen=True)
class OutputRoots:
    """Where to write: the table's output root and the run's quarantine folder for it
    (s3://... on Glue, a local folder that storage publishes otherwise)."""

    table: str
    quarantine: str


@dataclass
class TableOutput:
    """What one table's write produced: row counts by manifest index, and the output partitions
    (values of the partition columns, in order) that received rows."""

    counts: dict[int, RowCounts]
    partitions: list[tuple[str, ...]]
    partition_by: list[str]
    good_schema: list[tuple[str, str]]

    @property
    def run_dirs(self) -> list[str]:
        """Each partition's folder under the table: year=2026/month=11/day=24/run_id=<run>."""
        return [run_dir(self.partition_by, values) for values in self.partitions]


def partition_columns(partition_keys: list[str], settings: DatasetSettings) -> list[str]:
    """The output's partition columns: the raw table's keys, the date parts, the run id last (so
    a retried attempt of a run replaces its own output and nothing else)."""
    return [*partition_keys, *settings.date_parts, "run_id"]


def run_dir(partition_by: list[str], values: tuple[str | None, ...]) -> str:
    """The folder Spark writes a partition to, as Spark escapes it (catalog.partition_path)."""
    return catalog.partition_path(partition_by, values).rstrip("/")


def quarantine_prefix(table: str, run_id: str) -> str:
    """The run's quarantine folder for a table, under the processed bucket."""
    return f"_quarantine/{table}/run_id={run_id}/"


def output_rows(rows: DataFrame, run: RunFiles, plan: WritePlan) -> DataFrame:
    """Rows as they are written, whichever path writes them: their output partition's columns,
    the ingest time, the source file's URI, and the lookup's columns."""
    settings = plan.settings
    return transforms.enriched(
        transforms.with_output_partition(rows, run.run_id, "_bucket", settings.date_parts),
        run.uris, plan.lookup, settings.lookup_key, plan.broadcast)


def file_counts(stats: list[Any], partition_by: list[str],
                ) -> tuple[dict[int, RowCounts], set[tuple[str, ...]]]:
    """Row counts by manifest index, and the output partitions that received rows, from rows of
    (_file, the partition columns, rows_in, rows_bad, rows_duplicate): one per file and output
    partition. Rows whose file no manifest path decodes to fail the table (its files go back with
    the reason, where counting on would mark one DONE with 0 rows)."""
    if orphans := sum(row["rows_in"] for row in stats if row["_file"] is None):
        raise RuntimeError(f"{orphans} rows came from a file Spark names as no file of the manifest")
    counts: dict[int, RowCounts] = {}
    partitions: set[tuple[str, ...]] = set()
    for row in stats:
        part = RowCounts(row["rows_in"], row["rows_in"] - row["rows_bad"] - row["rows_duplicate"],
                         row["rows_bad"], row["rows_duplicate"])
        counts[row["_file"]] = counts.get(row["_file"], RowCounts(0, 0, 0)) + part
        if part.rows_out:
            partitions.add(tuple(row[c] for c in partition_by))
    return counts, partitions
