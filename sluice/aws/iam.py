"""IAM, enforced locally: every call a handler, the job or the crawler makes is authorised as AWS
would authorise it for the role it runs as, so that local green means AWS green. This module is
the evaluator: who calls (Principal), their policies, and IAM's decision on one request;
iam_requests maps a call to what it asks for, iam_hook enforces, iam_audit records each decision.

    >>> reader = Principal("Reader", "arn:aws:iam::123456789012:role/reader", [Policy("read", {
    ...     "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::raw/*"}]})])
    >>> evaluate(reader, "s3:GetObject", "arn:aws:s3:::raw/orders/a.csv")
    Decision(allowed=True, statement='read/0', reason='allowed')
    >>> evaluate(reader, "s3:PutObject", "arn:aws:s3:::raw/orders/a.csv").reason
    'implicit deny'

No maintained Python evaluator exists (policyuniverse and parliament parse and lint policies,
policy_sentry writes them). moto's IAMPolicyStatement (moto/iam/access_control.py) is not reused:
its patterns are unescaped regexes ("." matches any character, "?" is no wildcard), action names
are case-sensitive, an Allow whose condition fails becomes a Deny, NotResource is unknown, and
an unknown condition operator or a missing key passes. What is reused from moto: the AWS managed
policy documents (moto/iam/aws_managed_policies.py), see `managed_policy`.

aws:SecureTransport is "true" for every local request: the emulator speaks plain HTTP, where the
template's TLS-only Deny statements cannot apply; on AWS every SDK call uses TLS.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sluice.aws.account import ACCOUNT_ID


@dataclass
class Policy:
    name: str
    document: Mapping[str, Any]


@dataclass
class Principal:
    """Who calls: a role (its inline and managed policies), or a service delivering on its own
    behalf (`service="s3.amazonaws.com"`, no policies: a resource policy must let it in)."""

    name: str  # the role's logical id, or the service principal
    arn: str
    policies: list[Policy] = field(default_factory=list)
    service: str | None = None

    @property
    def account(self) -> str:
        return self.arn.split(":")[4] if self.arn.startswith("arn:") else ACCOUNT_ID


@dataclass(frozen=True)
class Decision:
    allowed: bool
    statement: str | None  # "policy/Sid" that allowed or denied; None for an implicit deny
    reason: str  # "allowed" | "explicit deny" | "implicit deny"


@functools.cache
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def matches(glob: str, value: str, ignore_case: bool = False) -> bool:
    """IAM's wildcards: `*` any run of characters (across `:` and `/`), `?` exactly one."""
    return bool(_pattern(glob, ignore_case).match(value))


def listed(value: Any) -> list[Any]:
    """A policy element as a list: IAM lets one value stand for a list of one."""
    return value if isinstance(value, list) else [value]


# --- conditions: IAM JSON policy elements: condition operators
# (docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
# Context key names are case-insensitive; a key missing from the request makes a positive operator
# false and a negated one true; ...IfExists is true when the key is missing.
def _arn_like(actual: str, pattern: str) -> bool:
    # ArnEquals/ArnLike compare each of the six colon-separated parts on its own, wildcards allowed.
    a, p = actual.split(":", 5), pattern.split(":", 5)
    return len(a) == len(p) == 6 and all(matches(x, y) for x, y in zip(p, a, strict=True))


_OPERATORS = {
    "StringEquals": lambda a, e: a == e,
    "StringEqualsIgnoreCase": lambda a, e: a.lower() == e.lower(),
    "StringLike": lambda a, e: matches(e, a),
    "ArnEquals": _arn_like,
    "ArnLike": _arn_like,
    "Bool": lambda a, e: a.lower() == e.lower(),
    "NumericEquals": lambda a, e: float(a) == float(e),
    "NumericLessThan": lambda a, e: float(a) < float(e),
    "NumericLessThanEquals": lambda a, e: float(a) <= float(e),
    "NumericGreaterThan": lambda a, e: float(a) > float(e),
    "NumericGreaterThanEquals": lambda a, e: float(a) >= float(e),
}
_NEGATED = {"StringNotEquals": "StringEquals", "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
            "StringNotLike": "StringLike", "ArnNotEquals": "ArnEquals", "ArnNotLike": "ArnLike",
            "NumericNotEquals": "NumericEquals"}


def _condition_holds(operator: str, actual: list[str] | None, expected: list[str]) -> bool:
    qualifier, _, name = operator.rpartition(":")
    if_exists = name.endswith("IfExists")
    name = name.removesuffix("IfExists")
    if name == "Null":  # "true": the key must be absent
        return (actual is None) == (str(expected[0]).lower() == "true")
    negated = name in _NEGATED
    test = _OPERATORS.get(_NEGATED.get(name, name))
    if test is None:  # Date*, IpAddress, Binary*: refuse rather than pass silently
        raise ValueError(f"condition operator {operator} is not evaluated locally")
    if actual is None:
        return if_exists or qualifier == "ForAllValues" or (negated and qualifier != "ForAnyValue")

    def value_ok(a: str) -> bool:
        hit = any(test(a, str(e)) for e in expected)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(value_ok(a) for a in actual)
    if negated and qualifier != "ForAnyValue":
        return all(value_ok(a) for a in actual)
    return any(value_ok(a) for a in actual)


