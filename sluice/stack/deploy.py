"""Deploy template.yaml into the emulator: what `sam deploy` does, for the resources that matter
locally.

moto's CloudFormation cannot create Glue resources and cannot run Lambda without Docker, so this
walks the translated template itself: it resolves the intrinsic functions (Ref, GetAtt, Sub, If,
...) against the parameters of samconfig.toml's [local] environment and creates each resource
with the emulator's API. IAM roles, KMS keys, log groups and resource policies are not created in
the emulator: the roles' policies (who may do what) and the resource policies (bucket, queue,
topic, key, function) are collected on the Stack for sluice.aws.iam to enforce.

    >>> stack = deploy(emulator, SamApp.load(), local_parameters())   # doctest: +SKIP
    >>> stack.names["RawBucket"]                                      # doctest: +SKIP
    'sluice-local-raw-123456789012-us-east-1'
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluice.aws.emulator import ACCOUNT_ID, REGION, Emulator
from sluice.aws.iam import Policy, Principal, managed_policy
from sluice.stack.template import ROOT, SamApp

PSEUDO = {"AWS::AccountId": ACCOUNT_ID, "AWS::Region": REGION, "AWS::Partition": "aws",
          "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": None}


def local_parameters(config: Path = ROOT / "samconfig.toml", env: str = "local") -> dict[str, str]:
    """parameter_overrides of one samconfig.toml environment, as a dict."""
    settings = tomllib.loads(config.read_text()).get(env, {})
    overrides = settings.get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
    stack_name = settings.get("global", {}).get("parameters", {}).get("stack_name", f"sluice-{env}")
    params = dict(item.split("=", 1) for item in shlex.split(overrides))
    return {"AWS::StackName": stack_name, **params}


@dataclass
class Function:
    logical_id: str
    name: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout: int


@dataclass
class EventSourceMapping:
    function: str  # logical id
    queue_url: str
    batch_size: int
    batching_window: int
    max_concurrency: int
    report_batch_item_failures: bool


@dataclass
class RuleTarget:
    """An EventBridge rule target the emulator cannot reach (Lambda, SNS), routed through an
    internal queue that moto's own rule matching and input transformer feed."""

    rule: str
    kind: str  # "lambda" | "sns"
    target: str  # function logical id, or topic ARN
    queue_url: str
    schedule: str | None = None  # rate(...) for scheduled rules


@dataclass
class Stack:
    names: dict[str, str] = field(default_factory=dict)  # logical id -> name / URL / ARN (Ref)
    arns: dict[str, str] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)
    mappings: list[EventSourceMapping] = field(default_factory=list)
    rule_targets: list[RuleTarget] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    resources: dict[str, dict] = field(default_factory=dict)  # resolved properties
    roles: dict[str, Principal] = field(default_factory=dict)  # role logical id -> its policies
    # function, crawler and job logical id -> the role it runs as
    principals: dict[str, Principal] = field(default_factory=dict)
    resource_policies: dict[str, dict] = field(default_factory=dict)  # resource ARN -> document

    def function_environment(self) -> dict[str, str]:
        """Every function's variables, merged: handlers run in this one process, so two functions
        may not give one variable different values."""
        merged: dict[str, str] = {}
        for fn in self.functions.values():
            for key, value in fn.environment.items():
                if merged.get(key, value) != value:
                    raise ValueError(f"functions disagree on {key}: {merged[key]!r} vs {value!r}")
                merged[key] = value
        return merged


