"""One table's part of a run: its files read, its rows written and published, its processed
table put. job.run calls `process_table` once per table of the run; a table that raises fails
alone (job.run gives its files back and discards what it left).

Output goes to s3://<processed>/<table>/<raw partition keys>/<date parts>/run_id=<run_id>/.
Partitioning by run id last is what makes a retried attempt of the same run replace its own
output and nothing else: the run's folders are emptied just before its rows are written
(storage.clear), and the large path overwrites only its own partitions (table_write.py, dynamic
partition overwrite); locally the output is uploaded after the same delete. Bad rows go to
s3://<processed>/_quarantine/<table>/run_id=<run_id>/ as JSON lines with the source file and the
reason; so do files that cannot be read whole (a truncated gzip stream), as one record each. The
run's output record for the table (ledger/outputs.py) is written before its first row; its
partitions are registered only after the run's commit point (job.run).
"""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ledger import FileRef, FileSummary, RowCounts, TableSummary
from ledger.outputs import PartitionOutput, TableOutputs, record_outputs
from sluice_glue import catalog, datasets, file_routes, raw_files, transforms
from sluice_glue.arguments import JobArguments
from sluice_glue.datasets import DatasetSettings, SettingsError
from sluice_glue.output import (
    EMPTY_FILE,
    BeforeWrite,
    OutputRoots,
    RawRows,
    RunFiles,
    WritePlan,
    quarantine_prefix,
    run_dir,
)
from sluice_glue.runlog import RunLog
from sluice_glue.sizing import RunSize, input_bytes
from sluice_glue.storage import Storage, client, concurrently
from sluice_glue.table_write import write_table


@dataclass(frozen=True)
class RunContext:
    """The run as each of its tables sees it: the job's arguments, Spark, where it reads and
    writes, the Glue client, the run's log, and the manifest's time (rows without a timestamp
    column are placed by it)."""

    spark: SparkSession
    args: JobArguments
    storage: Storage
    glue: Any
    log: RunLog
    ingest_time: datetime

    @cached_property
    def datasets_file(self) -> datasets.DatasetFile:
        """datasets.toml, read once per run (attempt): a run sees one version of it throughout.
        An invalid file raises for each table (each fails alone), and is read again by the next."""
        return datasets.fetch(client("s3"), self.args.datasets_uri)


@dataclass
class TableWritten:
    """One table's part of the run summary."""

    table: TableSummary
    files: list[FileSummary]
    output_partitions: list[str]


@dataclass(frozen=True)
class TableRead:
    """A table's rows as read, the settings they are written with, and the files left out
    (index -> why), quarantined whole."""

    rows: RawRows
    settings: DatasetSettings
    unreadable: dict[int, str]


def process_table(run: RunContext, table: dict, refs: list[FileRef]) -> TableWritten:
    """Read the table's files, write its rows and quarantine, publish them, and put its processed
    table (its schema now; its partitions after the commit point)."""
    name, args, storage, log = table["Name"], run.args, run.storage, run.log
    with log.phase("read", spark=True, table=name):  # planning, and the Spark jobs the checks run
        read = _read(run, table, refs)
    rows, settings = read.rows, read.settings
    with log.phase("lookup", spark=True, table=name):
        lookup, broadcast = _lookup(run, name, settings, [n for n, _ in rows.columns] + rows.partition_keys)
    quarantine = quarantine_prefix(name, args.run_id)
    size = RunSize.of(input_bytes(refs), run.spark.sparkContext.defaultParallelism)
    with log.phase("write", spark=True, table=name, tasks=size.tasks, small=size.small):
        out = write_table(run.spark, rows,
                          RunFiles(args.run_id, {i: ref.uri for i, ref in enumerate(refs)}, run.ingest_time,
                                   read.unreadable),
                          WritePlan(settings, size, lookup, broadcast),
                          OutputRoots(storage.output_root(args.processed_bucket, f"{name}/"),
                                      storage.output_root(args.processed_bucket, quarantine)),
                          _before_write(run, name, quarantine))
    run_dirs = out.run_dirs
    with log.phase("publish", table=name, partitions=len(run_dirs)):
        storage.publish(args.processed_bucket, f"{name}/", run_dirs)
        storage.publish(args.processed_bucket, quarantine, [""])
    with log.phase("table", table=name):  # its schema now; its partitions after the commit point
        catalog.put_processed_table(run.glue, args.processed_database, name,
                                    f"s3://{args.processed_bucket}/{name}/", out.good_schema,
                                    out.partition_by, settings.output_format)
    files = [FileSummary(ref.uri, ref.file_id, name, out.counts.get(i, RowCounts(0, 0, 0, 0)),
                         note=None if i in out.counts else read.unreadable.get(i, EMPTY_FILE))
             for i, ref in enumerate(refs)]
    log.event("table", table=name, files=len(refs), unreadable=len(read.unreadable), partitions=len(run_dirs),
              rows_in=sum(c.rows_in for c in out.counts.values()),
              rows_out=sum(c.rows_out for c in out.counts.values()),
              rows_bad=sum(c.rows_bad for c in out.counts.values()),
              rows_duplicate=sum(c.rows_duplicate for c in out.counts.values()))
    return TableWritten(
        TableSummary(files=len(refs), partitions_written=len(run_dirs), partitions_new=len(run_dirs),
                     quarantine=f"s3://{args.processed_bucket}/{quarantine}"),
        files, [f"s3://{args.processed_bucket}/{name}/{d}/" for d in run_dirs])


