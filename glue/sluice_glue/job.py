"""One run of the ETL job: exactly the files of its manifest, table by table.

Output goes to s3://<processed>/<table>/<date parts>/run_id=<run_id>/. Partitioning by run id last
is what makes a retried attempt of the same run replace its own output and nothing else: Spark's
dynamic partition overwrite (on Glue) or delete-then-upload of the run's folders (locally) touches
only partitions that carry this run id. Bad rows go to s3://<processed>/_quarantine/<table>/
run_id=<run_id>/ as JSON lines with the source file and the reason. Each table's files are marked
DONE, with their row counts, as soon as that table is written.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

import boto3
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ledger import FileRef, RowCounts, RunManifest, summary_key
from ledger.table import DynamoLedger
from sluice_glue import catalog, transforms
from sluice_glue.arguments import JobArguments
from sluice_glue.storage import Storage

EMPTY_FILE = "no data rows (empty, header only, or unreadable)"


def run(spark: SparkSession, args: JobArguments, storage: Storage) -> dict[str, Any]:
    began = time.monotonic()
    s3, glue = boto3.client("s3"), boto3.client("glue")
    bucket, key = args.manifest_uri.removeprefix("s3://").split("/", 1)
    manifest = RunManifest.from_json(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    ledger = DynamoLedger(boto3.resource("dynamodb").Table(args.ledger_table))
    tables = catalog.raw_tables(glue, args.raw_database)
    groups: dict[str, list[tuple[int, FileRef]]] = {}
    for index, ref in enumerate(manifest.files):
        groups.setdefault(catalog.table_for(ref, tables)["Name"], []).append((index, ref))
    lookup = _lookup(spark, args, storage)
    summary: dict[str, Any] = {"run_id": args.run_id, "job_run_id": args.job_run_id, "tables": {},
                               "files": [], "output_partitions": []}
    for name, members in sorted(groups.items()):
        table = next(t for t in tables if t["Name"] == name)
        summary["tables"][name] = _process_table(spark, args, storage, glue, ledger, table, members,
                                                 lookup, summary)
    files = summary["files"]
    summary["totals"] = {k: sum(f[k] for f in files) for k in ("rows_in", "rows_out", "rows_bad",
                                                               "rows_duplicate")}
    summary["totals"]["files"] = len(files)
    summary["bytes"] = manifest.total_bytes
    summary["duration_s"] = round(time.monotonic() - began, 2)
    summary["quarantine"] = f"s3://{args.processed_bucket}/_quarantine/"
    s3.put_object(Bucket=args.artifacts_bucket, Key=summary_key(args.run_id),
                  Body=json.dumps(summary, indent=2, default=str).encode(), ContentType="application/json")
    return summary


def _lookup(spark: SparkSession, args: JobArguments, storage: Storage) -> DataFrame | None:
    if not args.lookup_uri:
        return None
    path = storage.fetch(args.lookup_uri)
    if args.lookup_uri.endswith(".parquet"):
        return spark.read.parquet(path)
    return spark.read.option("header", True).csv(path)


def _process_table(spark: SparkSession, args: JobArguments, storage: Storage, glue: Any,
                   ledger: DynamoLedger, table: dict, members: list[tuple[int, FileRef]],
                   lookup: DataFrame | None, summary: dict) -> dict:
    name = table["Name"]
    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    partition_keys = [k["Name"] for k in table.get("PartitionKeys", [])]
    refs = [ref for _, ref in members]
    paths = storage.inputs(refs)
    uris = {i: ref.uri for i, ref in enumerate(refs)}
    read_paths = [storage.read_path(ref, i) for i, ref in enumerate(refs)]
    raw = transforms.with_file_index(transforms.read_raw(spark, read_paths, table, columns), paths)
    raw = transforms.with_partition_values(raw, partition_keys, {
        i: dict(seg.split("=", 1) for seg in ref.key.split("/")[:-1] if "=" in seg)
        for i, ref in enumerate(refs)})
    required = [args.timestamp_column, *args.dedup_keys]
    rows = transforms.flag_duplicates(
        transforms.typed(raw, columns, args.timestamp_column, required), args.dedup_keys)
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = {r["_file"]: r for r in rows.groupBy("_file").agg(
            F.count(F.lit(1)).alias("rows_in"),
            F.sum(F.col("_bad_reason").isNotNull().cast("long")).alias("rows_bad"),
            F.sum(F.col("_duplicate").cast("long")).alias("rows_duplicate")).collect()}
        good = rows.filter(F.col("_bad_reason").isNull() & ~F.col("_duplicate"))
        good = transforms.enriched(good, args.run_id, args.timestamp_column, args.date_parts, uris,
                                   lookup, args.lookup_key)
        good = good.drop("_file", "_bad_reason", "_duplicate", "_raw", transforms.CORRUPT)
        partition_by = [*partition_keys, *args.date_parts, "run_id"]
        output = good.repartition(*partition_by) if len(partition_by) > 1 else good.coalesce(1)
        (output.write.mode("overwrite").option("partitionOverwriteMode", "dynamic")
               .option("compression", args.compression).partitionBy(*partition_by)
               .format(args.output_format).save(storage.output_root(args.processed_bucket, f"{name}/")))
        written = [list(r) for r in good.select(*partition_by).distinct().collect()]
        run_dirs = sorted({"/".join(f"{k}={v}" for k, v in zip(partition_by, values, strict=True))
                           for values in written})
        storage.publish(args.processed_bucket, f"{name}/", run_dirs)
        bad = transforms.quarantine_records(rows.filter(F.col("_bad_reason").isNotNull()),
                                            args.run_id, uris)
        empty = [(uris[i], None, EMPTY_FILE, args.run_id) for i in uris if i not in counts]
        if empty:
            bad = bad.unionByName(spark.createDataFrame(
                empty, "source_file string, record string, reason string, run_id string").withColumn(
                "quarantined_at", F.current_timestamp()))
        quarantine_prefix = f"_quarantine/{name}/run_id={args.run_id}/"
        bad.coalesce(1).write.mode("overwrite").json(
            storage.output_root(args.processed_bucket, quarantine_prefix))
        storage.publish(args.processed_bucket, quarantine_prefix, [""])
        schema = [(f.name, catalog.SPARK_TO_HIVE.get(type(f.dataType).__name__, "string"))
                  for f in good.schema.fields if f.name not in partition_by]
        new_partitions = catalog.register(
            glue, args.processed_database, name, f"s3://{args.processed_bucket}/{name}/", schema,
            partition_by, written, args.output_format)
    finally:
        rows.unpersist()
    for i, ref in enumerate(refs):
        row = counts.get(i)
        rows_in = int(row["rows_in"]) if row else 0
        rows_bad, rows_dup = (int(row["rows_bad"] or 0), int(row["rows_duplicate"] or 0)) if row else (0, 0)
        file_counts = RowCounts(rows_in, rows_in - rows_bad - rows_dup, rows_bad, rows_dup)
        if not ledger.mark_done(args.run_id, ref.file_id, file_counts):
            raise RuntimeError(f"ledger refused DONE for {ref.file_id}: not claimed by {args.run_id}")
        summary["files"].append({"file": ref.uri, "table": name, **asdict(file_counts),
                                 **({"note": EMPTY_FILE} if row is None else {})})
    summary["output_partitions"] += [f"s3://{args.processed_bucket}/{name}/{d}/" for d in run_dirs]
    return {"files": len(refs), "partitions_written": len(run_dirs), "partitions_new": new_partitions,
            "quarantine": f"s3://{args.processed_bucket}/{quarantine_prefix}"}
