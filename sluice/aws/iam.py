"""IAM, enforced locally: every call a handler, the job or the crawler makes is authorised as AWS
would authorise it for the role it runs as, so that local green means AWS green.

    >>> audit = Audit(stack.principals)                                        # doctest: +SKIP
    >>> Enforcer(audit, stack.resource_policies).install()                     # doctest: +SKIP
    >>> with acting_as(stack.principals["StartJobFunction"]):                  # doctest: +SKIP
    ...     handler(event, context)        # an unauthorised call raises AccessDenied, as on AWS
    >>> audit.denied(), audit.unused_grants()                                  # doctest: +SKIP

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
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from sluice.aws.emulator import ACCOUNT_ID


@dataclass
class Policy:
    name: str
    document: dict[str, Any]


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


def _listed(value: Any) -> list[Any]:
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
    return all(_condition_holds(op, keys.get(key.lower()), [str(v) for v in _listed(want)])
               for op, tests in block.items() for key, want in tests.items())


# --- statements ------------------------------------------------------------------------------
def _statements(policy: Policy) -> Iterator[tuple[str, dict[str, Any]]]:
    for index, statement in enumerate(_listed(policy.document.get("Statement", []))):
        yield f"{policy.name}/{statement.get('Sid') or index}", statement


def _applies(statement: Mapping[str, Any], action: str, resource: str,
             keys: Mapping[str, list[str]]) -> bool:
    if "NotAction" in statement:
        if any(matches(p, action, ignore_case=True) for p in _listed(statement["NotAction"])):
            return False
    elif not any(matches(p, action, ignore_case=True) for p in _listed(statement.get("Action", []))):
        return False
    if "NotResource" in statement:
        if any(matches(p, resource) for p in _listed(statement["NotResource"])):
            return False
    elif "Resource" in statement and not any(matches(p, resource)
                                             for p in _listed(statement["Resource"])):
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
        for value in _listed(values):
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
    return {k.lower(): [str(v) for v in _listed(value)] for k, value in keys.items()}


def evaluate(principal: Principal, action: str, resource: str,
             context: Mapping[str, str | list[str]] | None = None,
             resource_policy: Mapping[str, Any] | None = None) -> Decision:
    """IAM's decision within one account: an explicit Deny in any policy wins; otherwise an Allow
    in the identity policies or in the resource policy allows; otherwise denied. A KMS key's policy
    must allow, itself or by enabling IAM policies through the account root. (IAM User Guide,
    "Policy evaluation for requests within a single account"; AWS KMS "Default key policy".)"""
    keys = request_context(principal, context)
    identity = [(label, s) for p in principal.policies for label, s in _statements(p)]
    on_resource = [(label, s, named) for label, s in _statements(Policy("resource policy",
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


# --- what a request asks for: (action, resource ARN) pairs -------------------------------------
# S3: Service Authorization Reference, "Actions, resources, and condition keys for Amazon S3"
# (its "API operations" table). Glue: "Specifying AWS Glue resource ARNs" (a catalog call needs
# the catalog, the database and the table). DynamoDB: "IAM policy to grant access to a specific
# DynamoDB table and its indexes" (a Query or Scan of an index is authorised on .../index/NAME).
_S3_OBJECT = {"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
              "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
              "CompleteMultipartUpload": "s3:PutObject", "DeleteObject": "s3:DeleteObject",
              "AbortMultipartUpload": "s3:AbortMultipartUpload", "ListParts": "s3:ListMultipartUploadParts"}
_S3_VERSIONED = {"s3:GetObject": "s3:GetObjectVersion", "s3:DeleteObject": "s3:DeleteObjectVersion"}
_S3_BUCKET = {"ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket", "HeadBucket": "s3:ListBucket",
              "ListObjectVersions": "s3:ListBucketVersions", "GetBucketLocation": "s3:GetBucketLocation",
              "ListMultipartUploads": "s3:ListBucketMultipartUploads"}
_DYNAMODB_TABLE = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable",
                   "ConditionCheckItem"}
_GLUE_CRAWLER = {"StartCrawler": "Name", "GetCrawler": "Name", "StopCrawler": "Name",
                 "ListCrawls": "CrawlerName"}
_GLUE_JOB = {"StartJobRun", "GetJob", "GetJobRun", "GetJobRuns", "BatchStopJobRun", "GetJobBookmark"}
_GLUE_TABLE = {"GetTable", "DeleteTable", "CreateTable", "UpdateTable", "GetPartition", "GetPartitions",
               "CreatePartition", "UpdatePartition", "BatchCreatePartition", "BatchDeletePartition",
               "BatchUpdatePartition", "BatchGetPartition"}
_SQS_BATCH = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
              "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
             "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def _s3(operation: str, p: dict[str, Any]) -> list[tuple[str, str]] | None:
    bucket = f"arn:aws:s3:::{p.get('Bucket', '')}"
    if operation in _S3_OBJECT:
        action = _S3_OBJECT[operation]
        return [(_S3_VERSIONED.get(action, action) if p.get("VersionId") else action,
                 f"{bucket}/{p['Key']}")]
    if operation in _S3_BUCKET:
        return [(_S3_BUCKET[operation], bucket)]
    if operation == "DeleteObjects":
        return [("s3:DeleteObjectVersion" if o.get("VersionId") else "s3:DeleteObject",
                 f"{bucket}/{o['Key']}") for o in p["Delete"]["Objects"]]
    if operation == "CopyObject":
        source = p["CopySource"]
        source = source if isinstance(source, str) else f"{source['Bucket']}/{source['Key']}"
        return [("s3:GetObject", f"arn:aws:s3:::{source.lstrip('/').split('?')[0]}"),
                ("s3:PutObject", f"{bucket}/{p['Key']}")]
    if operation == "ListBuckets":
        return [("s3:ListAllMyBuckets", "*")]
    return None


def _dynamodb(operation: str, p: dict[str, Any], account: str, region: str
              ) -> list[tuple[str, str]] | None:
    def table(name: str) -> str:
        return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{name}"

    if operation in _DYNAMODB_TABLE:
        index = f"/index/{p['IndexName']}" if p.get("IndexName") else ""
        return [(f"dynamodb:{operation}", table(p["TableName"]) + index)]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{operation}", table(name)) for name in p["RequestItems"]]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        return [(f"dynamodb:{_TRANSACT[kind]}", table(body["TableName"]))
                for item in p["TransactItems"] for kind, body in item.items()]
    return None


def _glue(operation: str, p: dict[str, Any], account: str, region: str
          ) -> list[tuple[str, str]] | None:
    arn = f"arn:aws:glue:{region}:{p.get('CatalogId') or account}"
    if operation in _GLUE_CRAWLER:
        return [(f"glue:{operation}", f"{arn}:crawler/{p[_GLUE_CRAWLER[operation]]}")]
    if operation in _GLUE_JOB:
        return [(f"glue:{operation}", f"{arn}:job/{p['JobName']}")]
    database = p.get("DatabaseName") or p.get("Name", "")
    catalog = [f"{arn}:catalog", f"{arn}:database/{database}"]
    if operation == "GetDatabase":
        tables = []
    elif operation == "GetTables":
        tables = [f"{arn}:table/{database}/*"]
    elif operation in _GLUE_TABLE:
        name = p.get("TableName") or p.get("Name") or p["TableInput"]["Name"]
        tables = [f"{arn}:table/{database}/{name}"]
    else:
        return None
    return [(f"glue:{operation}", resource) for resource in catalog + tables]


def _queue_arn(url: str, region: str) -> str:
    account, name = url.rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{region}:{account}:{name}"


def authorization(service: str, operation: str, params: dict[str, Any], account: str = ACCOUNT_ID,
                  region: str = "us-east-1") -> list[tuple[str, str]]:
    """The (action, resource ARN) pairs IAM checks for one API call; an operation not mapped
    here is checked as `service:Operation` on "*" (and the audit lists it as unmapped).

        >>> authorization("dynamodb", "Query", {"TableName": "ledger", "IndexName": "ByRun"})
        [('dynamodb:Query', 'arn:aws:dynamodb:us-east-1:123456789012:table/ledger/index/ByRun')]
    """
    found = _mapped(service, operation, params, account, region)
    return [(f"{service}:{operation}", "*")] if found is None else found


def _mapped(service: str, operation: str, p: dict[str, Any], account: str, region: str
            ) -> list[tuple[str, str]] | None:
    if service == "s3":
        return _s3(operation, p)
    if service == "dynamodb":
        return _dynamodb(operation, p, account, region)
    if service == "glue":
        return _glue(operation, p, account, region)
    if service == "sqs" and "QueueUrl" in p:
        return [(f"sqs:{_SQS_BATCH.get(operation, operation)}", _queue_arn(p["QueueUrl"], region))]
    if service == "sns" and operation == "Publish":
        return [("sns:Publish", p.get("TopicArn") or p["TargetArn"])]
    if service == "events" and operation == "PutEvents":
        buses = {e.get("EventBusName") or "default" for e in p["Entries"]}
        return [("events:PutEvents", b if b.startswith("arn:") else
                 f"arn:aws:events:{region}:{account}:event-bus/{b}") for b in sorted(buses)]
    if service == "cloudwatch" and operation == "PutMetricData":
        return [("cloudwatch:PutMetricData", "*")]  # no resource-level scope in IAM
    if service == "sts" and operation == "GetCallerIdentity":
        return []  # needs no permission
    return None


def request_keys(service: str, operation: str, params: dict[str, Any]) -> dict[str, str]:
    """Condition keys a request carries in its parameters."""
    if service == "cloudwatch" and operation == "PutMetricData":
        return {"cloudwatch:namespace": params.get("Namespace", "")}
    if service == "s3" and operation in ("ListObjectsV2", "ListObjects"):
        return {"s3:prefix": params.get("Prefix", "")}
    return {}


# --- the audit: every decision, for `sluice iam` and the demo ---------------------------------
@dataclass(frozen=True)
class Call:
    principal: str
    operation: str  # "s3.GetObject"
    action: str
    resource: str
    allowed: bool
    statement: str | None
    reason: str


class Audit:
    def __init__(self, principals: Mapping[str, Principal] | None = None) -> None:
        self.principals: dict[str, Principal] = {p.name: p for p in (principals or {}).values()}
        self._calls: list[Call] = []
        self._unmapped: set[str] = set()
        self._lock = threading.Lock()

    def record(self, principal: Principal, operation: str, action: str, resource: str,
               decision: Decision, mapped: bool = True) -> None:
        with self._lock:
            self.principals.setdefault(principal.name, principal)
            self._calls.append(Call(principal.name, operation, action, resource, decision.allowed,
                                    decision.statement, decision.reason))
            if not mapped:
                self._unmapped.add(operation)

    def calls(self, principal: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if principal in (None, c.principal)]

    def denied(self) -> list[Call]:
        return [c for c in self.calls() if not c.allowed]

    def unmapped(self) -> list[str]:
        """Operations authorised as `service:Operation` on "*" (no mapping to their resources)."""
        with self._lock:
            return sorted(self._unmapped)

    def unused_grants(self) -> dict[str, list[tuple[str, str, str]]]:
        """Per principal, each (statement, action pattern, resource pattern) of its Allow
        statements that no allowed call matched."""
        unused: dict[str, list[tuple[str, str, str]]] = {}
        for name, principal in sorted(self.principals.items()):
            made = [c for c in self.calls(name) if c.allowed]
            for policy in principal.policies:
                for label, s in _statements(policy):
                    if s.get("Effect") != "Allow":
                        continue
                    for act in _listed(s.get("Action", s.get("NotAction", []))):
                        for res in _listed(s.get("Resource", s.get("NotResource", "*"))):
                            if not any(matches(act, c.action, True) and matches(res, c.resource)
                                       for c in made):
                                unused.setdefault(name, []).append((label, act, res))
        return unused


# --- enforcement: a botocore hook on the clients of a boto3 session -----------------------------
_current: ContextVar[Principal | None] = ContextVar("sluice_iam_principal", default=None)
_active: Enforcer | None = None


@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """Calls made inside are authorised as `principal`'s; outside any, they are not checked."""
    token = _current.set(principal)
    try:
        yield
    finally:
        _current.reset(token)


