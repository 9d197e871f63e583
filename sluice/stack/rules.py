"""Create-time rules AWS applies and moto does not: a template AWS would refuse is refused by
`sluice up` too, naming the resource and the rule, before anything is created.

Each rule cites the page that states it. The account's Lambda concurrency quota is a setting
(SLUICE_LAMBDA_CONCURRENCY_QUOTA, default 10: "New AWS accounts have reduced concurrency and memory
quotas" - Lambda developer guide, "Lambda quotas" - without saying how reduced; any quota under
100 refuses every reservation, as such an account does. 1,000 is the default quota of an account
AWS has raised.)

    >>> from sluice.stack.resolve import local_parameters
    >>> app = SamApp.load()
    >>> refusals(app, local_parameters())
    []
    >>> for refusal in refusals(app, {**local_parameters(), "IngestBatchSize": "20"}):
    ...     print(refusal.rule)
    BatchSize 20 above 10 needs MaximumBatchingWindowInSeconds >= 1 (it is 0)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from sluice.aws.iam_audit import Audit
from sluice.aws.iam_hook import Enforcer
from sluice.aws.sqs import s3_may_send
from sluice.stack.policies import add_statements, queue_of
from sluice.stack.resolve import Template, resolve_template
from sluice.stack.template import SamApp

# Lambda keeps this much of the account's concurrency unreserved: "You can reserve up to the
# Unreserved account concurrency value minus 100" (docs.aws.amazon.com/lambda/latest/dg/
# configuration-concurrency.html).
UNRESERVED_MINIMUM = 100
QUOTA_SETTING = "SLUICE_LAMBDA_CONCURRENCY_QUOTA"
NEW_ACCOUNT_QUOTA = 10  # reduced, as a new account's is ("Lambda quotas"); below 100 nothing can be reserved
# Glue uses these itself; a job must not set them (docs.aws.amazon.com/glue/latest/dg/
# aws-glue-programming-etl-glue-arguments.html, "Using job parameters in AWS Glue jobs").
GLUE_RESERVED_ARGUMENTS = ("--conf", "--debug", "--mode", "--JOB_NAME")
DEFAULTS = {"BatchSize": 10, "MaximumBatchingWindowInSeconds": 0, "Timeout": 3,
            "VisibilityTimeout": 30, "MessageRetentionPeriod": 345_600}  # AWS's defaults


@dataclass(frozen=True)
class Refusal:
    resource: str  # logical id
    rule: str

    def __str__(self) -> str:
        return f"{self.resource}: {self.rule}"


class CreateRuleError(ValueError):
    def __init__(self, refusals: list[Refusal]) -> None:
        self.refusals = refusals
        super().__init__("AWS would refuse this template:\n" + "\n".join(f"  {r}" for r in refusals))


def check(template: Template, concurrency_quota: int | None = None) -> None:
    """Raise CreateRuleError listing every rule the resolved template breaks (the account's Lambda
    concurrency is `concurrency_quota`, or the setting)."""
    if found := template_refusals(template, concurrency_quota):
        raise CreateRuleError(found)


def refusals(app: SamApp, params: dict[str, str], concurrency_quota: int | None = None) -> list[Refusal]:
    """Every rule the template breaks with these parameters."""
    return template_refusals(resolve_template(app, params), concurrency_quota)


def template_refusals(template: Template, concurrency_quota: int | None = None) -> list[Refusal]:
    quota = concurrency_quota or int(os.environ.get(QUOTA_SETTING, str(NEW_ACCOUNT_QUOTA)))
    return [*_parameters(template.app, template.params), *_sqs_mappings(template),
            *_reserved_concurrency(template, quota), *_glue_jobs(template), *_dead_letter_retention(template),
            *_s3_to_queue(template)]


def _parameters(app: SamApp, params: dict[str, str]) -> Iterator[Refusal]:
    """CloudFormation checks every parameter value against its own constraints before it creates
    anything (docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html:
    AllowedPattern, AllowedValues, MinValue/MaxValue for Number, MinLength/MaxLength for String)."""
    for name, spec in app.parameters.items():
        value = str(params.get(name, spec.get("Default", "")))
        where = f"parameter {name}={value!r}"
        if spec.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                yield Refusal(name, f"{where} is not a number")
                continue
            if "MinValue" in spec and number < float(spec["MinValue"]):
                yield Refusal(name, f"{where} is below its MinValue {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                yield Refusal(name, f"{where} is above its MaxValue {spec['MaxValue']}")
        if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
            yield Refusal(name, f"{where} is not one of its AllowedValues {spec['AllowedValues']}")
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
            yield Refusal(name, f"{where} does not match its AllowedPattern {spec['AllowedPattern']}")
        if "MinLength" in spec and len(value) < int(spec["MinLength"]):
            yield Refusal(name, f"{where} is shorter than its MinLength {spec['MinLength']}")
        if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
            yield Refusal(name, f"{where} is longer than its MaxLength {spec['MaxLength']}")


def _n(props: dict, key: str) -> int:
    return int(props.get(key, DEFAULTS[key]))


def _sqs_mappings(t: Template) -> Iterator[Refusal]:
    """Lambda's parameters for SQS event source mappings (docs.aws.amazon.com/lambda/latest/dg/
    services-sqs-parameters.html: BatchSize at most 10,000, 10 for FIFO queues; API_ScalingConfig:
    MaximumConcurrency 2 to 1,000; CreateEventSourceMapping's MaximumBatchingWindowInSeconds: "when
    you set BatchSize to a value greater than 10, you must set MaximumBatchingWindowInSeconds to at
    least 1"), and services-sqs-configure.html: "Your function's timeout must be less than or equal
    to the queue's visibility timeout. Lambda validates this requirement"."""
    for lid, props in t.of_type("AWS::Lambda::EventSourceMapping"):
        queue = t.by_arn(str(props.get("EventSourceArn", "")))
        if queue is None or not str(props["EventSourceArn"]).startswith("arn:aws:sqs:"):
            continue
        queue_id, queue_props = queue
        fifo = str(queue_props.get("FifoQueue", "false")).lower() == "true" or \
            str(queue_props.get("QueueName", "")).endswith(".fifo")
        batch, window = _n(props, "BatchSize"), _n(props, "MaximumBatchingWindowInSeconds")
        if fifo and batch > 10:
            yield Refusal(lid, f"BatchSize {batch} on FIFO queue {queue_id}: at most 10")
        elif batch > 10_000:
            yield Refusal(lid, f"BatchSize {batch}: at most 10,000 for a standard queue")
        elif batch > 10 and window < 1:
            yield Refusal(lid, f"BatchSize {batch} above 10 needs MaximumBatchingWindowInSeconds >= 1 "
                               f"(it is {window})")
        concurrency = props.get("ScalingConfig", {}).get("MaximumConcurrency")
        if concurrency is not None and not 2 <= int(concurrency) <= 1000:
            yield Refusal(lid, f"ScalingConfig MaximumConcurrency {concurrency}: must be 2 to 1,000")
        function = next(((f, p) for f, p in t.of_type("AWS::Lambda::Function")
                         if p.get("FunctionName") == props.get("FunctionName")), None)
        if function and _n(function[1], "Timeout") > _n(queue_props, "VisibilityTimeout"):
            yield Refusal(lid, f"function {function[0]} Timeout {_n(function[1], 'Timeout')} s exceeds "
                               f"queue {queue_id} VisibilityTimeout {_n(queue_props, 'VisibilityTimeout')} s")


