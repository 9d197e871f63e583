"""IAM enforced in the local runtime: take a grant away - an action from each role, the S3 -> SQS
queue policy, the EventBridge -> SNS topic policy, the key policy statement - and the call or the
delivery is denied, and the audit that `sluice demo` and `sluice status` print names it.

One runtime for the module; a grant is taken away in the stack's in-memory policies (what the
enforcer reads) and given back after each test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sluice.aws.account import ACCOUNT_ID
from sluice.aws.events import put_event
from sluice.aws.glue_crawler import failed_event
from sluice.aws.iam import Policy, Principal
from sluice.aws.iam_audit import Audit, denial_report
from sluice.aws.iam_hook import Enforcer
from sluice.aws.sqs import s3_may_send
from sluice.aws.sqs_event_source import MappingRefused, SqsEventSource
from sluice.runtime import Runtime
from tests.runtime.conftest import CAP_S, eventually, ledger_items, orders_csv, put, started_runtime


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Iterator[Runtime]:
    with started_runtime(tmp_path_factory.mktemp("sluice-iam"), schedule_every=2,
                         denials_expected=True) as rt:  # these tests take grants away
        yield rt


def _statement(document: dict, sid: str) -> dict:
    return next(s for s in document["Statement"] if s.get("Sid") == sid)


@contextmanager
def action_taken_away(rt: Runtime, role: str, sid: str, action: str) -> Iterator[None]:
    [statement] = [_statement(p.document, sid) for p in rt.stack.roles[role].policies
                   if any(s.get("Sid") == sid for s in p.document["Statement"])]
    granted = statement["Action"]
    statement["Action"] = [a for a in granted if a != action]
    try:
        yield
    finally:
        statement["Action"] = granted


@contextmanager
def statement_taken_away(rt: Runtime, resource: str, sid: str) -> Iterator[dict]:
    document = rt.stack.resource_policies[resource]
    statement = _statement(document, sid)
    document["Statement"].remove(statement)
    try:
        yield statement
    finally:
        document["Statement"].append(statement)



def denied(rt: Runtime, principal: str, action: str) -> list[dict]:
    return [d for d in rt.status()["iam"]["denied"]
            if (d["principal"], d["action"]) == (principal, action)]


def assert_named(rt: Runtime, principal: str, action: str, resource_part: str) -> None:
    """What `sluice demo` prints (and exits 1 on) names principal, action, resource and grant."""
    denial = eventually(rt, lambda: [d for d in denied(rt, principal, action)
                                     if resource_part in d["resource"]], f"{principal} denied {action}")[0]
    report = denial_report([denial])
    assert principal in report and action in report and denial["resource"] in report
    assert "missing:" in report and action in denial["missing_grant"]


@pytest.mark.parametrize(("role", "sid", "action", "dataset", "resource_part"), [
    ("StartCrawlerRole", "LedgerIntake", "dynamodb:PutItem", "iam_intake", ":table/"),
    ("CrawlerRole", "ReadRaw", "s3:GetObject", "iam_crawl", "/iam_crawl/"),
    ("StartJobRole", "StartEtlJob", "glue:StartJobRun", "iam_start", ":job/"),
    ("EtlJobRole", "Artifacts", "s3:GetObject", "iam_job", "/code/"),
])
def test_an_action_taken_from_a_role_is_denied_and_named(runtime, role, sid, action, dataset,
                                                         resource_part):
    if role == "EtlJobRole":
        assert runtime.jobs[0].ready.wait(timeout=CAP_S), "Spark did not start"
    with action_taken_away(runtime, role, sid, action):
        put(runtime, f"{dataset}/f.csv", orders_csv(3))
        assert_named(runtime, role, action, resource_part)


def test_an_sqs_mapping_whose_role_cannot_receive_is_refused(runtime):
    role = runtime.stack.principals["StartCrawlerFunction"]
    without = Principal(role.name, role.arn, [Policy("only-ledger", {"Statement": [
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]})])
    with pytest.raises(MappingRefused, match="ReceiveMessage"):
        SqsEventSource(runtime.aws, runtime.stack.mappings[0], "fn", lambda e, c: {}, runtime.timeline,
                       runtime.faults, without)


def test_without_the_queue_policy_s3_drops_the_notification(runtime):
    queue, raw = runtime.stack.arns["IngestQueue"], runtime.stack.outputs["RawBucketName"]

    def s3_may_notify() -> bool:
        """The rule the create-time check applies (sluice.stack.rules), decided aside: nothing of
        it reaches the runtime's audit, whose denial below is the delivery's own."""
        decider = Enforcer(Audit(), runtime.stack.resource_policies)
        return s3_may_send(decider, raw, queue, "s3.PutBucketNotificationConfiguration")

    with statement_taken_away(runtime, queue, "AllowRawBucketNotifications"):
        # S3 would refuse this notification configuration when the stack is deployed ...
        assert not s3_may_notify()
        put(runtime, "iam_queue/f.csv", orders_csv(3))
        # ... and drops the event of an upload: the file never reaches the ledger.
        assert_named(runtime, "s3.amazonaws.com", "sqs:SendMessage", queue)  # dropped when sent
        assert ledger_items(runtime, "iam_queue") == []
    assert s3_may_notify()


def _crawler_failed(rt: Runtime) -> None:
    entry = failed_event(rt.stack.outputs["RawCrawlerName"], "injected by test_iam")
    put_event(rt.aws, entry["Source"], entry["DetailType"], json.loads(entry["Detail"]))


def _failed_invocations(rt: Runtime) -> int:
    """Of NotifyRule, which hands the crawl's email (StartJobFunction's report) to the topic."""
    return rt.status()["failed_invocations"].get(rt.stack.names["NotifyRule"], 0)


@pytest.mark.parametrize(("resource", "sid", "action"), [
    ("NotificationTopic", "EventBridgeRulesPublish", "sns:Publish"),
    ("PipelineKey", "EventBridgePublishes", "kms:GenerateDataKey"),
])
def test_a_delivery_to_the_topic_without_its_grant_is_a_failed_invocation(runtime, resource, sid, action):
    arn = runtime.stack.names[resource] if resource == "NotificationTopic" else runtime.stack.arns[resource]
    before = _failed_invocations(runtime)
    with statement_taken_away(runtime, arn, sid):
        _crawler_failed(runtime)
        eventually(runtime, lambda: _failed_invocations(runtime) > before)
        assert_named(runtime, "events.amazonaws.com", action, arn)


def test_a_topic_policy_conditioned_on_the_rule_lets_no_email_through(runtime):
    """Finding 2: "You can't use Condition blocks in Amazon SNS topic policies for EventBridge" - the
    delivery carries no aws:SourceArn, so the old template's conditioned statement denied every email."""
    topic = runtime.stack.names["NotificationTopic"]
    statement = _statement(runtime.stack.resource_policies[topic], "EventBridgeRulesPublish")
    statement["Condition"] = {"ArnEquals": {"aws:SourceArn": runtime.stack.arns["NotifyRule"]}}
    before = _failed_invocations(runtime)
    try:
        _crawler_failed(runtime)
        eventually(runtime, lambda: _failed_invocations(runtime) > before)
    finally:
        del statement["Condition"]
    assert_named(runtime, "events.amazonaws.com", "sns:Publish", topic)


