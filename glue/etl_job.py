"""Sluice ETL job: the script template.yaml's EtlJob runs on AWS Glue 5.0, and the local runtime
runs in-process with local Spark. It wires arguments, the session and storage; the work is in
sluice_glue.job.

    python glue/etl_job.py --run_id R --manifest_uri s3://.../manifest.json --ledger_table T \
        --raw_database D --processed_database P --processed_bucket B --artifacts_bucket A
"""

from __future__ import annotations

import sys
from typing import Any

from ledger import RunSummary
from sluice_glue import arguments, job
from sluice_glue.storage import LocalStorage, Storage


def glue_context(spark: Any) -> Any | None:
    """A GlueContext where the JVM has Glue's classes (AWS Glue, the aws-glue-libs image); None
    on plain Spark, where GlueContext(sc) fails with "'JavaPackage' object is not callable"."""
    try:
        from awsglue.context import GlueContext

        return GlueContext(spark.sparkContext)
    except Exception:
        return None


def main(argv: list[str] | None = None, spark: Any = None) -> RunSummary:
    argv = list(argv if argv is not None else sys.argv)
    args = arguments.parse(argv)
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.appName("sluice-etl").getOrCreate()
    spark.conf.set("spark.sql.files.ignoreCorruptFiles", "true")  # a corrupt file: 0 rows, quarantined
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # a timestamp without a zone is UTC; date parts too
    context = glue_context(spark)
    glue_job = None
    if context is not None:
        from awsglue.job import Job
        from awsglue.utils import getResolvedOptions

        glue_job = Job(context)
        glue_job.init(getResolvedOptions(argv, ["JOB_NAME"])["JOB_NAME"], {})
    storage = Storage() if context is not None else LocalStorage()
    try:
        summary = job.run(spark, args, storage)
    finally:
        storage.close()
    if glue_job is not None:
        glue_job.commit()
    return summary


if __name__ == "__main__":
    main()
