"""`make run` (sluice demo) fails on any denied call or failed delivery, naming principal, action,
resource and the missing grant."""

from __future__ import annotations

from sluice.aws.iam import Policy, Principal, evaluate
from sluice.aws.iam_audit import Audit
from sluice.views import denials

ROLE = Principal("EtlJobRole", "arn:aws:iam::123456789012:role/etl", [Policy("etl", {"Statement": [
    {"Sid": "LedgerDone", "Effect": "Allow", "Action": "dynamodb:UpdateItem",
     "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/ledger"}]})])
INDEX = "arn:aws:dynamodb:us-east-1:123456789012:table/ledger/index/ByRun"


def _status(audit: Audit, failed: dict[str, int] | None = None) -> dict:
    return {"iam": audit.to_dict(), "failed_invocations": failed or {}}


def test_a_denied_call_fails_the_demo_and_is_named(capsys):
    audit = Audit()
    decision = evaluate(ROLE, "dynamodb:Query", INDEX)
    assert not decision.allowed
    audit.record(ROLE, "dynamodb.Query", "dynamodb:Query", INDEX, decision)
    assert denials(_status(audit)) is True
    err = capsys.readouterr().err
    assert "EtlJobRole" in err and "dynamodb:Query" in err and INDEX in err and "missing:" in err


def test_a_failed_delivery_fails_the_demo(capsys):
    assert denials(_status(Audit(), {"JobStateRule": 1})) is True
    assert "JobStateRule: 1 failed invocation" in capsys.readouterr().err


def test_nothing_denied_passes(capsys):
    audit = Audit()
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/ledger"
    audit.record(ROLE, "dynamodb.UpdateItem", "dynamodb:UpdateItem", table,
                 evaluate(ROLE, "dynamodb:UpdateItem", table))
    assert denials(_status(audit)) is False
    assert capsys.readouterr().err == ""


def test_make_run_stops_at_the_first_denial_not_when_it_times_out():
    """Finding 13: a denied StartJobRun left `make run` waiting 4 minutes; the wait now ends at once."""
    import time

    import pytest

    from sluice.runtime import Denied, Runtime

    runtime = Runtime.__new__(Runtime)  # nothing started: the wait must not need the pipeline
    runtime.audit = Audit()
    denied = evaluate(ROLE, "dynamodb:Query", INDEX)
    runtime.audit.record(ROLE, "dynamodb.Query", "dynamodb:Query", INDEX, denied)
    began = time.monotonic()
    with pytest.raises(Denied, match=r"EtlJobRole: dynamodb:Query on .*missing: an Allow of dynamodb:Query"):
        runtime.wait_until_settled(files=1, stall_s=300)
    assert time.monotonic() - began < 5
