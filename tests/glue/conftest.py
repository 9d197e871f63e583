"""One SparkSession for the whole test session, tuned for small inputs; the emulated buckets,
databases, crawler and ledger a job run needs."""

from __future__ import annotations

import pytest

from ledger.table import DynamoLedger

RAW, PROCESSED, ARTIFACTS = "raw-bucket-test", "processed-bucket-test", "artifacts-bucket-test"


@pytest.fixture
def spark():
    """The process's SparkSession (getOrCreate: the same one from test to test, warm). Asked for
    per test because an end-to-end module that ran earlier in the same xdist worker stops the
    session its runtime used when it stops."""
    from sluice.aws.glue_spark import spark_session

    session = spark_session("sluice-tests")
    session.conf.set("spark.sql.shuffle.partitions", "2")
    yield session


@pytest.fixture
def pipeline(aws, ledger_table):
    s3, glue = aws.client("s3"), aws.client("glue")
    for bucket in (RAW, PROCESSED, ARTIFACTS):
        s3.create_bucket(Bucket=bucket)
    glue.create_database(DatabaseInput={"Name": "raw_db"})
    glue.create_database(DatabaseInput={"Name": "processed_db"})
    glue.create_crawler(Name="raw-crawler", Role="r", DatabaseName="raw_db",
                        Targets={"S3Targets": [{"Path": f"s3://{RAW}/"}]})
    return aws, DynamoLedger(aws.resource("dynamodb").Table(ledger_table)), ledger_table