def _reserved_concurrency(t: Template, quota: int) -> Iterator[Refusal]:
    reserved = {lid: int(p["ReservedConcurrentExecutions"]) for lid, p in t.of_type("AWS::Lambda::Function")
                if "ReservedConcurrentExecutions" in p}
    if reserved and quota - sum(reserved.values()) < UNRESERVED_MINIMUM:
        yield Refusal(", ".join(reserved), f"ReservedConcurrentExecutions {sum(reserved.values())} leaves "
                      f"{quota - sum(reserved.values())} of the account's "
                      f"{quota} unreserved; Lambda keeps at least {UNRESERVED_MINIMUM} "
                      f"(quota setting: {QUOTA_SETTING})")


def _glue_jobs(t: Template) -> Iterator[Refusal]:
    """Glue's Job structure (docs.aws.amazon.com/glue/latest/dg/aws-glue-api-jobs-job.html):
    "Do not set Max Capacity if using WorkerType and NumberOfWorkers"; Timeout in minutes, at
    least 1; arguments are string-to-string pairs; a Spark job runs at least 2 workers (the
    driver and one executor; docs.aws.amazon.com/glue/latest/dg/worker-types.html)."""
    for lid, props in t.of_type("AWS::Glue::Job"):
        if "WorkerType" in props and "MaxCapacity" in props:
            yield Refusal(lid, "WorkerType and MaxCapacity are exclusive: set one")
        if props.get("WorkerType") in ("G.1X", "G.2X") and int(props.get("NumberOfWorkers", 0)) < 2:
            yield Refusal(lid, f"NumberOfWorkers {props.get('NumberOfWorkers')} for {props['WorkerType']}: "
                               f"at least 2")
        if "Timeout" in props and int(props["Timeout"]) < 1:
            yield Refusal(lid, f"Timeout {props['Timeout']} minutes: at least 1")
        for kind in ("DefaultArguments", "NonOverridableArguments"):
            for name, value in props.get(kind, {}).items():
                if name in GLUE_RESERVED_ARGUMENTS:
                    yield Refusal(lid, f"{kind} sets {name}, which Glue reserves")
                elif isinstance(value, dict | list | bool) or value is None or str(value) == "":
                    yield Refusal(lid, f"{kind} {name} is {value!r}: a value must be a non-empty string")


