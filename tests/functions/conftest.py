"""The two handlers against the emulator, with the resources they touch created under the names
the sample events in events/ use (stage "dev"), and the environment events/env.json gives them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ledger.table import DynamoLedger
from sluice import ROOT
from sluice.aws.awslambda import FakeContext, load_handler
from sluice.aws.faults import ClientFaults
from tests.conftest import create_ledger_table

EVENTS = ROOT / "events"
ENV = json.loads((EVENTS / "env.json").read_text())
RAW_BUCKET = "sluice-dev-raw-123456789012-us-east-1"


def event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def stack(aws, app):
    """Ledger table, raw and artifacts buckets, raw database, crawler and job, as deployed."""
    start_job_env = ENV["StartJobFunction"]
    create_ledger_table(aws, app, start_job_env["LEDGER_TABLE"])
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=RAW_BUCKET)
    s3.create_bucket(Bucket=start_job_env["ARTIFACTS_BUCKET"])
    s3.create_bucket(Bucket=start_job_env["PROCESSED_BUCKET"])
    glue = aws.client("glue")
    glue.create_database(DatabaseInput={"Name": "sluice_dev_raw"})
    glue.create_database(DatabaseInput={"Name": start_job_env["PROCESSED_DATABASE"]})
    glue.create_crawler(Name=start_job_env["CRAWLER_NAME"], Role="arn:aws:iam::123456789012:role/crawler",
                        DatabaseName="sluice_dev_raw",
                        Targets={"S3Targets": [{"Path": f"s3://{RAW_BUCKET}/"}]})
    glue.create_job(Name=start_job_env["JOB_NAME"], Role="arn:aws:iam::123456789012:role/etl",
                    Command={"Name": "glueetl", "ScriptLocation": "s3://code/etl_job.py"},
                    GlueVersion="5.0", ExecutionProperty={"MaxConcurrentRuns": 3})  # the template's default
    return aws


def _handler(code: str, function: str) -> Callable[[dict], dict]:
    handler = load_handler(ROOT / "functions" / code, "app.lambda_handler")

    def invoke(evt: dict) -> dict:
        saved = dict(os.environ)
        os.environ.update(ENV[function])
        try:
            return handler(evt, FakeContext(function))
        finally:
            os.environ.clear()
            os.environ.update(saved)

    return invoke


@pytest.fixture
def start_crawler(stack) -> Callable[[dict], dict]:
    return _handler("start_crawler", "StartCrawlerFunction")


@pytest.fixture
def start_job(stack) -> Callable[[dict], dict]:
    return _handler("start_job", "StartJobFunction")


@pytest.fixture
def ledger_items(stack) -> Callable[[], list[dict]]:
    ledger = DynamoLedger(stack.resource("dynamodb").Table(ENV["StartJobFunction"]["LEDGER_TABLE"]))
    return lambda: list(ledger.files())


@pytest.fixture
def aws_errors(monkeypatch) -> Iterator[ClientFaults]:
    """Inject AWS errors on a client (sluice.aws.faults); botocore's retries still run, without their
    backoff sleeps."""
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
    faults = ClientFaults()
    yield faults
    faults.clear()


@pytest.fixture
def events_dir() -> Path:
    return EVENTS
