"""The template's intrinsic functions (Ref, GetAtt, Sub, If, ...) resolved as CloudFormation
resolves them, against one samconfig.toml environment's parameters, and what each resource's Ref
and GetAtt Arn return before anything exists. The template is resolved once (`resolve_template`),
and the create-time rules, the deploy and the policies all read that one result.

    >>> template = resolve_template(SamApp.load(), local_parameters())
    >>> template.resolve({"Fn::Sub": "sluice-${Stage}"})
    'sluice-local'
    >>> template.stack.names["IngestQueue"]      # a queue's Ref is its URL, known before it exists
    'https://sqs.us-east-1.amazonaws.com/123456789012/sluice-local-ingest'
"""

from __future__ import annotations

import re
import shlex
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice import ROOT
from sluice.aws.account import ACCOUNT_ID, REGION
from sluice.stack.model import Stack
from sluice.stack.template import SamApp

PSEUDO = {"AWS::AccountId": ACCOUNT_ID, "AWS::Region": REGION, "AWS::Partition": "aws",
          "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": None}
SQS_ENDPOINT = f"https://sqs.{REGION}.amazonaws.com"  # where a queue's URL begins on AWS


def local_parameters(config: Path = ROOT / "samconfig.toml", env: str = "local") -> dict[str, str]:
    """parameter_overrides of one samconfig.toml environment, as a dict."""
    settings = tomllib.loads(config.read_text()).get(env, {})
    overrides = settings.get("deploy", {}).get("parameters", {}).get("parameter_overrides", "")
    stack_name = settings.get("global", {}).get("parameters", {}).get("stack_name", f"sluice-{env}")
    params = dict(item.split("=", 1) for item in shlex.split(overrides))
    return {"AWS::StackName": stack_name, **params}


class Resolver:
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

    def included(self, resource: dict) -> bool:
        """Is the resource created (no Condition, or its condition holds)?"""
        return "Condition" not in resource or bool(self.conditions[resource["Condition"]])

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


@dataclass
class Template:
    """The template as CloudFormation would create it: each resource's Ref and Arn (on `stack`),
    and the properties of every resource its condition keeps, resolved."""

    app: SamApp
    params: dict[str, str]
    stack: Stack
    resolve: Resolver
    resources: dict[str, tuple[str, dict]]  # logical id -> (type, resolved properties)

    def of_type(self, rtype: str) -> Iterator[tuple[str, dict]]:
        return ((lid, props) for lid, (t, props) in sorted(self.resources.items()) if t == rtype)

    def by_arn(self, arn: str) -> tuple[str, dict] | None:
        lid = next((lid for lid, a in self.stack.arns.items() if arn and a == arn), None)
        return (lid, self.resources[lid][1]) if lid in self.resources else None


def resolve_template(app: SamApp, params: dict[str, str], sqs_endpoint: str = SQS_ENDPOINT) -> Template:
    """The template resolved against `params`, once; its Stack holds each resource's Ref and Arn
    and, in `resources`, its resolved properties (the deploy fills in the rest). `sqs_endpoint`:
    where the queues' URLs begin (the emulator's endpoint, for a local deploy)."""
    stack = Stack()
    resolve = name_resources(app, params, stack, sqs_endpoint)
    resources = {lid: (r["Type"], resolve(r.get("Properties", {})))
                 for lid, r in sorted(app.resources.items()) if resolve.included(r)}
    stack.resources = {lid: props for lid, (_, props) in resources.items()}
    return Template(app, params, stack, resolve, resources)


def name_resources(app: SamApp, params: dict[str, str], stack: Stack,
                   sqs_endpoint: str = SQS_ENDPOINT) -> Resolver:
    """Every resource's Ref and GetAtt Arn on the stack (names depend only on parameters in this
    template), and a resolver that can then resolve any property."""
    resolve = Resolver(app, params, stack)
    stack_name = resolve.values["AWS::StackName"]
    for logical_id, resource in sorted(app.resources.items()):
        props = resolve(_name_properties(resource.get("Properties", {})))
        stack.names[logical_id], stack.arns[logical_id] = name_and_arn(
            resource["Type"], logical_id, props, stack_name, sqs_endpoint)
    return resolve


def name_and_arn(rtype: str, logical_id: str, props: dict, stack_name: str,
                 sqs_endpoint: str = SQS_ENDPOINT) -> tuple[str, str]:
    """What Ref returns and what GetAtt Arn returns, before anything exists. A queue's Ref is its
    URL ("AWS::SQS::Queue", CloudFormation user guide, return values), which is the endpoint, the
    account and the name (sluice.aws.account.queue_arn)."""
    default = f"{stack_name}-{logical_id}"
    arn = f"arn:aws:{{}}:{REGION}:{ACCOUNT_ID}:{{}}"
    if rtype == "AWS::S3::Bucket":
        name = props.get("BucketName", default.lower())
        return name, f"arn:aws:s3:::{name}"
    if rtype == "AWS::SQS::Queue":
        name = props.get("QueueName", default)
        return f"{sqs_endpoint}/{ACCOUNT_ID}/{name}", arn.format("sqs", name)
    if rtype == "AWS::DynamoDB::Table":
        name = props.get("TableName", default)
        return name, arn.format("dynamodb", f"table/{name}")
    if rtype == "AWS::SNS::Topic":
        name = props.get("TopicName", default)
        return arn.format("sns", name), arn.format("sns", name)
    if rtype == "AWS::Athena::WorkGroup":
        return props["Name"], arn.format("athena", f"workgroup/{props['Name']}")
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
    if rtype == "AWS::CloudWatch::Alarm":
        name = props.get("AlarmName", default)
        return name, arn.format("cloudwatch", f"alarm:{name}")
    if rtype == "AWS::KMS::Key":  # Ref is the key id, stable per stack and logical id
        key_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{stack_name}/{logical_id}"))
        return key_id, arn.format("kms", f"key/{key_id}")
    return default, arn.format("cloudformation", f"{logical_id}")


def _name_properties(props: dict) -> dict:
    keys = ("BucketName", "QueueName", "TableName", "TopicName", "Name", "FunctionName", "DatabaseInput",
            "RoleName", "AlarmName")
    return {k: v for k, v in props.items() if k in keys}