def _conditions_hold(block: Mapping[str, Mapping[str, Any]], keys: Mapping[str, list[str]]) -> bool:
    return all(_condition_holds(op, keys.get(key.lower()), [str(v) for v in listed(want)])
               for op, tests in block.items() for key, want in tests.items())


# --- statements ------------------------------------------------------------------------------
def statements(policy: Policy) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each statement of the policy, labelled "policy/Sid" (or its index when it has no Sid)."""
    for index, statement in enumerate(listed(policy.document.get("Statement", []))):
        yield f"{policy.name}/{statement.get('Sid') or index}", statement


def _applies(statement: Mapping[str, Any], action: str, resource: str,
             keys: Mapping[str, list[str]]) -> bool:
    if "NotAction" in statement:
        if any(matches(p, action, ignore_case=True) for p in listed(statement["NotAction"])):
            return False
    elif not any(matches(p, action, ignore_case=True) for p in listed(statement.get("Action", []))):
        return False
    if "NotResource" in statement:
        if any(matches(p, resource) for p in listed(statement["NotResource"])):
            return False
    elif "Resource" in statement and not any(matches(p, resource)
                                             for p in listed(statement["Resource"])):
        return False
    return _conditions_hold(statement.get("Condition", {}), keys)


def _named(statement: Mapping[str, Any], principal: Principal) -> str | None:
    """Whether a resource policy statement names the caller: "caller" (itself, a service it is, or
    everyone), "account" (the account root: the caller's IAM policies decide), or None."""
    if "NotPrincipal" in statement:
        return None if _named({"Principal": statement["NotPrincipal"]}, principal) else "caller"
    spec = statement.get("Principal")
    if spec is None or spec == "*":
        return "caller"
    for kind, values in spec.items():
        for value in listed(values):
            if value == "*" or value == principal.arn or (kind == "Service" and value == principal.service):
                return "caller"
            if kind == "AWS" and not principal.service and value in (
                    principal.account, f"arn:aws:iam::{principal.account}:root"):
                return "account"
    return None


def request_context(principal: Principal, extra: Mapping[str, str | list[str]] | None = None
                    ) -> dict[str, list[str]]:
    keys: dict[str, str | list[str]] = {"aws:SecureTransport": "true",
                                        "aws:PrincipalAccount": principal.account}
    if not principal.service:
        keys["aws:PrincipalArn"] = principal.arn
    keys.update(extra or {})
    return {k.lower(): [str(v) for v in listed(value)] for k, value in keys.items()}


def evaluate(principal: Principal, action: str, resource: str,
             context: Mapping[str, str | list[str]] | None = None,
             resource_policy: Mapping[str, Any] | None = None) -> Decision:
    """IAM's decision within one account: an explicit Deny in any policy wins; otherwise an Allow
    in the identity policies or in the resource policy allows; otherwise denied. A KMS key's policy
    must allow, itself or by enabling IAM policies through the account root. (IAM User Guide,
    "Policy evaluation for requests within a single account"; AWS KMS "Default key policy".)"""
    keys = request_context(principal, context)
    identity = [(label, s) for p in principal.policies for label, s in statements(p)]
    on_resource = [(label, s, named) for label, s in statements(Policy("resource policy",
                                                                        resource_policy or {}))
                   if (named := _named(s, principal))]
    for label, statement in [*identity, *((label, s) for label, s, _ in on_resource)]:
        if statement.get("Effect") == "Deny" and _applies(statement, action, resource, keys):
            return Decision(False, label, "explicit deny")
    allowing = [(label, named) for label, s, named in on_resource
                if s.get("Effect") == "Allow" and _applies(s, action, resource, keys)]
    granted = next((label for label, named in allowing if named == "caller"), None)
    iam_counts = not (resource.startswith("arn:aws:kms:") and resource_policy) or bool(allowing)
    if granted is None and iam_counts:
        granted = next((label for label, s in identity
                        if s.get("Effect") == "Allow" and _applies(s, action, resource, keys)), None)
    return Decision(True, granted, "allowed") if granted else Decision(False, None, "implicit deny")


@functools.cache
def _managed_policies() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return json.loads(aws_managed_policies_data)


def managed_policy(arn: str) -> Policy:
    """An AWS managed policy's document, by ARN (arn:aws:iam::aws:policy/service-role/Name)."""
    name = arn.rsplit("/", 1)[-1]
    entry = _managed_policies().get(name)
    if not arn.startswith("arn:aws:iam::aws:policy/") or entry is None:
        raise KeyError(f"managed policy {arn} is not known locally")
    return Policy(name, entry["Document"])
