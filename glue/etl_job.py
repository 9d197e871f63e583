"""Sluice ETL job: the script template.yaml's EtlJob runs on AWS Glue 5.0, and the local runtime
runs in-process with local Spark. It wires arguments, the session and storage; the work is in
sluice_glue.job.

    python glue/etl_job.py --JOB_NAME J --run_id R --manifest_uri s3://.../manifest.json \
        --ledger_table T --raw_database D --processed_database P --processed_bucket B \
        --artifacts_bucket A [--storage s3|local]

Storage is chosen by `--storage`, never guessed: `s3` (the default, AWS Glue) runs under a
GlueContext and a Glue Job (JOB_NAME required) and reads s3:// with Spark; `local` (the local
runtime, the tests, the Glue container against the emulator) stages through boto3.
"""

from __future__ import annotations

import sys
from typing import Any

from ledger import RunSummary
from sluice_glue import arguments, job
from sluice_glue.runlog import RunLog, log_to_stdout
from sluice_glue.storage import LocalStorage, Storage


def main(argv: list[str] | None = None, spark: Any = None) -> RunSummary:
    argv = list(argv if argv is not None else sys.argv)
    args = arguments.parse(argv)
    glue_job = None
    if args.storage == "s3":  # a GlueContext error raises: the job must not fall back silently
        spark, glue_job = glue_bootstrap(argv, spark)
    elif spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.appName("sluice-etl").getOrCreate()
    # Off (Spark's default): with it on, a file that fails mid-read returns the rows read
    # before the error ("Generic File Source Options", Spark 3.5 docs). Truncated gzip files
    # are found before the read (file_routes.unreadable_gzip); any other read error fails the table,
    # whose files go back to the ledger.
    spark.conf.set("spark.sql.files.ignoreCorruptFiles", "false")
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # a timestamp without a zone is UTC; date parts too
    storage = Storage() if args.storage == "s3" else LocalStorage()
    try:
        summary = job.run(spark, args, storage, RunLog(args.run_id))
    finally:
        storage.close()
    if glue_job is not None:
        glue_job.commit()
    return summary


def glue_bootstrap(argv: list[str], spark: Any = None) -> tuple[Any, Any]:
    """AWS Glue's documented script preamble: the SparkSession is the GlueContext's, and the Job
    is initialised with the job's resolved arguments, which "Encrypting data written by AWS Glue"
    (https://docs.aws.amazon.com/glue/latest/dg/encryption-security-configuration.html) requires
    of a job with a security configuration: job.init(args['JOB_NAME'], args)."""
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from awsglue.utils import getResolvedOptions
    from pyspark.context import SparkContext

    resolved = getResolvedOptions(argv, ["JOB_NAME"])
    glue_context = GlueContext(spark.sparkContext if spark is not None else SparkContext.getOrCreate())
    glue_job = Job(glue_context)
    glue_job.init(resolved["JOB_NAME"], resolved)
    return glue_context.spark_session, glue_job


if __name__ == "__main__":
    log_to_stdout()
    main()