def _read(run: RunContext, table: dict, refs: list[FileRef]) -> TableRead:
    """The table's files staged, routed (file_routes.py), checked whole before any is read, and
    read as its catalog table describes them (raw_files.py), with its raw partition values."""
    name, storage, log, spark = table["Name"], run.storage, run.log, run.spark
    raw = raw_files.layout(table, datasets.csv_header(run.datasets_file, name))
    with log.phase("stage", table=name, files=len(refs)):
        paths = storage.inputs(refs)
    read_paths = {i: storage.read_path(ref) for i, ref in enumerate(refs)}
    with log.phase("headers", table=name, files=len(refs)):
        heads = _heads(storage, refs, raw)
    routes = [file_routes.route(i, ref.key, read_paths[i], raw.kind, heads.get(i))
              for i, ref in enumerate(refs)]
    with log.phase("check_gzip", spark=True, table=name):
        unreadable = file_routes.unreadable_gzip(spark, {r.index: r.path for r in routes if r.how == "spark"})
        streamed = file_routes.checked(spark, [r for r in routes if r.how == "stream"])
    unreadable |= {r.index: r.reason for r in routes if r.how == "unreadable"}
    unreadable |= {i: problem for i, (problem, _) in streamed.items() if problem}
    routes = [r for r in routes if r.index not in unreadable]
    names = {r.index: raw_files.header_names(_first_line(r, heads, streamed), raw.delimiter, raw.quote)
             for r in routes} if raw.kind == "csv" else {}
    read_columns = raw_files.effective_columns(raw, names)
    catalog_keys = [k["Name"] for k in table.get("PartitionKeys", [])]
    # One rule for the names the job adds (transforms.reserved_renames): a raw column or
    # partition key named like one is kept as raw_<name>, never overwritten nor duplicated.
    renames = transforms.reserved_renames([n for n, _ in read_columns] + catalog_keys)
    columns = [(renames.get(n, n), t) for n, t in read_columns]
    partition_keys = [renames.get(k, k) for k in catalog_keys]
    settings = settings_for(run, {**table, "StorageDescriptor": {
        **table["StorageDescriptor"], "Columns": [{"Name": n, "Type": t} for n, t in columns]},
        "PartitionKeys": [{"Name": k, "Type": "string"} for k in partition_keys]})
    raw_rows = raw_files.read(spark, raw, read_columns, routes, names,
                              lambda df: transforms.with_file_index(df, paths), renames)
    location = table["StorageDescriptor"]["Location"].rstrip("/") + "/"
    folders = {i: ref.uri[len(location):].split("/")[:-1] for i, ref in enumerate(refs)}
    raw_rows = transforms.with_partition_values(raw_rows, partition_keys, {
        i: dict(zip(partition_keys, catalog.file_partition_values(catalog_keys, folders[i]), strict=True))
        for i in folders})
    return TableRead(RawRows(raw_rows, columns, partition_keys), settings, unreadable)


def settings_for(run: RunContext, table: dict) -> DatasetSettings:
    """The table's settings: its datasets.toml section over the job's arguments (the template's
    parameters), those naming a column the table lacks left out. `table` holds the columns as
    this run reads them (a CSV's header names, reserved names renamed). A SettingsError (the file
    is invalid, or the section names a column the table lacks) fails this table alone."""
    columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    columns += [k["Name"] for k in table.get("PartitionKeys", [])]
    settings, _ = datasets.resolve(run.datasets_file, table["Name"], columns, run.args.defaults,
                                   run.args.artifacts_bucket)
    return settings


def _before_write(run: RunContext, name: str, quarantine: str) -> BeforeWrite:
    """What discarding or finishing the run must know, recorded before any row is written; then
    the run's folders emptied (storage.clear)."""
    args, storage = run.args, run.storage

    def before_write(partition_by: list[str], partitions: list[tuple[str | None, ...]]) -> None:
        record_outputs(storage.s3, args.artifacts_bucket, args.run_id, TableOutputs(name, [
            PartitionOutput([v or catalog.DEFAULT_PARTITION_NAME for v in values],  # Spark's folder name
                            f"{name}/{run_dir(partition_by, values)}/") for values in partitions],
            quarantine))
        storage.clear(args.processed_bucket, f"{name}/", [run_dir(partition_by, v) for v in partitions])

    return before_write


def _first_line(route: file_routes.FileRoute, heads: dict[int, bytes],
                streamed: dict[int, tuple[str | None, str]]) -> str:
    if route.how == "stream":
        return streamed[route.index][1]
    head = heads[route.index]
    return file_routes.first_line(head, file_routes.compression(head))


