"""One SparkSession for the whole test session, tuned for small inputs."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark():
    from sluice.aws.glue_jobs import spark_session

    session = spark_session("sluice-tests")
    session.conf.set("spark.sql.shuffle.partitions", "2")
    yield session
