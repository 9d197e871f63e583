"""Deploy template.yaml into the emulator: what `sam deploy` does, for the resources that matter
locally.

moto's CloudFormation cannot create Glue resources and cannot run Lambda without Docker, so this
walks the translated template itself: its intrinsic functions resolved once (sluice.stack.resolve)
against the parameters of samconfig.toml's [local] environment, the create-time rules AWS applies
checked on that (sluice.stack.rules) before anything exists, and each resource created with the
emulator's API. IAM roles, KMS keys, log groups and resource policies are not created in the
emulator: the roles' policies and the resource policies are collected on the Stack
(sluice.stack.policies) for sluice.aws.iam to enforce.

    >>> stack = deploy(aws, SamApp.load(), local_parameters())        # doctest: +SKIP
    >>> stack.names["RawBucket"]                                      # doctest: +SKIP
    'sluice-local-raw-123456789012-us-east-1'
"""

from __future__ import annotations

import json
from typing import Any

from sluice.aws.account import queue_arn
from sluice.aws.awslambda import Function
from sluice.aws.emulator import Emulator
from sluice.aws.events import RuleTarget
from sluice.aws.sqs_event_source import EventSourceMapping
from sluice.stack import rules
from sluice.stack.model import Stack
from sluice.stack.policies import collect_policies
from sluice.stack.resolve import resolve_template
from sluice.stack.template import SamApp

# Types created in this order (queues before the bucket that notifies them, DLQs first).
CREATE_ORDER = ["AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::Glue::Database",
                "AWS::Glue::Crawler", "AWS::Glue::Job", "AWS::SNS::Topic", "AWS::SNS::Subscription",
                "AWS::Lambda::Function", "AWS::Events::Rule", "AWS::Lambda::EventSourceMapping",
                "AWS::CloudWatch::Alarm", "AWS::Athena::WorkGroup",
                "AWS::Glue::DataCatalogEncryptionSettings", "AWS::LakeFormation::Resource",
                "AWS::LakeFormation::PrincipalPermissions"]


def deploy(aws: Emulator, app: SamApp, params: dict[str, str], concurrency_quota: int | None = None) -> Stack:
    """Create the stack; a template AWS would refuse raises rules.CreateRuleError and creates
    nothing. `concurrency_quota`: the account's Lambda concurrency (default: the setting)."""
    template = resolve_template(app, params, sqs_endpoint=aws.endpoint)
    rules.check(template, concurrency_quota)
    stack = template.stack
    for rtype in CREATE_ORDER:
        batch = list(template.of_type(rtype))
        if rtype == "AWS::SQS::Queue":  # dead-letter queues before the queues that use them
            batch.sort(key=lambda item: "RedrivePolicy" in item[1])
        for logical_id, props in batch:
            _CREATORS[rtype](aws, app, stack, logical_id, props)
    collect_policies(template)
    outputs = app.translated.get("Outputs", {})
    stack.outputs = {k: str(template.resolve(v["Value"])) for k, v in outputs.items()}
    return stack


