"""Writing one table's rows: typed, flagged, enriched and written; the rest quarantined.

`write_table` prepares the rows once (one exchange), then writes them by one of two paths: a
small run by the small-run path (small_write.py: one Spark job, written by pyarrow) where it
writes what Spark would; every other run by Spark (the large path, here), with dynamic partition
overwrite. Both write the same output (output.py: its partitions, its folders) and the same
quarantine.
"""

from __future__ import annotations

from datetime import datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ledger import RowCounts
from sluice_glue import catalog, small_write, transforms
from sluice_glue.datasets import DatasetSettings
from sluice_glue.output import (
    EMPTY_FILE,
    BeforeWrite,
    OutputRoots,
    RawRows,
    RunFiles,
    TableOutput,
    WritePlan,
    file_counts,
    nothing_before_write,
    output_rows,
    partition_columns,
)
from sluice_glue.sizing import RunSize


def write_table(spark: SparkSession, rows: RawRows, run: RunFiles, plan: WritePlan, roots: OutputRoots,
                before_write: BeforeWrite = nothing_before_write) -> TableOutput:
    """Type, dedup, enrich and write one table's rows; quarantine the rest. One shuffle.

    `plan.size` (sizing.RunSize) sets the shuffle's width and the cache's codec, and sends a
    small run to the small-run path; without it, every core and an uncompressed cache.
    `before_write(partition_by, partitions)` runs just before any row is written, with the
    partitions about to receive them: the run's output record is written then
    (ledger/outputs.py), and the run's folders emptied (storage.clear: a retried attempt of the
    run replaces its own output).

    The rows are distributed once, by output partition and dedup key over `size.tasks` tasks
    (see transforms.distributed), so a run whose rows fall on one day still uses every core,
    and each output partition gets at most one file per task. The typed rows are cached once,
    because three things read them: the counts, the table, the quarantine (it spills to disk
    when a run does not fit in memory). `run.unreadable`: files left out of the rows,
    quarantined whole with their reason.
    """
    settings = plan.settings
    size = plan.size or RunSize(0, spark.sparkContext.defaultParallelism, small=False, compress_cache=False)
    partition_by = partition_columns(rows.partition_keys, settings)
    within = [*rows.partition_keys, "_bucket"]
    typed = prepared(rows, settings, run.ingest_time, 1 if size.small else size.tasks)
    if size.small and small_write.fits(settings):
        written = small_write.write(typed, run, plan, partition_by, roots.table, before_write)
        if written is not None:
            _quarantine(spark, typed, run, written.counts, roots.quarantine)
            return written
    # Compressed only for a large run: see sizing.COMPRESS_CACHE_ABOVE.
    spark.conf.set("spark.sql.inMemoryColumnarStorage.compressed", str(size.compress_cache).lower())
    typed = typed.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        bad, duplicate = F.col("_bad_reason").isNotNull(), F.col("_duplicate")
        stats = transforms.with_output_partition(typed.groupBy("_file", *within).agg(
            F.count(F.lit(1)).alias("rows_in"), F.count_if(bad).alias("rows_bad"),
            F.count_if(duplicate).alias("rows_duplicate")), run.run_id, "_bucket", settings.date_parts,
        ).collect()
        counts, partitions = file_counts(stats, partition_by)
        good = output_rows(typed.filter(~bad & ~duplicate), run, plan).drop(*transforms.INTERNAL)
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
             .format(settings.output_format).save(roots.table))
        _quarantine(spark, typed, run, counts, roots.quarantine)
    finally:
        typed.unpersist()
    return TableOutput(counts, sorted(partitions), partition_by,
                       catalog.hive_columns(good.schema, partition_by))


def prepared(rows: RawRows, settings: DatasetSettings, ingest_time: datetime | None, tasks: int) -> DataFrame:
    """Typed rows, flagged, distributed by output partition and dedup keys: the one exchange.
    A row is placed by its timestamp column, or by `ingest_time` when the table has none."""
    within = [*rows.partition_keys, "_bucket"]
    ts = settings.timestamp_column
    required = [c for c in (ts, *settings.dedup_keys) if c]
    typed = transforms.typed(rows.frame, rows.columns, ts, required)
    typed = transforms.with_time_bucket(typed, F.col(ts) if ts else F.lit(ingest_time), settings.date_parts)
    typed = transforms.distributed(typed, within, settings.dedup_keys, tasks)
    return transforms.flag_duplicates(typed, settings.dedup_keys, within=within)


def _quarantine(spark: SparkSession, rows: DataFrame, run: RunFiles, counts: dict[int, RowCounts],
                root: str) -> None:
    """Most runs have nothing to quarantine, and write nothing."""
    unread = {i: run.unreadable.get(i, EMPTY_FILE) for i in run.uris if i not in counts}
    if unread or any(c.rows_bad for c in counts.values()):
        quarantined(spark, rows, run.run_id, run.uris, unread).write.mode("overwrite").json(root)


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
