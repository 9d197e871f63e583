"""EventBridge delivery to the targets the emulator cannot reach, and the schedule rules.

moto matches events against each rule (its own pattern matcher) and applies the target's input
transformer, but delivers only to SQS. So the deployer points every Lambda and SNS target at an
internal queue, and this module drains those queues: a Lambda target is invoked asynchronously
(retried twice, as Lambda retries async events, then sent to the function's dead-letter queue
with the function's role), an SNS target gets the transformed input published as its message,
exactly as it is (a JSON string keeps its quotes: "Tutorial: Use input transformer to customize
what EventBridge passes to the event target" shows the SNS message `"This event was of
customerCreated type."`), and no Subject, so SNS's email says "AWS Notification Message".
Schedule rules (`rate(...)`) are ticked here too.

Each delivery is first authorised as AWS authorises it: events.amazonaws.com needs the function's
lambda:InvokeFunction permission (aws:SourceArn = the rule), the topic policy's sns:Publish - asked
with no condition keys at all, since "You can't use Condition blocks in Amazon SNS topic policies
for EventBridge" (EventBridge user guide, "Using resource-based policies", Amazon SNS permissions):
a statement conditioned on aws:SourceArn lets nothing through - and, for an encrypted topic,
kms:GenerateDataKey and kms:Decrypt in the key policy, where aws:SourceArn and aws:SourceAccount are
not in the request either ("not supported for EventBridge to encrypted topics", SNS developer
guide, "Key management"). A denied delivery is not retried (a 4xx is permanent) and is counted as
AWS counts it: the rule's FailedInvocations metric in AWS/Events ("Monitoring Amazon EventBridge",
EventBridge user guide). So is an input transformer's output that is not valid JSON (see
correct_moto).

    >>> put_event(aws, "aws.glue", "Glue Job State Change", {"state": "FAILED"})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from sluice.aws import iam_hook
from sluice.aws.account import ACCOUNT_ID, REGION
from sluice.aws.awslambda import FakeContext, record_error
from sluice.aws.emulator import Emulator
from sluice.aws.events_input import Undeliverable, transformed
from sluice.aws.moto_patch import replace
from sluice.aws.sqs import drain
from sluice.timeline import Timeline, describe_result

ASYNC_ATTEMPTS = 3  # Lambda's default for asynchronous invocation: the first try and two retries


@dataclass
class RuleTarget:
    """An EventBridge rule target the emulator cannot reach (Lambda, SNS), routed through an
    internal queue that moto's own rule matching and input transformer feed (sluice.stack.deploy)."""

    rule: str
    kind: str  # "lambda" | "sns"
    target: str  # function logical id, or topic ARN
    queue_url: str
    schedule: str | None = None  # rate(...) for scheduled rules


def put_event(aws: Emulator, source: str, detail_type: str, detail: dict) -> None:
    """Emit an event on the default bus, as an AWS service would."""
    aws.client("events").put_events(Entries=[
        {"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail), "Resources": []}])


def record_failed_invocation(aws: Emulator, rule: str) -> None:
    """What EventBridge records for a delivery that failed permanently."""
    aws.client("cloudwatch").put_metric_data(Namespace="AWS/Events", MetricData=[_failed_invocation(rule)])


def _failed_invocation(rule: str) -> dict[str, Any]:
    return {"MetricName": "FailedInvocations", "Dimensions": [{"Name": "RuleName", "Value": rule}],
            "Value": 1, "Unit": "Count"}


def failed_invocations(cloudwatch: Any) -> dict[str, int]:
    """FailedInvocations per rule, summed over the last 14 days (CloudWatch's own window)."""
    now = datetime.now(UTC)
    counts: dict[str, int] = {}
    for metric in cloudwatch.list_metrics(Namespace="AWS/Events", MetricName="FailedInvocations")["Metrics"]:
        rule = next(d["Value"] for d in metric["Dimensions"] if d["Name"] == "RuleName")
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/Events", MetricName="FailedInvocations", Dimensions=metric["Dimensions"],
            StartTime=now - timedelta(days=14), EndTime=now + timedelta(minutes=1), Period=86400 * 15,
            Statistics=["Sum"])["Datapoints"]
        counts[rule] = int(sum(p["Sum"] for p in points))
    return counts


def rate_seconds(expression: str) -> float:
    """rate(1 minute), rate(10 minutes), rate(2 hours) -> seconds. cron() is not ticked locally."""
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        raise ValueError(f"only rate(...) schedules run locally, not {expression!r}")
    unit = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2).rstrip("s")]
    return int(match.group(1)) * unit


