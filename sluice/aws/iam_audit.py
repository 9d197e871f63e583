"""The IAM audit: every decision the local IAM made (sluice.aws.iam_hook records them), counted
per principal, operation, action, resource and outcome; the grants no allowed call used; and each
denial with the grant that would have allowed it - what `sluice iam`, `sluice status` and `make
run` report.

    >>> from sluice.aws.iam import Decision, Principal
    >>> audit = Audit()
    >>> role = Principal("Reader", "arn:aws:iam::123456789012:role/reader")
    >>> audit.record(role, "s3.GetObject", "s3:GetObject", "arn:aws:s3:::raw/a.csv",
    ...              Decision(False, None, "implicit deny"))
    >>> [call.missing_grant for call in audit.denied()]
    ["an Allow of s3:GetObject on arn:aws:s3:::raw/a.csv in Reader's policies"]
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluice.aws.iam import Decision, Principal, listed, matches, statements


@dataclass(frozen=True)
class Call:
    principal: str
    operation: str  # "s3.GetObject", or "delivery.<rule or bucket>" for a service's own delivery
    action: str
    resource: str
    allowed: bool
    statement: str | None
    reason: str
    count: int = 1

    @property
    def missing_grant(self) -> str:
        """What would have allowed a denied call, in the words of the policy to change."""
        if self.reason == "explicit deny":
            return f"{self.statement} denies it"
        if "." in self.principal:  # a service principal: only a resource policy can let it in
            kind = "key policy" if self.resource.startswith("arn:aws:kms:") else "resource policy"
            return f"an Allow of {self.action} to {self.principal} in the {kind} of {self.resource}"
        return f"an Allow of {self.action} on {self.resource} in {self.principal}'s policies"


# A Call's fields but its count: (principal, operation, action, resource, allowed, statement, reason).
CallKey = tuple[str, str, str, str, bool, str | None, str]


class Audit:
    """Every decision, counted once per (principal, operation, action, resource, outcome): a
    runtime left up for days polls its queues millions of times."""

    def __init__(self, principals: Mapping[str, Principal] | None = None) -> None:
        self.principals: dict[str, Principal] = {p.name: p for p in (principals or {}).values()}
        self._calls: dict[CallKey, int] = {}
        self._unmapped: set[str] = set()
        self._lock = threading.Lock()
        self.version = 0  # bumps on every new kind of call: when to write the audit out again
        # unused_grants, incrementally: a grant once used stays used, so each new kind of allowed
        # call is matched against the grants still unused once (a burst makes tens of thousands).
        self._fresh: dict[str, list[tuple[str, str]]] = {}  # principal -> (action, resource) not yet matched
        self._used: dict[str, set[tuple[str, str, str]]] = {}
        self._grants_lock = threading.Lock()

    def record(self, principal: Principal, operation: str, action: str, resource: str,
               decision: Decision, mapped: bool = True) -> None:
        key = (principal.name, operation, action, resource, decision.allowed, decision.statement,
               decision.reason)
        with self._lock:
            if principal.policies:  # a service principal has none to audit for unused grants
                self.principals.setdefault(principal.name, principal)
            if key not in self._calls:
                self.version += 1
                if decision.allowed:
                    self._fresh.setdefault(principal.name, []).append((action, resource))
            self._calls[key] = self._calls.get(key, 0) + 1
            if not mapped:
                self._unmapped.add(operation)

    def calls(self, principal: str | None = None) -> list[Call]:
        with self._lock:
            return [Call(*key, count=n) for key, n in self._calls.items() if principal in (None, key[0])]

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
        with self._grants_lock:
            with self._lock:
                fresh, self._fresh = self._fresh, {}
                principals = sorted(self.principals.items())
            for name, principal in principals:
                used = self._used.setdefault(name, set())
                made = fresh.get(name, [])
                for grant in _grants(principal):
                    _, act, res = grant
                    if grant not in used and any(matches(act, action, True) and matches(res, resource)
                                                 for action, resource in made):
                        used.add(grant)
                    if grant not in used:
                        unused.setdefault(name, []).append(grant)
        return unused

    def to_dict(self) -> dict[str, Any]:
        """Per principal: the calls made and the grants never used; every denial with what
        would have allowed it (`sluice iam`, `status --json`)."""
        calls: dict[str, list[dict[str, Any]]] = {}
        for c in sorted(self.calls(), key=lambda c: (c.principal, c.action, c.resource)):
            calls.setdefault(c.principal, []).append(
                {"action": c.action, "resource": c.resource, "allowed": c.allowed, "count": c.count})
        return {"calls": calls,
                "unused_grants": {p: [{"statement": s, "action": a, "resource": r} for s, a, r in grants]
                                  for p, grants in self.unused_grants().items()},
                "denied": [{"principal": c.principal, "action": c.action, "resource": c.resource,
                            "operation": c.operation, "count": c.count, "missing_grant": c.missing_grant}
                           for c in self.denied()],
                "unmapped": self.unmapped()}


def _grants(principal: Principal) -> list[tuple[str, str, str]]:
    """Each (statement, action pattern, resource pattern) of the principal's Allow statements."""
    return [(label, act, res)
            for policy in principal.policies
            for label, s in statements(policy) if s.get("Effect") == "Allow"
            for act in listed(s.get("Action", s.get("NotAction", [])))
            for res in listed(s.get("Resource", s.get("NotResource", "*")))]


def denial_report(denied: list[dict[str, Any]]) -> str:
    """One line per denied call or delivery (from Audit.to_dict()["denied"])."""
    return "\n".join(f"DENIED  {d['principal']}: {d['action']} on {d['resource']} ({d['count']}x); "
                     f"missing: {d['missing_grant']}" for d in denied)