def _queue(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    attributes = {k: str(props[k]) for k in ("VisibilityTimeout", "MessageRetentionPeriod",
                                             "DelaySeconds") if k in props}
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
    expected = stack.names[logical_id]  # its Ref, resolved before anything was created
    url = aws.client("sqs").create_queue(QueueName=expected.rsplit("/", 1)[-1], Attributes=attributes)[
        "QueueUrl"]
    if url != expected:
        raise RuntimeError(f"{logical_id}: the emulator named the queue {url}, not its Ref {expected}")


def _table(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    keys = ("TableName", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")
    aws.client("dynamodb").create_table(**{k: props[k] for k in keys if k in props})


def _bucket(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    s3 = aws.client("s3")
    name = props["BucketName"]
    s3.create_bucket(Bucket=name)
    if props.get("VersioningConfiguration"):
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
    if props.get("BucketEncryption"):
        rules = [{"ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"]}
                 for r in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if props.get("PublicAccessBlockConfiguration"):
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
            k: bool(v) for k, v in props["PublicAccessBlockConfiguration"].items()})
    queues = props.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
    if queues:
        s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": q["Queue"], "Events": [q["Event"]]} for q in queues]})


def _database(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    aws.client("glue").create_database(DatabaseInput=props["DatabaseInput"])


def _crawler(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    keys = ("Name", "Role", "DatabaseName", "Targets", "SchemaChangePolicy", "RecrawlPolicy",
            "Configuration", "TablePrefix")
    aws.client("glue").create_crawler(**{k: props[k] for k in keys if k in props})


def _job(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    keys = ("Name", "Description", "Role", "Command", "DefaultArguments", "GlueVersion", "WorkerType",
            "NumberOfWorkers", "Timeout", "MaxRetries", "ExecutionProperty")
    job = {k: props[k] for k in keys if k in props}
    job["DefaultArguments"] = {k: str(v) for k, v in job.get("DefaultArguments", {}).items()}
    aws.client("glue").create_job(**job)


def _topic(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    attributes = {"DisplayName": props["DisplayName"]} if "DisplayName" in props else {}
    aws.client("sns").create_topic(Name=props["TopicName"], Attributes=attributes)


def _subscription(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    aws.client("sns").subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"],
                                Endpoint=props["Endpoint"])


def _function(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    env = {k: str(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()}
    dead_letters = props.get("DeadLetterConfig", {}).get("TargetArn")
    queue = next((stack.names[q] for q, arn in stack.arns.items() if arn == dead_letters), None)
    stack.functions[logical_id] = Function(
        logical_id=logical_id, name=props["FunctionName"], code_dir=app.code_paths[logical_id],
        handler=props["Handler"], environment=env, timeout=int(props.get("Timeout", 3)),
        dead_letter_queue=queue)


def _rule(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    events, sqs = aws.client("events"), aws.client("sqs")
    name = stack.names[logical_id]
    rule: dict[str, Any] = {"Name": name, "State": props.get("State", "ENABLED")}
    if "EventPattern" in props:
        rule["EventPattern"] = json.dumps(props["EventPattern"])
    if "ScheduleExpression" in props:
        rule["ScheduleExpression"] = props["ScheduleExpression"]
    events.put_rule(**rule)
    targets = []
    for index, target in enumerate(props.get("Targets", [])):
        kind = _target_kind(stack, target["Arn"])
        if kind is None:
            continue
        # A short visibility timeout: a failed delivery is retried soon, as EventBridge would.
        queue_url = sqs.create_queue(QueueName=f"{name}-target{index}"[:80],
                                     Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
        targets.append({k: v for k, v in {**target, "Arn": queue_arn(queue_url)}.items() if k != "RoleArn"})
        stack.rule_targets.append(RuleTarget(
            rule=name, kind=kind[0], target=kind[1], queue_url=queue_url,
            schedule=props.get("ScheduleExpression")))
    # moto matches a rule without an event pattern against every event; on AWS a schedule rule
    # fires only on its schedule. The runtime's ticker feeds scheduled targets' queues itself.
    if targets and "EventPattern" in props:
        events.put_targets(Rule=name, Targets=targets)


def _target_kind(stack: Stack, arn: str) -> tuple[str, str] | None:
    for logical_id, fn in stack.functions.items():
        if arn in (stack.arns[logical_id], fn.name):
            return "lambda", logical_id
    if arn.startswith("arn:aws:sns:"):
        return "sns", arn
    return None


def _mapping(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    function = next(lid for lid, fn in stack.functions.items() if fn.name == props["FunctionName"])
    queue_logical_id = next(lid for lid, arn in stack.arns.items() if arn == props["EventSourceArn"])
    stack.mappings.append(EventSourceMapping(
        function=function, queue_url=stack.names[queue_logical_id],
        batch_size=int(props.get("BatchSize", 10)),
        batching_window=int(props.get("MaximumBatchingWindowInSeconds", 0)),
        max_concurrency=int(props.get("ScalingConfig", {}).get("MaximumConcurrency", 2)),
        report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", [])))


def _alarm(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    """The alarm as PutMetricAlarm takes it; sluice.aws.cloudwatch evaluates it."""
    keys = ("AlarmName", "AlarmDescription", "Namespace", "MetricName", "Dimensions", "Statistic", "Period",
            "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData",
            "AlarmActions", "OKActions", "InsufficientDataActions", "ActionsEnabled")
    alarm = {k: props[k] for k in keys if k in props}
    for number in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if number in alarm:
            alarm[number] = int(alarm[number])
    alarm["Threshold"] = float(alarm["Threshold"])
    aws.client("cloudwatch").put_metric_alarm(**alarm)


def _work_group(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    aws.client("athena").create_work_group(Name=props["Name"], Description=props.get("Description", ""),
                                           Configuration=props.get("WorkGroupConfiguration", {}))


def _catalog_encryption(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    settings = dict(props["DataCatalogEncryptionSettings"])
    if "ConnectionPasswordEncryption" in settings:  # CloudFormation's KmsKeyId is the API's AwsKmsKeyId
        passwords = dict(settings["ConnectionPasswordEncryption"])
        if "KmsKeyId" in passwords:
            passwords["AwsKmsKeyId"] = passwords.pop("KmsKeyId")
        settings["ConnectionPasswordEncryption"] = passwords
    aws.client("glue").put_data_catalog_encryption_settings(DataCatalogEncryptionSettings=settings)


def _registered_location(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    """A location registered with Lake Formation: the local Athena reads it with Lake Formation's
    role (sluice.aws.athena.DataAccess)."""
    stack.registered_locations.append(props["ResourceArn"])


def _recorded(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    """Lake Formation's grants: kept on the stack (stack.resources); the template's are checked
    against the calls each principal makes (sluice.stack.lakeformation)."""


_CREATORS = {
    "AWS::SQS::Queue": _queue, "AWS::DynamoDB::Table": _table, "AWS::S3::Bucket": _bucket,
    "AWS::Glue::Database": _database, "AWS::Glue::Crawler": _crawler, "AWS::Glue::Job": _job,
    "AWS::SNS::Topic": _topic, "AWS::SNS::Subscription": _subscription,
    "AWS::Lambda::Function": _function, "AWS::Events::Rule": _rule,
    "AWS::Lambda::EventSourceMapping": _mapping, "AWS::CloudWatch::Alarm": _alarm,
    "AWS::Athena::WorkGroup": _work_group,
    "AWS::Glue::DataCatalogEncryptionSettings": _catalog_encryption,
    "AWS::LakeFormation::Resource": _registered_location,
    "AWS::LakeFormation::PrincipalPermissions": _recorded,
}