class RuleTargetDelivery:
    def __init__(self, aws: Emulator, target: RuleTarget, timeline: Timeline,
                 handler: Callable[[dict, Any], Any] | None = None, function_name: str = "",
                 schedule_every: float | None = None, topic_key: str | None = None,
                 dead_letters: Any = None) -> None:
        self.aws = aws
        # The function's DLQ (DeadLetterConfig), an SQS client made as the function's role, and the
        # queue's URL: Lambda sends an event that failed every attempt there (Lambda developer guide,
        # "Adding a dead-letter queue": the execution role needs sqs:SendMessage).
        self.dead_letters = dead_letters
        self.topic_key = topic_key  # the KMS key ARN of an encrypted SNS target
        self.rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{target.rule}"
        self.schedule_every = schedule_every  # tests compress a rate(1 minute) schedule
        self.sqs = aws.client("sqs")
        self.target = target
        self.timeline = timeline
        self.handler = handler
        self.function_name = function_name
        self.delivered = 0  # events delivered to the target (tests wait on it: "two more sweeps")

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        threads = [threading.Thread(target=drain, args=(self.sqs, self.target.queue_url, stop, self._finish),
                                    daemon=True, name=f"events-{self.target.rule}")]
        if self.target.schedule:
            threads.append(threading.Thread(target=self._tick, args=(stop,), daemon=True,
                                            name=f"schedule-{self.target.rule}"))
        return threads

    def _finish(self, message: dict) -> bool:
        """Deliver one event from the target's queue; True when it is finished with."""
        finished = self._deliver(message)
        self.delivered += finished
        return finished

    def _deliver(self, message: dict) -> bool:
        """True when the message is finished with (delivered, or out of attempts)."""
        denied = self._denied()
        if denied:
            record_failed_invocation(self.aws, self.target.rule)
            self.timeline.emit("error", f"{self.target.rule}: delivery to {self.target.target} denied "
                                        f"({denied}); FailedInvocations +1")
            return True
        if self.target.kind == "sns":  # the target input as it is: a JSON string keeps its quotes
            self.aws.client("sns").publish(TopicArn=self.target.target, Message=message["Body"])
            self.timeline.emit("sns", f"published to {self.target.target.rsplit(':', 1)[-1]}")
            return True
        payload = json.loads(message["Body"])
        started = time.monotonic()
        try:
            if self.handler is None:  # logged and retried like any failed invocation
                raise LookupError(f"no handler for the Lambda target {self.target.target}")
            result = self.handler(payload, FakeContext(self.function_name))
        except Exception as error:
            attempt = int(message["Attributes"].get("ApproximateReceiveCount", "1"))
            record_error(self.aws, self.function_name)
            self.timeline.emit("error", f"{self.function_name} raised {error!r} (attempt {attempt})")
            if attempt >= ASYNC_ATTEMPTS:
                self._dead_letter(message["Body"], error)
                return True
            return False
        took = (time.monotonic() - started) * 1000
        self.timeline.emit("lambda", f"{self.function_name} <- {payload.get('detail-type')}: "
                                     f"{describe_result(result)} [{took:.0f} ms]")
        return True

    def _dead_letter(self, body: str, error: Exception) -> None:
        """Lambda's asynchronous invocation gives up: the event goes to the function's DLQ, with the
        error in the message attributes (Lambda developer guide, "Adding a dead-letter queue")."""
        if self.dead_letters is None:
            self.timeline.emit("error", f"{self.function_name}: event dropped after {ASYNC_ATTEMPTS} "
                                        f"attempts")
            return
        sqs, url = self.dead_letters
        try:
            why = f"{type(error).__name__}: {error}"[:256]
            sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes={
                "ErrorMessage": {"DataType": "String", "StringValue": why}})
        except ClientError as refused:  # the role may not send: the event is lost, as on Lambda
            self.timeline.emit("error", f"{self.function_name}: event lost, its DLQ refused it: {refused}")
            return
        self.timeline.emit("error", f"{self.function_name}: event sent to its DLQ after {ASYNC_ATTEMPTS} "
                                    f"attempts")

    def _denied(self) -> str | None:
        """The first action the target's policies refuse events.amazonaws.com, if any."""
        enforcer = iam_hook.active()
        if enforcer is None:
            return None
        source = {"aws:SourceArn": self.rule_arn, "aws:SourceAccount": ACCOUNT_ID}
        if self.target.kind == "lambda":
            wanted = [("lambda:InvokeFunction",
                       f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}", source)]
        else:  # no condition keys at all: "You can't use Condition blocks" for EventBridge (above)
            wanted = [("sns:Publish", self.target.target, {})]
            if self.topic_key:  # SNS asks KMS on EventBridge's behalf, without the source keys
                wanted += [("kms:GenerateDataKey", self.topic_key, {}), ("kms:Decrypt", self.topic_key, {})]
        for action, resource, keys in wanted:
            if not enforcer.delivery("events.amazonaws.com", f"delivery.{self.target.rule}", action,
                                     resource, keys).allowed:
                return f"{action} on {resource}"
        return None

    def _tick(self, stop: threading.Event) -> None:
        interval = self.schedule_every or rate_seconds(self.target.schedule or "")
        while not stop.wait(interval):
            self.sqs.send_message(QueueUrl=self.target.queue_url, MessageBody=json.dumps(
                scheduled_event(self.target.rule)))


def scheduled_event(rule: str) -> dict:
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": ACCOUNT_ID,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule}"], "detail": {}}


