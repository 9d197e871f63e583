"""One run of the ETL job: exactly the files of its manifest, table by table.

The run is the job's only if its run record lets it begin (the fence); then it reads its
manifest, checks which files it still holds, and processes them table by table (table_run.py).
Tables are isolated: a table whose processing fails has its files returned to the ledger with
the reason and its output discarded, and the others are written. When every table is settled,
the run summary is written (the commit point), the run's partitions are registered from its
output records, and each written file is marked DONE with its row counts.
"""

from __future__ import annotations

import queue
import time
from datetime import datetime
from typing import Any

from pyspark.sql import SparkSession

from ledger import FileRef, FileSummary, ReturnedFile, RunManifest, RunSummary, summary_key
from ledger.outputs import forget_outputs, register_recorded
from ledger.run_table import DynamoRunRecords
from ledger.s3 import delete_prefix
from ledger.table import DynamoLedger
from sluice_glue import catalog
from sluice_glue.arguments import JobArguments
from sluice_glue.output import quarantine_prefix
from sluice_glue.runlog import RunLog
from sluice_glue.storage import DRIVER_THREADS, Storage, client, concurrently, resource
from sluice_glue.table_run import RunContext, TableWritten, process_table


def run(spark: SparkSession, args: JobArguments, storage: Storage, log: RunLog | None = None) -> RunSummary:
    log = log or RunLog(args.run_id)
    began = time.monotonic()
    s3, glue = client("s3"), client("glue")
    dynamodb = resource("dynamodb")  # used by this thread only; each DONE-marking thread gets a Table of it
    ledger_table = dynamodb.Table(args.ledger_table)
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
    context = RunContext(spark, args, storage, glue, log, ingest_time)
    written: dict[str, TableWritten] = {}
    for name, refs in sorted(groups.items()):
        table = next(t for t in tables if t["Name"] == name)
        try:
            written[name] = process_table(context, table, refs)
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
        _mark_done(args, summary.files, dynamodb)
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
    delete_prefix(storage.s3, args.processed_bucket, quarantine_prefix(name, args.run_id))
    forget_outputs(storage.s3, args.artifacts_bucket, args.run_id, name)


def _mark_done(args: JobArguments, files: list[FileSummary], dynamodb: Any) -> None:
    """One UpdateItem per file through a bounded pool. A boto3 resource instance is not
    thread-safe, so each thread borrows a Table instance of its own, all made here from the run's
    service resource (https://boto3.amazonaws.com/v1/documentation/api/latest/guide/resources.html
    #multithreading-or-multiprocessing-with-resources); their calls go through its client, which
    is. A new resource per thread cost ~40 ms of CPU each, 16 per run."""
    ledgers: queue.Queue[DynamoLedger] = queue.Queue()
    for _ in range(min(DRIVER_THREADS, len(files))):
        ledgers.put(DynamoLedger(dynamodb.Table(args.ledger_table)))

    def mark(entry: FileSummary) -> None:
        ledger = ledgers.get()
        try:
            if not ledger.mark_done(args.run_id, entry.file_id, entry.counts):
                raise RuntimeError(f"ledger refused DONE for {entry.file_id}: not claimed by {args.run_id}")
        finally:
            ledgers.put(ledger)

    concurrently(mark, files)
