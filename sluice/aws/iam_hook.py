"""The enforcement: a botocore hook on the clients of a boto3 session, authorising each call as
the principal it is made for (sluice.aws.iam decides, sluice.aws.iam_audit records) and answering
a denied one as AWS does.

    >>> Enforcer(Audit(stack.principals), stack.resource_policies).install()   # doctest: +SKIP
    >>> with acting_as(stack.principals["EtlJob"]):                          # doctest: +SKIP
    ...     s3 = client_as(None, "s3")  # or any boto3.client(...) made or called in here
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from sluice.aws import account, iam_requests
from sluice.aws.iam import Decision, Principal, evaluate
from sluice.aws.iam_audit import Audit

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
    def __init__(self, audit: Audit, resource_policies: dict[str, dict] | None = None) -> None:
        self.audit = audit
        # Kept by reference: a test that takes a statement away from the stack's policies is
        # enforced at once, as a policy change on AWS is (eventually).
        self.resource_policies = resource_policies if resource_policies is not None else {}

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
              keys: Mapping[str, str | list[str]], mapped: bool = True) -> Decision:
        decision = evaluate(principal, action, resource, keys, self.policy_for(resource))
        self.audit.record(principal, operation, action, resource, decision, mapped)
        return decision

    def delivery(self, service: str, operation: str, action: str, resource: str,
                 keys: Mapping[str, str | list[str]]) -> Decision:
        """A service delivering on its own behalf (S3 -> SQS, EventBridge -> Lambda or SNS): only
        the resource's policy can let it in."""
        return self.check(service_principal(service), operation, action, resource, keys)

    def decide(self, principal: Principal, service: str, operation: str, params: dict[str, Any],
               context: dict[str, Any]) -> None:
        region = context.get("client_region") or account.REGION
        try:
            found = iam_requests.mapped(service, operation, params, principal.account, region)
        except (KeyError, TypeError, AttributeError):
            return  # a required parameter is missing: botocore's validation answers that
        wanted = [(f"{service}:{operation}", "*")] if found is None else found
        keys, mapped, name = iam_requests.request_keys(service, operation, params), found is not None, \
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
                        wanted: list[tuple[str, str]], keys: Mapping[str, str | list[str]]) -> None:
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
    return AWSResponse("http://sluice-iam.local", status, HTTPHeaders(), None)


def _denial(service: str, operation: str, principal: Principal, action: str, resource: str,
            decision: Decision) -> tuple[AWSResponse, dict[str, Any]]:
    code, status = _DENIED.get(service, ("AccessDeniedException", 400))
    if service == "s3" and operation == "HeadObject":
        code = "403"  # a HEAD response has no body: botocore reports the status as the code
    message = denial_message(principal, action, resource, decision)
    return _response(status), {"Error": {"Code": code, "Message": message},
                               "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}}}


def denial_message(principal: Principal, action: str, resource: str, decision: Decision) -> str:
    """AWS's words for a denied call (also what the local Athena answers, sluice.aws.athena)."""
    caller = (principal.service or
              f"arn:aws:sts::{principal.account}:assumed-role/{principal.arn.rsplit('/', 1)[-1]}/"
              f"{principal.name}")
    why = ("with an explicit deny in " + decision.statement if decision.statement
           else f"because no identity-based policy allows the {action} action")
    return f"User: {caller} is not authorized to perform: {action} on resource: {resource} {why}"


def active() -> Enforcer | None:
    """The enforcer installed in this process, if any."""
    return _active


def service_principal(service: str) -> Principal:
    return Principal(service, service, service=service)


def client_as(principal: Principal | None, service: str, endpoint: str | None = None) -> Any:
    """A client of boto3's default session (where the enforcer is installed) that acts as
    `principal` in every thread it is used from, as a client made from a role's credentials does."""
    with acting_as(principal):
        return account.client(service, endpoint)
