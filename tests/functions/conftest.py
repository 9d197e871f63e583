"""The two handlers against the emulator, with the resources they touch created under the names
the sample events in events/ use (stage "dev"), and the environment events/env.json gives them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sluice.aws.awslambda import FakeContext, load_handler
from sluice.stack.template import ROOT
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
    table = stack.resource("dynamodb").Table(ENV["StartJobFunction"]["LEDGER_TABLE"])
    return lambda: table.scan(ConsistentRead=True)["Items"]


class AwsErrors:
    """Make one AWS operation answer with an error code the next N times, at the HTTP layer, so
    botocore's own retry logic runs exactly as it would against AWS."""

    def __init__(self) -> None:
        self._clients: list = []

    def fail(self, client, operation: str, code: str, times: int, after: int = 0,
             status: int = 400) -> dict:
        """Calls after the first `after` ones fail, `times` times; later calls go through."""
        calls = {"failed": 0, "total": 0}

        def before_send(request, **_: object):
            calls["total"] += 1
            if calls["total"] <= after or calls["failed"] >= times:
                return None
            calls["failed"] += 1
            from botocore.awsrequest import AWSResponse

            body = json.dumps({"__type": code, "message": f"injected {code}"}).encode()
            return AWSResponse(request.url, status, {"x-amzn-query-error": f"{code};Sender"}, _Raw(body))

        event_name = f"before-send.{client.meta.service_model.service_name}.{operation}"
        client.meta.events.register(event_name, before_send, unique_id=f"inject-{operation}")
        self._clients.append((client, event_name, f"inject-{operation}"))
        return calls

    def clear(self) -> None:
        for client, event_name, unique_id in self._clients:
            client.meta.events.unregister(event_name, unique_id=unique_id)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self.body


@pytest.fixture
def aws_errors(monkeypatch) -> Iterator[AwsErrors]:
    """Inject AWS errors; botocore's retries still run, without their backoff sleeps."""
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
    errors = AwsErrors()
    yield errors
    errors.clear()


@pytest.fixture
def events_dir() -> Path:
    return EVENTS
