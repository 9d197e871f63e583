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
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

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
from sluice_glue import catalog, datasets, raw_files, transforms
from sluice_glue.arguments import JobArguments
from sluice_glue.datasets import DatasetSettings, SettingsError
from sluice_glue.output import EMPTY_FILE, OutputRoots, RawRows, RunFiles, WritePlan, run_dir
from sluice_glue.runlog import RunLog
from sluice_glue.sizing import RunSize, input_bytes
from sluice_glue.storage import DRIVER_THREADS, Storage, client, concurrently, resource, unreadable_gzip
from sluice_glue.table_write import write_table


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
        out = write_table(spark, RawRows(raw_rows, columns, partition_keys),
                          RunFiles(args.run_id, uris, ingest_time, unreadable),
                          WritePlan(settings, size, lookup, broadcast),
                          OutputRoots(storage.output_root(args.processed_bucket, f"{name}/"),
                                      storage.output_root(args.processed_bucket, quarantine_prefix)),
                          before_write)
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
