"""Who may do what, as deployed: each role's inline and managed policies, which role each
function, crawler and job runs as, and each resource policy (bucket, queue, topic, key,
function), resolved as CloudFormation would resolve them, for sluice.aws.iam to enforce."""

from __future__ import annotations

from sluice.aws.account import ACCOUNT_ID, REGION
from sluice.aws.iam import Policy, Principal, managed_policy
from sluice.stack.model import Stack
from sluice.stack.resolve import Template

POLICY_TYPES = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::KMS::Key",
                "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy",
                "AWS::Lambda::Permission")
RUN_AS_A_ROLE = ("AWS::Lambda::Function", "AWS::Glue::Crawler", "AWS::Glue::Job")


def collect_policies(template: Template) -> None:
    """Fill the template's stack.roles, stack.principals and stack.resource_policies."""
    stack = template.stack
    found = [(lid, rtype, props) for lid, (rtype, props) in sorted(template.resources.items())
             if rtype in POLICY_TYPES]
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
            add_statements(stack.resource_policies, stack.arns[lid], props["KeyPolicy"])
        elif rtype == "AWS::S3::BucketPolicy":
            add_statements(stack.resource_policies, f"arn:aws:s3:::{props['Bucket']}",
                           props["PolicyDocument"])
        elif rtype == "AWS::SQS::QueuePolicy":
            for url in props["Queues"]:
                add_statements(stack.resource_policies, stack.arns[queue_of(stack, url)],
                               props["PolicyDocument"])
        elif rtype == "AWS::SNS::TopicPolicy":
            for topic in props["Topics"]:
                add_statements(stack.resource_policies, topic, props["PolicyDocument"])
        elif rtype == "AWS::Lambda::Permission":
            add_statements(stack.resource_policies, *_function_permission(lid, props))
    for lid, (rtype, props) in template.resources.items():
        if rtype in RUN_AS_A_ROLE and props.get("Role"):
            stack.principals[lid] = stack.roles[_role(stack, props["Role"])]


def queue_of(stack: Stack, url: str) -> str:
    """The logical id of the queue whose Ref (URL) this is."""
    return next(q for q, name in stack.names.items() if name == url)


def _role(stack: Stack, name_or_arn: str) -> str:
    return next(lid for lid in stack.roles if name_or_arn in (stack.arns[lid], stack.names[lid]))


def add_statements(policies: dict[str, dict], arn: str, document: dict) -> None:
    """A resource's policies, merged into one document (a queue or topic may have several)."""
    statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
    policies.setdefault(arn, {"Version": "2012-10-17", "Statement": []})["Statement"].extend(statements)


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
