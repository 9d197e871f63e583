"""One run of the ETL job: exactly the files of its manifest, table by table.

Output goes to s3://<processed>/<table>/<date parts>/run_id=<run_id>/. Partitioning by run id last
is what makes a retried attempt of the same run replace its own output and nothing else: the
run's own folders are emptied, then written in append mode (on Glue, the EMRFS S3-optimized
committer writes in place, with no rename), locally uploaded after the same delete. Bad rows go to s3://<processed>/_quarantine/<table>/
run_id=<run_id>/ as JSON lines with the source file and the reason; so do files that cannot be
read whole (a truncated gzip stream), as one record each. Tables are isolated: a table whose
processing fails has its files returned to the ledger with the reason and its output discarded,
and the others are written. When every table is settled, the run summary is written (the commit
point) and then each written file is marked DONE with its row counts.
"""

from __future__ import annotations

import functools
import queue
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ledger import (
    FileRef,
    FileSummary,
    ReturnedFile,
    RowCounts,
    RunManifest,
    RunSummary,
    TableSummary,
    summary_key,
)
from ledger.outputs import PartitionOutput, TableOutputs, forget_outputs, record_outputs, register_recorded
from ledger.run_table import DynamoRunRecords
from ledger.s3 import delete_prefix
from ledger.table import DynamoLedger
from sluice_glue import catalog, datasets, raw_files, small_write, transforms
from sluice_glue.arguments import JobArguments
from sluice_glue.datasets import DatasetSettings, SettingsError
from sluice_glue.runlog import RunLog
from sluice_glue.sizing import RunSize, input_bytes
from sluice_glue.storage import DRIVER_THREADS, Storage, client, concurrently, resource, unreadable_gzip

EMPTY_FILE = "no data rows (empty, header only, or unreadable)"


def _settings_for(args: JobArguments, table: dict) -> DatasetSettings:
    """The table's settings: its datasets.toml section over the job's arguments (the template's
    parameters), those naming a column the table lacks left out. `table` holds the columns as
    this run reads them (a CSV's header names, reserved names renamed). A SettingsError (the file
    is invalid, or the section names a column the table lacks) fails this table alone."""
    columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    columns += [k["Name"] for k in table.get("PartitionKeys", [])]
    settings, _ = datasets.resolve(_datasets_file(args.datasets_uri, args.run_id, args.job_run_id),
                                   table["Name"], columns, datasets.defaults_from(asdict(args)),
                                   args.artifacts_bucket)
    return settings


@functools.lru_cache(maxsize=1)
def _datasets_file(uri: str, run_id: str, job_run_id: str) -> datasets.DatasetFile:
    """datasets.toml, read once per run (attempt): a run sees one version of it throughout."""
    return datasets.fetch(client("s3"), uri)