def _heads(storage: Storage, refs: list[FileRef], raw: raw_files.RawLayout) -> dict[int, bytes]:
    """The first bytes of the files whose start the read needs: every CSV file (its header, and
    its compression), and the files of a compressed table whose names do not say the codec (the
    crawler classifies by content; Spark decompresses by name). One GET each, through the pool."""
    wanted = [i for i, ref in enumerate(refs) if raw.kind == "csv" or (
        raw.kind == "json" and raw.compressed and not ref.key.lower().endswith(file_routes.CODEC_EXTENSIONS))]
    return dict(zip(wanted, concurrently(lambda i: storage.head(refs[i]), wanted), strict=True))


def _lookup(run: RunContext, name: str, settings: DatasetSettings,
            table_columns: list[str]) -> tuple[DataFrame | None, bool]:
    """The lookup table, and whether it is small enough to broadcast (its size under Spark's
    spark.sql.autoBroadcastJoinThreshold; a larger one is joined by a shuffle, not shipped to
    every task). Refused (SettingsError, the table fails alone) when its key is missing or not
    unique (each row would be written once per match, after it was counted once), and when a
    column of it other than the key has a table column's name or one the job adds (the join
    would fail, or hide one) and the table's own section names the lookup. A lookup that comes
    from the template's defaults does not apply to a table it clashes with, as a default naming
    a column the table lacks does not (datasets.resolve): a default never fails a table."""
    if not settings.lookup_uri:
        return None, False
    spark = run.spark
    threshold = spark._jsparkSession.sessionState().conf().autoBroadcastJoinThreshold()
    where, key = f"lookup {settings.lookup_uri}", settings.lookup_key
    bucket, object_key = settings.lookup_uri.removeprefix("s3://").split("/", 1)
    got = run.storage.s3.get_object(Bucket=bucket, Key=object_key)  # its size, and its body when small
    small = got["ContentLength"] <= threshold
    body = got["Body"].read() if small else b""
    got["Body"].close()
    path = run.storage.fetch(settings.lookup_uri)
    if small:  # checked in the driver: two Spark jobs fewer, ~0.3 s of a small run's ~1.5 s
        columns, keys = _small_lookup(body, settings.lookup_uri, key, where)
        schema = ", ".join(f"`{c}` string" for c in columns)  # the header as read: no Spark job to infer it
        frame = (spark.read.parquet(path) if settings.lookup_uri.endswith(".parquet") else
                 spark.read.schema(schema).option("header", True).csv(path))
    else:
        frame = (spark.read.parquet(path) if settings.lookup_uri.endswith(".parquet")
                 else spark.read.option("header", True).csv(path))
        columns = frame.columns
        if key.lower() not in {c.lower() for c in columns}:
            raise SettingsError(f"{where} has no column {key!r} (its columns: {', '.join(columns)})")
    taken = {c.lower() for c in table_columns} | set(transforms.RESERVED)
    clashes = [c for c in columns if c.lower() != key.lower() and c.lower() in taken]
    if clashes and "lookup_uri" not in run.datasets_file.explicit(name):
        run.log.event("default lookup not applied", level=logging.WARNING, table=name,
                      lookup=settings.lookup_uri, clashing_columns=clashes)
        return None, False
    if clashes:
        raise SettingsError(f"{where}: its columns {', '.join(clashes)} have the names of the table's "
                            f"columns or of columns the job adds; rename them in the lookup file")
    repeated = ([value for value, n in keys.most_common(5) if n > 1] if small else
                [r[0] for r in frame.groupBy(key).count().filter(F.col("count") > 1).limit(5).collect()])
    if repeated:
        raise SettingsError(f"{where} has more than one row for {key} "
                            f"{', '.join(repr(v) for v in repeated)}: a lookup key must be unique")
    # Spark broadcasts a relation whose size (a file's, for a file source) is under the threshold.
    return frame, small


def _small_lookup(body: bytes, uri: str, key: str, where: str) -> tuple[list[str], Counter]:
    """A lookup file small enough to broadcast, read in the driver: its columns and how often each
    key value occurs (an empty CSV value counts as null, as Spark reads it)."""
    if uri.endswith(".parquet"):
        table = pq.read_table(io.BytesIO(body))
        columns = table.column_names
        values: list[Any] = []
        if key.lower() in {c.lower() for c in columns}:
            values = table.column(next(c for c in columns if c.lower() == key.lower())).to_pylist()
    else:
        rows = csv.reader(io.StringIO(body.decode("utf-8-sig")))
        columns = next(rows, [])
        index = next((i for i, c in enumerate(columns) if c.lower() == key.lower()), None)
        values = [(row[index] or None) if index is not None and index < len(row) else None
                  for row in rows if row] if index is not None else []
    if key.lower() not in {c.lower() for c in columns}:
        raise SettingsError(f"{where} has no column {key!r} (its columns: {', '.join(columns)})")
    return columns, Counter(values)
