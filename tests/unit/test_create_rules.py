"""Create-time rules AWS applies and moto does not (sluice.stack.rules): each rule refuses a
template fragment AWS would refuse, naming the resource and the rule; today's template passes
them all in every samconfig.toml environment."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from sluice.stack.deploy import deploy
from sluice.stack.resolve import local_parameters
from sluice.stack.rules import QUOTA_SETTING, CreateRuleError, refusals
from sluice.stack.template import SamApp

MAPPING = "StartCrawlerFunctionRawObjectCreated"  # SAM's name for the SQS event of StartCrawlerFunction


def _props(resources: dict, logical_id: str) -> dict:
    return resources[logical_id]["Properties"]


def _edit(logical_id: str, **changes: Any) -> Callable[[dict], None]:
    return lambda resources: _props(resources, logical_id).update(changes)


def _job_argument(name: str, value: str) -> Callable[[dict], None]:
    return lambda resources: _props(resources, "EtlJob")["DefaultArguments"].update({name: value})


def _fifo_ingest_queue(resources: dict) -> None:
    _props(resources, "IngestQueue").update(FifoQueue=True, QueueName="sluice-local-ingest.fifo")


def _queue_policy_without_s3(resources: dict) -> None:
    statements = _props(resources, "IngestQueuePolicy")["PolicyDocument"]["Statement"]
    statements[:] = [s for s in statements if s.get("Sid") != "AllowRawBucketNotifications"]


def _queue_policy_for_another_bucket(resources: dict) -> None:
    [allow] = [s for s in _props(resources, "IngestQueuePolicy")["PolicyDocument"]["Statement"]
               if s.get("Sid") == "AllowRawBucketNotifications"]
    allow["Condition"]["ArnEquals"]["aws:SourceArn"] = "arn:aws:s3:::some-other-bucket"


# (case, parameter overrides, template edit, concurrency quota, refused resource, rule text)
CASES: list[tuple[str, dict[str, str], Callable[[dict], None] | None, int | None, str, str]] = [
    ("batch above 10 without a batching window",
     {"IngestBatchSize": "100", "IngestBatchingWindowSeconds": "0"}, None, None, MAPPING,
     "BatchSize 100 above 10 needs MaximumBatchingWindowInSeconds >= 1 (it is 0)"),
    ("batch above 10,000", {}, _edit(MAPPING, BatchSize=20_000, MaximumBatchingWindowInSeconds=1), None,
     MAPPING, "BatchSize 20000: at most 10,000"),
    ("batch above 10 on a FIFO queue", {"IngestBatchSize": "100", "IngestBatchingWindowSeconds": "30"},
     _fifo_ingest_queue, None, MAPPING, "BatchSize 100 on FIFO queue IngestQueue: at most 10"),
    ("function timeout above the queue's visibility timeout",
     {"FunctionTimeoutSeconds": "60", "IngestVisibilityTimeoutSeconds": "30"}, None, None, MAPPING,
     "function StartCrawlerFunction Timeout 60 s exceeds queue IngestQueue VisibilityTimeout 30 s"),
    ("scaling config below 2", {}, _edit(MAPPING, ScalingConfig={"MaximumConcurrency": 1}), None, MAPPING,
     "ScalingConfig MaximumConcurrency 1: must be 2 to 1,000"),
    ("reserved concurrency eats the unreserved minimum",
     {"StartCrawlerReservedConcurrency": "10", "StartJobReservedConcurrency": "5"}, None, 110,
     "StartCrawlerFunction, StartJobFunction",
     "ReservedConcurrentExecutions 15 leaves 95 of the account's 110 unreserved; Lambda keeps at least 100"),
    ("one Glue worker", {}, _edit("EtlJob", NumberOfWorkers=1), None, "EtlJob",
     "NumberOfWorkers 1 for G.1X: at least 2"),
    ("worker type and max capacity", {}, _edit("EtlJob", MaxCapacity=10), None, "EtlJob",
     "WorkerType and MaxCapacity are exclusive"),
    ("job timeout 0", {}, _edit("EtlJob", Timeout=0), None, "EtlJob", "Timeout 0 minutes: at least 1"),
    ("a parameter below its MinValue", {"MaxAttempts": "0"}, None, None, "MaxAttempts",
     "parameter MaxAttempts='0' is below its MinValue 1"),
    ("a parameter above its MaxValue", {"IngestMaxReceiveCount": "1001"}, None, None, "IngestMaxReceiveCount",
     "is above its MaxValue 1000"),
    ("a parameter outside its AllowedValues", {"CompressionCodec": "lz4"}, None, None, "CompressionCodec",
     "is not one of its AllowedValues"),
    ("a parameter against its AllowedPattern", {"Stage": "Prod!"}, None, None, "Stage",
     "does not match its AllowedPattern"),
    ("a Number parameter that is not a number", {"MaxFilesPerRun": "many"}, None, None, "MaxFilesPerRun",
     "is not a number"),
    ("an empty job argument", {"TimestampColumn": ""}, None, None, "EtlJob",
     "DefaultArguments --timestamp_column is '': a value must be a non-empty string"),
    ("a reserved job argument", {}, _job_argument("--JOB_NAME", "etl"), None, "EtlJob",
     "DefaultArguments sets --JOB_NAME, which Glue reserves"),
    ("DLQ keeps messages no longer than its source", {}, _edit("IngestDLQ", MessageRetentionPeriod=604800),
     None, "IngestQueue", "dead-letter queue IngestDLQ keeps messages 604800 s, not longer than this queue's "
     "604800 s"),
    ("queue policy without S3", {}, _queue_policy_without_s3, None, "RawBucket",
     "Unable to validate the following destination configurations"),
    ("queue policy for another bucket", {}, _queue_policy_for_another_bucket, None, "RawBucket",
     "does not let s3.amazonaws.com sqs:SendMessage"),
]


def _edited(app: SamApp, edit: Callable[[dict], None] | None) -> SamApp:
    translated = copy.deepcopy(app.translated)
    if edit:
        edit(translated["Resources"])
    return SamApp(source=app.source, translated=translated, code_paths=app.code_paths)


@pytest.mark.parametrize(("params", "edit", "quota", "resource", "rule"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_template_aws_would_refuse_is_refused(app, params, edit, quota, resource, rule):
    found = refusals(_edited(app, edit), {**local_parameters(), **params}, quota)
    # the fragment breaks that rule, on that resource, and no other
    assert [(r.resource, rule in r.rule) for r in found] == [(resource, True)], found


@pytest.mark.parametrize("env", ["default", "prod", "local"])
def test_every_samconfig_environment_passes(app, env):
    assert refusals(app, local_parameters(env=env)) == []


RESERVING = {"StartCrawlerReservedConcurrency": "10", "StartJobReservedConcurrency": "5"}


def test_the_concurrency_quota_is_a_setting(app, monkeypatch):
    monkeypatch.setenv(QUOTA_SETTING, "114")
    [refusal] = refusals(app, {**local_parameters(), **RESERVING})
    assert "leaves 99 of the account's 114" in refusal.rule
    monkeypatch.setenv(QUOTA_SETTING, "115")
    assert refusals(app, {**local_parameters(), **RESERVING}) == []


def test_a_new_account_can_reserve_nothing_and_the_defaults_reserve_nothing(app, monkeypatch):
    """Finding 4: new accounts have reduced quotas ("Lambda quotas"); any reservation then fails the
    stack, so the template reserves none unless asked."""
    monkeypatch.delenv(QUOTA_SETTING, raising=False)
    [refusal] = refusals(app, {**local_parameters(), "StartJobReservedConcurrency": "1"})
    assert "leaves 9 of the account's 10 unreserved" in refusal.rule
    assert app.parameter_defaults()["StartCrawlerReservedConcurrency"] == 0
    assert app.parameter_defaults()["StartJobReservedConcurrency"] == 0
    assert refusals(app, local_parameters()) == []


def test_deploy_refuses_before_creating_anything(aws, app):
    with pytest.raises(CreateRuleError, match=f"{MAPPING}: BatchSize 100 above 10"):
        deploy(aws, app, {**local_parameters(), "IngestBatchSize": "100", "IngestBatchingWindowSeconds": "0"})
    assert aws.client("sqs").list_queues().get("QueueUrls", []) == []
    assert aws.client("s3").list_buckets()["Buckets"] == []