def test_an_event_the_function_fails_on_rests_in_its_dlq_and_its_alarm_fires(runtime):
    """Lambda retries an asynchronous event twice, then sends it to the function's DLQ with the
    function's role; the DLQ's alarm fires from the queue's metric."""
    dlq = runtime.stack.functions["StartJobFunction"].dead_letter_queue
    alarm = runtime.stack.resources["StartJobDLQAlarm"]["AlarmName"]
    with action_taken_away(runtime, "StartJobRole", "StartEtlJob", "glue:StartJobRun"):
        put(runtime, "iam_dlq/f.csv", orders_csv(3))
        eventually(runtime, lambda: _depth(runtime, dlq) > 0)
    assert eventually(runtime, lambda: next(a["state"] for a in runtime.status()["alarms"]
                                            if a["name"] == alarm) == "ALARM", "the DLQ's alarm in ALARM")


def _depth(rt: Runtime, url: str) -> int:
    attributes = rt.aws.client("sqs").get_queue_attributes(QueueUrl=url,
                                                           AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_a_key_policy_conditioned_on_the_source_account_lets_no_email_through(runtime):
    """Finding 1: aws:SourceAccount is not in the request when SNS asks KMS for EventBridge."""
    key = runtime.stack.arns["PipelineKey"]
    statement = _statement(runtime.stack.resource_policies[key], "EventBridgePublishes")
    statement["Condition"] = {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
    before = _failed_invocations(runtime)
    try:
        _crawler_failed(runtime)
        eventually(runtime, lambda: _failed_invocations(runtime) > before)
    finally:
        del statement["Condition"]
    assert any(d["resource"] == key for d in runtime.status()["iam"]["denied"])