class _Bound:
    """Mixed into every client class the session makes. A client remembers who made it, so that
    calls from threads it starts (s3transfer's upload pool) are authorised as the same principal."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bound = _current.get()
        events = self.meta.events  # type: ignore[attr-defined]
        events.register("before-parameter-build", functools.partial(_decide, bound=bound),
                        unique_id="sluice-iam-decide")
        events.register("before-call", _answer_denied, unique_id="sluice-iam-answer")
        events.register("after-call.s3", _after_s3_call, unique_id="sluice-iam-s3")


def _bind(base_classes: list[type], **_: Any) -> None:
    if _Bound not in base_classes:
        base_classes.insert(0, _Bound)


def _decide(params: dict[str, Any], model: Any, context: dict[str, Any],
            bound: Principal | None, **_: Any) -> None:
    principal = _current.get() or bound
    if _active is not None and principal is not None:
        _active.decide(principal, model.service_model.service_name, model.name, params, context)


def _answer_denied(context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict] | None:
    return context.get("sluice_iam_answer")


def _after_s3_call(http_response: Any, parsed: dict[str, Any], model: Any,
                   context: dict[str, Any], **_: Any) -> None:
    may_list = context.get("sluice_iam_may_list")
    if may_list is not None and http_response.status_code == 404 and not may_list().allowed:
        # Without s3:ListBucket, a missing key answers 403, not 404 (Amazon S3 API Reference,
        # GetObject and HeadObject, "Permissions").
        code = "403" if model.name == "HeadObject" else "AccessDenied"
        parsed["Error"] = {"Code": code, "Message": "Access Denied"}
        parsed.setdefault("ResponseMetadata", {})["HTTPStatusCode"] = 403
        context["error_code_override"] = code
    parsed.setdefault("Errors", []).extend(context.get("sluice_iam_delete_errors", []))


# The error each service answers a denied call with: (code, HTTP status).
_DENIED = {"s3": ("AccessDenied", 403), "sqs": ("AccessDenied", 403),
           "sns": ("AuthorizationError", 403), "cloudwatch": ("AccessDenied", 403)}


class Enforcer:
    def __init__(self, audit: Audit, resource_policies: Mapping[str, dict] | None = None) -> None:
        self.audit = audit
        self.resource_policies = dict(resource_policies or {})

    def install(self, session: Any = None) -> None:
        """Enforce on clients made from now on by `session` (boto3's default one if None): clients
        copy the session's hooks when created, so install before handlers make theirs."""
        global _active
        _active = self
        session = session or boto3._get_default_session()
        session.events.register("creating-client-class", _bind, unique_id="sluice-iam-bind")

    @staticmethod
    def uninstall() -> None:
        global _active
        _active = None

    def policy_for(self, resource: str) -> dict | None:
        """The resource policy that governs an ARN (an object's is its bucket's)."""
        if resource in self.resource_policies:
            return self.resource_policies[resource]
        if resource.startswith("arn:aws:s3:::"):
            return self.resource_policies.get(resource.split("/", 1)[0])
        return None

    def check(self, principal: Principal, operation: str, action: str, resource: str,
              keys: Mapping[str, str], mapped: bool = True) -> Decision:
        decision = evaluate(principal, action, resource, keys, self.policy_for(resource))
        self.audit.record(principal, operation, action, resource, decision, mapped)
        return decision

    def decide(self, principal: Principal, service: str, operation: str, params: dict[str, Any],
               context: dict[str, Any]) -> None:
        region = context.get("client_region") or "us-east-1"
        try:
            found = _mapped(service, operation, params, principal.account, region)
        except (KeyError, TypeError, AttributeError):
            return  # a required parameter is missing: botocore's validation answers that
        wanted = [(f"{service}:{operation}", "*")] if found is None else found
        keys, mapped, name = request_keys(service, operation, params), found is not None, \
            f"{service}.{operation}"
        if service == "s3" and operation == "DeleteObjects":
            return self._delete_objects(principal, params, context, wanted, keys)
        for action, resource in wanted:
            decision = self.check(principal, name, action, resource, keys, mapped)
            if not decision.allowed:
                context["sluice_iam_answer"] = _denial(service, operation, principal, action,
                                                       resource, decision)
                return
        if service == "s3" and operation in ("GetObject", "HeadObject"):
            # Checked (and audited) only if the key turns out missing: then S3 asks it too.
            context["sluice_iam_may_list"] = functools.partial(
                self.check, principal, name, "s3:ListBucket", f"arn:aws:s3:::{params['Bucket']}", keys)

    def _delete_objects(self, principal: Principal, params: dict[str, Any], context: dict[str, Any],
                        wanted: list[tuple[str, str]], keys: Mapping[str, str]) -> None:
        """DeleteObjects is authorised key by key: a denied key comes back in Errors."""
        objects, allowed, errors = params["Delete"]["Objects"], [], []
        for obj, (action, resource) in zip(objects, wanted, strict=True):
            if self.check(principal, "s3.DeleteObjects", action, resource, keys).allowed:
                allowed.append(obj)
            else:
                errors.append({"Key": obj["Key"], "Code": "AccessDenied", "Message": "Access Denied"})
        params["Delete"] = {**params["Delete"], "Objects": allowed}  # the caller's dict stays whole
        if errors and not allowed:  # nothing left to send
            context["sluice_iam_answer"] = (_response(200), {
                "Errors": errors, "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": {}}})
        elif errors:
            context["sluice_iam_delete_errors"] = errors


def _response(status: int) -> AWSResponse:
    return AWSResponse("http://sluice-iam.local", status, {}, None)


def _denial(service: str, operation: str, principal: Principal, action: str, resource: str,
            decision: Decision) -> tuple[AWSResponse, dict[str, Any]]:
    code, status = _DENIED.get(service, ("AccessDeniedException", 400))
    if service == "s3" and operation == "HeadObject":
        code = "403"  # a HEAD response has no body: botocore reports the status as the code
    caller = (principal.service or
              f"arn:aws:sts::{principal.account}:assumed-role/{principal.arn.rsplit('/', 1)[-1]}/"
              f"{principal.name}")
    why = ("with an explicit deny in " + decision.statement if decision.statement
           else f"because no identity-based policy allows the {action} action")
    message = f"User: {caller} is not authorized to perform: {action} on resource: {resource} {why}"
    return _response(status), {"Error": {"Code": code, "Message": message},
                               "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}}}