class _Resolver:
    def __init__(self, app: SamApp, params: dict[str, str], stack: Stack) -> None:
        self.app = app
        self.stack = stack
        self.values: dict[str, Any] = {**PSEUDO}
        for name, spec in app.parameters.items():
            self.values[name] = params.get(name, spec.get("Default"))
        self.values["AWS::StackName"] = params.get("AWS::StackName", "sluice-local")
        self.conditions = {
            name: self(expr) for name, expr in app.translated.get("Conditions", {}).items()}

    def __call__(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self(item) for item in node) if v is not None]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.values[arg] if arg in self.values else self.stack.names[arg]
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._attribute(logical_id, attribute)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::If":
                name, yes, no = arg
                return self(yes if self.conditions[name] else no)
            if key == "Fn::Not":
                return not self(arg[0])
            if key == "Fn::Equals":
                return str(self(arg[0])) == str(self(arg[1]))
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self(arg[1]))
            if key == "Fn::Select":
                return self(arg[1])[int(self(arg[0]))]
            if key == "Fn::Split":
                return str(self(arg[1])).split(arg[0])
            if key == "Condition":
                return self.conditions[arg]
        # A property whose value is AWS::NoValue is left out, as CloudFormation leaves it out.
        return {k: v for k, v in ((k, self(v)) for k, v in node.items()) if v is not None}

    def _attribute(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn":
            return self.stack.arns[logical_id]
        if attribute in ("QueueName", "TopicName"):
            return self.stack.names[logical_id].rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        raise KeyError(f"GetAtt {logical_id}.{attribute} is not supported locally")

    def _sub(self, arg: Any) -> str:
        template, local = (arg, {}) if isinstance(arg, str) else (arg[0], self(arg[1]))

        def replace(match: re.Match) -> str:
            ref = match.group(1)
            if ref in local:
                return str(local[ref])
            if "." in ref:
                logical_id, attribute = ref.split(".", 1)
                return self._attribute(logical_id, attribute)
            return str(self({"Ref": ref}))

        return re.sub(r"\$\{([^}!]+)\}", replace, template)


def _name_and_arn(rtype: str, logical_id: str, props: dict, stack_name: str) -> tuple[str, str]:
    """What Ref returns and what GetAtt Arn returns, before anything exists."""
    default = f"{stack_name}-{logical_id}"
    arn = f"arn:aws:{{}}:{REGION}:{ACCOUNT_ID}:{{}}"
    if rtype == "AWS::S3::Bucket":
        name = props.get("BucketName", default.lower())
        return name, f"arn:aws:s3:::{name}"
    if rtype == "AWS::SQS::Queue":
        name = props.get("QueueName", default)
        return f"__queue_url__{name}", arn.format("sqs", name)
    if rtype == "AWS::DynamoDB::Table":
        name = props.get("TableName", default)
        return name, arn.format("dynamodb", f"table/{name}")
    if rtype == "AWS::SNS::Topic":
        name = props.get("TopicName", default)
        return arn.format("sns", name), arn.format("sns", name)
    if rtype == "AWS::Glue::Database":
        return props["DatabaseInput"]["Name"], ""
    if rtype in ("AWS::Glue::Crawler", "AWS::Glue::Job", "AWS::Glue::SecurityConfiguration"):
        return props.get("Name", default), ""
    if rtype == "AWS::Lambda::Function":
        name = props.get("FunctionName", default)
        return name, arn.format("lambda", f"function:{name}")
    if rtype == "AWS::Events::Rule":
        name = props.get("Name", default)
        return name, arn.format("events", f"rule/{name}")
    if rtype == "AWS::IAM::Role":
        name = props.get("RoleName", default)
        return name, f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"
    if rtype == "AWS::KMS::Key":  # Ref is the key id, stable per stack and logical id
        key_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{stack_name}/{logical_id}"))
        return key_id, arn.format("kms", f"key/{key_id}")
    return default, arn.format("cloudformation", f"{logical_id}")


# Types created in this order (queues before the bucket that notifies them, DLQs first).
CREATE_ORDER = ["AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::Glue::Database",
                "AWS::Glue::Crawler", "AWS::Glue::Job", "AWS::SNS::Topic", "AWS::SNS::Subscription",
                "AWS::Lambda::Function", "AWS::Events::Rule", "AWS::Lambda::EventSourceMapping"]


def deploy(aws: Emulator, app: SamApp, params: dict[str, str]) -> Stack:
    stack = Stack()
    resolve = _Resolver(app, params, stack)
    stack_name = resolve.values["AWS::StackName"]
    ordered = sorted(app.resources.items(), key=lambda item: item[0])
    # Phase 1: every resource's name and ARN (names depend only on parameters in this template).
    for logical_id, resource in ordered:
        props = resolve(_name_properties(resource.get("Properties", {})))
        stack.names[logical_id], stack.arns[logical_id] = _name_and_arn(
            resource["Type"], logical_id, props, stack_name)
    # Phase 2: create, type by type.
    for rtype in CREATE_ORDER:
        batch = [(lid, r) for lid, r in ordered if r["Type"] == rtype]
        if rtype == "AWS::SQS::Queue":  # dead-letter queues before the queues that use them
            batch.sort(key=lambda item: "RedrivePolicy" in item[1].get("Properties", {}))
        for logical_id, resource in batch:
            if "Condition" in resource and not resolve.conditions[resource["Condition"]]:
                continue
            props = resolve(resource.get("Properties", {}))
            stack.resources[logical_id] = props
            _CREATORS[rtype](aws, app, stack, logical_id, props)
    _collect_policies(app, stack, resolve)
    stack.outputs = {k: str(resolve(v["Value"])) for k, v in app.translated.get("Outputs", {}).items()}
    return stack


_POLICY_TYPES = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::KMS::Key",
                 "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy",
                 "AWS::Lambda::Permission")