# --- where moto differs from AWS ------------------------------------------------------------

def correct_moto() -> None:
    """Apply this service's corrections to moto (idempotent; sluice.aws.corrections)."""
    _deliver_transformed_strings()
    _transform_input_as_aws_does()


def _deliver_transformed_strings() -> None:
    """moto 5.2.5 bug: an input transformer that yields a string (a readable message, as the
    template's notification rule does) crashes delivery to SQS whenever the text contains the
    letters "time" (`"time" in event`, then `event["time"]`). Deliver such strings as they are: the
    queue's body is the target input, the JSON text of the string. An output that is not valid JSON
    is not delivered, and counts in the rule's FailedInvocations."""
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.events.models import Rule
    from moto.sqs import sqs_backends

    def strings_as_they_are(original: Any) -> Any:
        def send(self: Rule, resource_id: str, event: Any, group_id: str | None = None) -> None:
            if isinstance(event, Undeliverable):
                cloudwatch_backends[self.account_id][self.region_name].put_metric_data(
                    "AWS/Events", [_failed_invocation(self.name)])
                return
            if not isinstance(event, str):
                return original(self, resource_id, event, group_id)
            sqs_backends[self.account_id][self.region_name].send_message(
                queue_name=resource_id, message_body=json.dumps(event, ensure_ascii=False), group_id=group_id)

        return send

    replace(Rule, "_send_to_sqs_queue", strings_as_they_are)


def _transform_input_as_aws_does() -> None:
    """moto's input transformer (EventTemplateParser.parse), as strict as AWS documents it
    ("Amazon EventBridge input transformation", EventBridge user guide):
    - a variable's value is put in as it is: "EventBridge doesn't escape values extracted by Input
      Path, when populating the Input Template for a target" (the page's "Common issues"; its newer
      version implies escaping, so the stricter reading is held to). A value with a quote, a
      backslash or a line break inside a quoted template therefore makes invalid JSON, and the
      target gets nothing (FailedInvocations) - where moto raised, and PutEvents answered 500;
    - a value that is an object or array goes in as JSON, a number or boolean as its literal;
    - `$.time` is the event's ISO 8601 time (as in every event AWS sends); moto keeps epoch seconds
      internally and pasted those in ("ended SUCCEEDED at 1796046286.17").
    Only custom templates are changed: moto's default template (no transformer) relies on the
    epoch value, which its SQS delivery converts itself."""
    from moto.events.utils import EventTemplateParser

    def as_aws_does(original: Any) -> Any:
        def parse(input_template: str, input_paths_map: dict[str, Any], event: Any) -> Any:
            if not input_template:
                return original(input_template, input_paths_map, event)
            return transformed(input_template, input_paths_map, event)

        return staticmethod(parse)

    replace(EventTemplateParser, "parse", as_aws_does)