def _dead_letter_retention(t: Template) -> Iterator[Refusal]:
    """A standard queue's message expires by its original enqueue time, also in the DLQ: "always
    set the retention period of a dead-letter queue to be longer than the retention period of the
    original queue" (docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/
    setting-up-dead-letter-queue-retention.html). AWS accepts such a queue - this is AWS's advice,
    not its refusal - but a message moved there could expire on arrival and be lost, so Sluice's
    own deploy refuses it, as the issue that added these rules asked."""
    for lid, props in t.of_type("AWS::SQS::Queue"):
        dlq = t.by_arn(str(props.get("RedrivePolicy", {}).get("deadLetterTargetArn", "")))
        kept, source = _n(dlq[1], "MessageRetentionPeriod") if dlq else 0, _n(props, "MessageRetentionPeriod")
        if dlq and kept <= source:
            yield Refusal(lid, f"dead-letter queue {dlq[0]} keeps messages {kept} s, not longer than this "
                               f"queue's {source} s: moved messages would expire early")


def _s3_to_queue(t: Template) -> Iterator[Refusal]:
    """S3 checks it may write to a notification's queue when the configuration is set, and refuses
    it otherwise ("Unable to validate the following destination configurations"); the queue's
    policy must allow s3.amazonaws.com sqs:SendMessage (docs.aws.amazon.com/AmazonS3/latest/
    userguide/grant-destinations-permissions-to-s3.html)."""
    policies: dict[str, dict] = {}
    for _, props in t.of_type("AWS::SQS::QueuePolicy"):
        for url in props.get("Queues", []):
            add_statements(policies, t.stack.arns[queue_of(t.stack, url)], props["PolicyDocument"])
    s3 = Enforcer(Audit(), policies)  # decides as on delivery (not installed: no client is hooked)
    for lid, props in t.of_type("AWS::S3::Bucket"):
        for target in props.get("NotificationConfiguration", {}).get("QueueConfigurations", []):
            queue = str(target["Queue"])
            if not s3_may_send(s3, t.stack.names[lid], queue, "s3.PutBucketNotificationConfiguration"):
                yield Refusal(lid, f"Unable to validate the following destination configurations: "
                                   f"the policy of {queue} does not let s3.amazonaws.com sqs:SendMessage")