def _collect_policies(app: SamApp, stack: Stack, resolve: _Resolver) -> None:
    """Each role's inline and managed policies, who runs as which role, and each resource policy,
    resolved as CloudFormation would resolve them."""
    found = [(lid, r["Type"], resolve(r.get("Properties", {}))) for lid, r in sorted(app.resources.items())
             if r["Type"] in _POLICY_TYPES and resolve.conditions.get(r.get("Condition"), True)]
    for lid, rtype, props in found:
        if rtype == "AWS::IAM::Role":
            policies = [Policy(p["PolicyName"], p["PolicyDocument"]) for p in props.get("Policies", [])]
            policies += [managed_policy(arn) for arn in props.get("ManagedPolicyArns", [])]
            stack.roles[lid] = Principal(lid, stack.arns[lid], policies)
    for lid, rtype, props in found:
        if rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for role in props.get("Roles", []):
                stack.roles[_role(stack, role)].policies.append(
                    Policy(props.get("PolicyName") or props.get("ManagedPolicyName") or lid,
                           props["PolicyDocument"]))
        elif rtype == "AWS::KMS::Key" and "KeyPolicy" in props:
            _add_statements(stack, stack.arns[lid], props["KeyPolicy"])
        elif rtype == "AWS::S3::BucketPolicy":
            _add_statements(stack, f"arn:aws:s3:::{props['Bucket']}", props["PolicyDocument"])
        elif rtype == "AWS::SQS::QueuePolicy":
            for url in props["Queues"]:
                queue = next(q for q, name in stack.names.items() if name == url)
                _add_statements(stack, stack.arns[queue], props["PolicyDocument"])
        elif rtype == "AWS::SNS::TopicPolicy":
            for topic in props["Topics"]:
                _add_statements(stack, topic, props["PolicyDocument"])
        elif rtype == "AWS::Lambda::Permission":
            _add_statements(stack, *_function_permission(lid, props))
    for lid, props in stack.resources.items():  # functions, the crawler, the job
        if props.get("Role"):
            stack.principals[lid] = stack.roles[_role(stack, props["Role"])]


def _role(stack: Stack, name_or_arn: str) -> str:
    return next(lid for lid in stack.roles if name_or_arn in (stack.arns[lid], stack.names[lid]))


def _add_statements(stack: Stack, arn: str, document: dict) -> None:
    """A resource's policies, merged into one document (a queue or topic may have several)."""
    statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
    stack.resource_policies.setdefault(arn, {"Version": "2012-10-17", "Statement": []})[
        "Statement"].extend(statements)


def _function_permission(logical_id: str, props: dict) -> tuple[str, dict]:
    """An AWS::Lambda::Permission as the statement Lambda adds to the function's policy (Lambda
    Developer Guide, "Viewing resource-based IAM policies in Lambda")."""
    function = props["FunctionName"]
    arn = function if function.startswith("arn:") else \
        f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function}"
    who = props["Principal"]
    condition = {}
    if "SourceArn" in props:
        condition["ArnLike"] = {"AWS:SourceArn": props["SourceArn"]}
    if "SourceAccount" in props:
        condition["StringEquals"] = {"AWS:SourceAccount": props["SourceAccount"]}
    statement = {"Sid": logical_id, "Effect": "Allow", "Action": props["Action"], "Resource": arn,
                 "Principal": {"Service": who} if who.endswith(".amazonaws.com") else {"AWS": who}}
    return arn, {"Statement": [{**statement, **({"Condition": condition} if condition else {})}]}


def _name_properties(props: dict) -> dict:
    keys = ("BucketName", "QueueName", "TableName", "TopicName", "Name", "FunctionName", "DatabaseInput",
            "RoleName")
    return {k: v for k, v in props.items() if k in keys}


def _queue(aws: Emulator, app: SamApp, stack: Stack, logical_id: str, props: dict) -> None:
    attributes = {k: str(props[k]) for k in ("VisibilityTimeout", "MessageRetentionPeriod",
                                             "DelaySeconds") if k in props}
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
    name = stack.names[logical_id].removeprefix("__queue_url__")
    url = aws.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    _replace_name(stack, logical_id, url)


def _replace_name(stack: Stack, logical_id: str, value: str) -> None:
    """Queue URLs are known only once created; earlier resolved values used a placeholder."""
    placeholder = stack.names[logical_id]
    stack.names[logical_id] = value
    for fn in stack.functions.values():
        fn.environment = {k: v.replace(placeholder, value) for k, v in fn.environment.items()}


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
    stack.functions[logical_id] = Function(
        logical_id=logical_id, name=props["FunctionName"], code_dir=app.code_paths[logical_id],
        handler=props["Handler"], environment=env, timeout=int(props.get("Timeout", 3)))


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
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        targets.append({k: v for k, v in {**target, "Arn": queue_arn}.items() if k != "RoleArn"})
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


_CREATORS = {
    "AWS::SQS::Queue": _queue, "AWS::DynamoDB::Table": _table, "AWS::S3::Bucket": _bucket,
    "AWS::Glue::Database": _database, "AWS::Glue::Crawler": _crawler, "AWS::Glue::Job": _job,
    "AWS::SNS::Topic": _topic, "AWS::SNS::Subscription": _subscription,
    "AWS::Lambda::Function": _function, "AWS::Events::Rule": _rule,
    "AWS::Lambda::EventSourceMapping": _mapping,
}