def run(spark: SparkSession, args: JobArguments, storage: Storage, log: RunLog | None = None) -> RunSummary:
    log = log or RunLog(args.run_id)
    began = time.monotonic()
    s3, glue = client("s3"), client("glue")
    ledger_table = resource("dynamodb").Table(args.ledger_table)
    ledger = DynamoLedger(ledger_table)
    with log.phase("fence"):
        # Before anything is read or written: the run is ours only if its record lets us begin it
        # (ledger/run_record.py). A run the sweep fenced off has had its files given back, perhaps
        # to another run already: this job run ends having done nothing.
        if not DynamoRunRecords(ledger_table).begin(args.run_id, args.job_run_id or "unknown"):
            log.event("fenced_off", reason="run record ABANDONED, missing or another job run's")
            return RunSummary(run_id=args.run_id, job_run_id=args.job_run_id, fenced_off=True)
    with log.phase("manifest"):
        bucket, key = args.manifest_uri.removeprefix("s3://").split("/", 1)
        manifest = RunManifest.from_json(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        tables = catalog.raw_tables(glue, args.raw_database)
    with log.phase("claims", files=len(manifest.files)):
        held, not_held = ledger.held_by(args.run_id, manifest.files)
    if not_held:
        log.event("not_held", files=len(not_held), first=not_held[0].reason)
    groups: dict[str, list[FileRef]] = {}
    uncatalogued: list[FileRef] = []
    for ref in held:
        table = catalog.table_for(ref, tables)
        (uncatalogued if table is None else groups.setdefault(table["Name"], [])).append(ref)
    log.event("run", files=len(manifest.files), bytes=manifest.total_bytes, tables=sorted(groups))
    returned: list[ReturnedFile] = []
    if uncatalogued:  # one such file must not fail the others: it alone goes back, attempts+1
        reason = "no catalog table covers the file (the crawler has not catalogued it, or could not)"
        returned += _give_back(ledger, args, uncatalogued, reason)
    ingest_time = datetime.fromisoformat(manifest.created_at.replace("Z", "+00:00"))
    written: dict[str, TableWritten] = {}
    for name, refs in sorted(groups.items()):
        table = next(t for t in tables if t["Name"] == name)
        try:
            written[name] = _process_table(spark, args, storage, glue, table, refs, ingest_time, log)
        except Exception as error:  # this table's files go back; the run's other tables go on
            reason = f"table {name} failed: {type(error).__name__}: {error}"[:1000]
            log.event("table_failed", table=name, files=len(refs), reason=reason)
            _discard_table(storage, glue, args, name)
            returned += _give_back(ledger, args, refs, reason)
    summary = RunSummary(
        run_id=args.run_id, job_run_id=args.job_run_id,
        tables={name: w.table for name, w in written.items()},
        files=[f for w in written.values() for f in w.files],
        output_partitions=[p for w in written.values() for p in w.output_partitions],
        returned=returned, not_held=not_held, bytes=sum(ref.size for ref in held),
        duration_s=round(time.monotonic() - began, 2), quarantine=f"s3://{args.processed_bucket}/_quarantine/")
    # The summary is the run's commit point: once it exists the output is complete, so a run
    # that dies after this line is finished from it (its partitions registered from its output
    # records, the rest of its files marked DONE), and one that dies before it has its output
    # discarded and its files released. No query sees the run's rows before this point: the
    # partitions are registered only now.
    with log.phase("commit", files=len(summary.files)):
        s3.put_object(Bucket=args.artifacts_bucket, Key=summary_key(args.run_id),
                      Body=summary.to_json().encode(), ContentType="application/json")
    with log.phase("register", partitions=len(summary.output_partitions)):
        register_recorded(s3, glue, args.artifacts_bucket, args.processed_bucket, args.processed_database,
                          args.run_id)
    with log.phase("done_marks", files=len(summary.files)):
        _mark_done(args, summary.files)
    log.event("done", totals=summary.to_dict()["totals"], returned=len(returned),
              driver_ms=round(log.driver_ms), spark_ms=round(log.spark_ms))
    return summary


def _give_back(ledger: DynamoLedger, args: JobArguments, refs: list[FileRef],
               reason: str) -> list[ReturnedFile]:
    ledger.fail_run(args.run_id, args.max_attempts, reason, only={r.file_id for r in refs})
    return [ReturnedFile(r.uri, reason) for r in refs]


def _discard_table(storage: Storage, glue: Any, args: JobArguments, name: str) -> None:
    """What a failed table may have left: run folders written or published (partitions are only
    registered after the commit point), and its output record, so the run's registration leaves
    the table out."""
    storage.discard_run(args.processed_bucket, f"{name}/", args.run_id)
    delete_prefix(storage.s3, args.processed_bucket, f"_quarantine/{name}/run_id={args.run_id}/")
    forget_outputs(storage.s3, args.artifacts_bucket, args.run_id, name)


def _mark_done(args: JobArguments, files: list[FileSummary]) -> None:
    """One UpdateItem per file through a bounded pool. A boto3 resource is not thread-safe, so
    each thread borrows a ledger of its own (https://boto3.amazonaws.com/v1/documentation/api/
    latest/guide/resources.html#multithreading-or-multiprocessing-with-resources)."""
    ledgers: queue.Queue[DynamoLedger] = queue.Queue()
    for _ in range(min(DRIVER_THREADS, len(files))):
        ledgers.put(DynamoLedger(resource("dynamodb").Table(args.ledger_table)))

    def mark(entry: FileSummary) -> None:
        ledger = ledgers.get()
        try:
            if not ledger.mark_done(args.run_id, entry.file_id, entry.counts):
                raise RuntimeError(f"ledger refused DONE for {entry.file_id}: not claimed by {args.run_id}")
        finally:
            ledgers.put(ledger)

    concurrently(mark, files)


def _lookup(spark: SparkSession, settings: DatasetSettings, storage: Storage,
            table_columns: list[str]) -> tuple[DataFrame | None, bool]:
    """The lookup table, and whether it is small enough to broadcast (its size under Spark's
    spark.sql.autoBroadcastJoinThreshold; a larger one is joined by a shuffle, not shipped to
    every task). Refused (SettingsError, the table fails alone) when a column of it other than
    the key has a table column's name or one the job adds (the join would fail, or hide one),
    or when its key is not unique: each row would be written once per match, after it was
    counted once."""
    if not settings.lookup_uri:
        return None, False
    path = storage.fetch(settings.lookup_uri)
    frame = (spark.read.parquet(path) if settings.lookup_uri.endswith(".parquet")
             else spark.read.option("header", True).csv(path))
    where, key = f"lookup {settings.lookup_uri}", settings.lookup_key
    if key.lower() not in {c.lower() for c in frame.columns}:
        raise SettingsError(f"{where} has no column {key!r} (its columns: {', '.join(frame.columns)})")
    taken = {c.lower() for c in table_columns} | set(transforms.RESERVED)
    clashes = [c for c in frame.columns if c.lower() != key.lower() and c.lower() in taken]
    if clashes:
        raise SettingsError(f"{where}: its columns {', '.join(clashes)} have the names of the table's "
                            f"columns or of columns the job adds; rename them in the lookup file")
    repeated = frame.groupBy(key).count().filter(F.col("count") > 1).limit(5).collect()
    if repeated:
        raise SettingsError(f"{where} has more than one row for {key} "
                            f"{', '.join(repr(r[0]) for r in repeated)}: a lookup key must be unique")
    estimate = frame._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()  # a Scala BigInt
    size = estimate if isinstance(estimate, int) else int(estimate.toString())  # py4j may convert it
    return frame, 0 <= size <= spark._jsparkSession.sessionState().conf().autoBroadcastJoinThreshold()


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


# What write_table calls just before any row is written: (partition keys, the partitions' values).
BeforeWrite = Callable[[list[str], list[tuple[str | None, ...]]], None]


def run_dir(partition_by: list[str], values: tuple[str | None, ...]) -> str:
    """The folder Spark writes a partition to, as Spark escapes it (catalog.partition_path)."""
    return catalog.partition_path(partition_by, values).rstrip("/")


def prepared(raw: DataFrame, columns: list[tuple[str, str]], partition_keys: list[str],
             settings: DatasetSettings, ingest_time: datetime | None, tasks: int) -> DataFrame:
    """Typed rows, flagged, distributed by output partition and dedup keys: the one exchange."""
    within = [*partition_keys, "_bucket"]
    ts = settings.timestamp_column
    required = [c for c in (ts, *settings.dedup_keys) if c]
    rows = transforms.typed(raw, columns, ts, required)
    rows = transforms.with_time_bucket(rows, F.col(ts) if ts else F.lit(ingest_time), settings.date_parts)
    rows = transforms.distributed(rows, within, settings.dedup_keys, tasks)
    return transforms.flag_duplicates(rows, settings.dedup_keys, within=within)


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


def write_table(spark: SparkSession, raw: DataFrame, columns: list[tuple[str, str]],
                partition_keys: list[str],
                settings: DatasetSettings, run_id: str, uris: dict[int, str], lookup: DataFrame | None,
                output_root: str, quarantine_root: str, ingest_time: datetime | None = None,
                unreadable: dict[int, str] | None = None, broadcast: bool = True,
                size: RunSize | None = None,
                before_write: BeforeWrite = lambda partition_by, partitions: None) -> TableOutput:
    """Type, dedup, enrich and write one table's rows; quarantine the rest. One shuffle.

    `size` (sizing.RunSize) sets the shuffle's width and the cache's codec, and sends a small
    run to the small-run path (small_write.py: one Spark job, written by pyarrow); without it,
    every core and an uncompressed cache. `before_write(partition_by, partitions)` runs just
    before any row is written, with the partitions about to receive them: the run's output
    record is written then (ledger/outputs.py), and the small-run path's folders emptied (a
    retried attempt of the run replaces its own output).

    The rows are distributed once, by output partition and dedup key over `size.tasks` tasks
    (see transforms.distributed), so a run whose rows fall on one day still uses every core,
    and each output partition gets at most one file per task. The typed rows are cached once,
    because three things read them: the counts, the table, the quarantine (it spills to disk
    when a run does not fit in memory). `unreadable`: files left out of `raw`, quarantined
    whole with their reason.
    """
    size = size or RunSize(0, spark.sparkContext.defaultParallelism, small=False, compress_cache=False)
    partition_by = [*partition_keys, *settings.date_parts, "run_id"]
    within = [*partition_keys, "_bucket"]
    unreadable = unreadable or {}
    rows = prepared(raw, columns, partition_keys, settings, ingest_time, 1 if size.small else size.tasks)
    if size.small and small_write.fits(settings):
        written = small_write.write(spark, rows, settings, run_id, uris, lookup, broadcast, partition_by,
                                    output_root, before_write)
        if written is not None:
            counts, partitions, schema = written
            _quarantine(spark, rows, run_id, uris, counts, unreadable, quarantine_root)
            return TableOutput(counts, sorted(partitions), partition_by,
                               catalog.hive_columns(schema, partition_by))
    # Compressed only for a large run: see sizing.COMPRESS_CACHE_ABOVE.
    spark.conf.set("spark.sql.inMemoryColumnarStorage.compressed", str(size.compress_cache).lower())
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        bad, duplicate = F.col("_bad_reason").isNotNull(), F.col("_duplicate")
        stats = transforms.with_output_partition(rows.groupBy("_file", *within).agg(
            F.count(F.lit(1)).alias("rows_in"), F.count_if(bad).alias("rows_bad"),
            F.count_if(duplicate).alias("rows_duplicate")), run_id, "_bucket", settings.date_parts).collect()
        counts, partitions = file_counts(stats, partition_by)
        good = transforms.with_output_partition(rows.filter(~bad & ~duplicate), run_id, "_bucket",
                                                settings.date_parts)
        good = transforms.enriched(good, uris, lookup, settings.lookup_key, broadcast).drop(
            "_file", "_bad_reason", "_duplicate", "_raw", "_bucket")
        before_write(partition_by, sorted(partitions))
        # Dynamic partition overwrite, not append: up to JobMaxConcurrentRuns runs write one table
        # root at once, and an append's FileOutputCommitter keeps every job's task output under the
        # root's shared `_temporary/0`, which the first job to commit deletes with the others' files
        # in it (SPARK-24238). In dynamic mode each job stages under `.spark-staging-<job id>` of its
        # own and moves only its own partitions (all `run_id=<run>`) into place. The EMRFS
        # S3-optimized committer is not used then (its "Requirements" page): slower commits,
        # never a lost file.
        (good.write.mode("overwrite").option("partitionOverwriteMode", "dynamic")
             .option("compression", settings.compression).partitionBy(*partition_by)
             .format(settings.output_format).save(output_root))
        _quarantine(spark, rows, run_id, uris, counts, unreadable, quarantine_root)
    finally:
        rows.unpersist()
    return TableOutput(counts, sorted(partitions), partition_by,
                       catalog.hive_columns(good.schema, partition_by))


def _quarantine(spark: SparkSession, rows: DataFrame, run_id: str, uris: dict[int, str],
                counts: dict[int, RowCounts], unreadable: dict[int, str], root: str) -> None:
    """Most runs have nothing to quarantine, and write nothing."""
    unread = {i: unreadable.get(i, EMPTY_FILE) for i in uris if i not in counts}
    if unread or any(c.rows_bad for c in counts.values()):
        quarantined(spark, rows, run_id, uris, unread).write.mode("overwrite").json(root)


def quarantined(spark: SparkSession, rows: DataFrame, run_id: str, uris: dict[int, str],
                files: dict[int, str]) -> DataFrame:
    """The quarantine: the bad rows, and a record per file that gave no rows (`files`: index ->
    reason). A REBALANCE without columns shuffles only the bad rows (the filter stays below
    it) and lets adaptive execution size its files: one for a few bad rows, more for many
    ("Hints", Spark 3.5 SQL reference, https://spark.apache.org/docs/3.5.4/sql-ref-syntax-qry-select-hints.html).
    coalesce(1) would pull the filter over the whole cached run into one task; repartition(1)
    would send every bad row of a large run through one task."""
    quarantine = transforms.quarantine_records(rows.filter(F.col("_bad_reason").isNotNull()), run_id, uris)
    if files:
        quarantine = quarantine.unionByName(spark.createDataFrame(
            [(uris[i], None, reason, run_id) for i, reason in sorted(files.items())],
            "source_file string, record string, reason string, run_id string").withColumn(
            "quarantined_at", F.current_timestamp()))
    return quarantine.hint("rebalance")


@dataclass
class TableWritten:
    """One table's part of the run summary."""

    table: TableSummary
    files: list[FileSummary]
    output_partitions: list[str]


def _process_table(spark: SparkSession, args: JobArguments, storage: Storage, glue: Any, table: dict,
                   refs: list[FileRef], ingest_time: datetime, log: RunLog) -> TableWritten:
    name = table["Name"]
    raw = raw_files.layout(table, datasets.csv_header(
        _datasets_file(args.datasets_uri, args.run_id, args.job_run_id), name))
    uris = {i: ref.uri for i, ref in enumerate(refs)}
    with log.phase("stage", table=name, files=len(refs)):
        paths = storage.inputs(refs)
    read_paths = {i: storage.read_path(ref) for i, ref in enumerate(refs)}
    with log.phase("headers", table=name, files=len(refs)):
        heads = _heads(storage, refs, raw)
    routes = [raw_files.route(i, ref.key, read_paths[i], raw.kind, heads.get(i))
              for i, ref in enumerate(refs)]
    with log.phase("check_gzip", spark=True, table=name):
        unreadable = unreadable_gzip(spark, {r.index: r.path for r in routes if r.how == "spark"})
        streamed = raw_files.checked(spark, [r for r in routes if r.how == "stream"])
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
    settings = _settings_for(args, {**table, "StorageDescriptor": {
        **table["StorageDescriptor"], "Columns": [{"Name": n, "Type": t} for n, t in columns]},
        "PartitionKeys": [{"Name": k, "Type": "string"} for k in partition_keys]})
    raw_rows = raw_files.read(spark, raw, read_columns, routes, names,
                              lambda df: transforms.with_file_index(df, paths), renames)
    location = table["StorageDescriptor"]["Location"].rstrip("/") + "/"
    folders = {i: ref.uri[len(location):].split("/")[:-1] for i, ref in enumerate(refs)}
    raw_rows = transforms.with_partition_values(raw_rows, partition_keys, {
        i: dict(zip(partition_keys, catalog.file_partition_values(catalog_keys, folders[i]), strict=True))
        for i in folders})
    lookup, broadcast = _lookup(spark, settings, storage, [n for n, _ in columns] + partition_keys)
    quarantine_prefix = f"_quarantine/{name}/run_id={args.run_id}/"
    size = RunSize.of(input_bytes(refs), spark.sparkContext.defaultParallelism)

    def before_write(partition_by: list[str], partitions: list[tuple[str | None, ...]]) -> None:
        """What discarding or finishing the run must know, recorded before any row is written."""
        record_outputs(storage.s3, args.artifacts_bucket, args.run_id, TableOutputs(name, [
            PartitionOutput([catalog.DEFAULT_PARTITION_NAME if v is None else v for v in values],
                            f"{name}/{run_dir(partition_by, values)}/") for values in partitions],
            quarantine_prefix))
        storage.clear(args.processed_bucket, f"{name}/", [run_dir(partition_by, v) for v in partitions])

    with log.phase("write", spark=True, table=name, tasks=size.tasks, small=size.small):
        out = write_table(spark, raw_rows, columns, partition_keys, settings, args.run_id, uris, lookup,
                          storage.output_root(args.processed_bucket, f"{name}/"),
                          storage.output_root(args.processed_bucket, quarantine_prefix), ingest_time,
                          unreadable, broadcast, size, before_write)
    run_dirs = out.run_dirs
    with log.phase("publish", table=name, partitions=len(run_dirs)):
        storage.publish(args.processed_bucket, f"{name}/", run_dirs)
        storage.publish(args.processed_bucket, quarantine_prefix, [""])
    with log.phase("table", table=name):  # its schema now; its partitions after the commit point
        catalog.put_processed_table(glue, args.processed_database, name, f"s3://{args.processed_bucket}/{name}/",
                                    out.good_schema, out.partition_by, settings.output_format)
    files = [FileSummary(ref.uri, ref.file_id, name, out.counts.get(i, RowCounts(0, 0, 0, 0)),
                         note=None if i in out.counts else unreadable.get(i, EMPTY_FILE))
             for i, ref in enumerate(refs)]
    log.event("table", table=name, files=len(refs), unreadable=len(unreadable), partitions=len(run_dirs),
              rows_in=sum(c.rows_in for c in out.counts.values()),
              rows_out=sum(c.rows_out for c in out.counts.values()),
              rows_bad=sum(c.rows_bad for c in out.counts.values()),
              rows_duplicate=sum(c.rows_duplicate for c in out.counts.values()))
    return TableWritten(
        TableSummary(files=len(refs), partitions_written=len(run_dirs), partitions_new=len(run_dirs),
                     quarantine=f"s3://{args.processed_bucket}/{quarantine_prefix}"),
        files, [f"s3://{args.processed_bucket}/{name}/{d}/" for d in run_dirs])


def _first_line(route: raw_files.FileRoute, heads: dict[int, bytes],
                streamed: dict[int, tuple[str | None, str]]) -> str:
    if route.how == "stream":
        return streamed[route.index][1]
    head = heads[route.index]
    return raw_files.first_line(head, raw_files.compression(head))


def _heads(storage: Storage, refs: list[FileRef], raw: raw_files.RawLayout) -> dict[int, bytes]:
    """The first bytes of the files whose start the read needs: every CSV file (its header, and
    its compression), and the files of a compressed table whose names do not say the codec (the
    crawler classifies by content; Spark decompresses by name). One GET each, through the pool."""
    wanted = [i for i, ref in enumerate(refs) if raw.kind == "csv" or (
        raw.kind == "json" and raw.compressed and not ref.key.lower().endswith(raw_files.CODEC_EXTENSIONS))]
    return dict(zip(wanted, concurrently(lambda i: storage.head(refs[i]), wanted), strict=True))
