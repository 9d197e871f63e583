"""What the `sluice` verbs print, from what they read: the pipeline's status, the IAM audit, the
outbox's emails, and `make run`'s outcome (the run's email, the ledger, the output, a query of
it) with every denied call or delivery that fails it. The verbs themselves are sluice.cli's.

    >>> status_lines({"endpoint": "http://127.0.0.1:4566", "ledger": {"DONE": 2}, "job_runs": {},
    ...               "queues": {"ingest": 0, "ingest_dlq": 0}, "emails": 1, "outbox": ".sluice/outbox",
    ...               "alarms": [], "failed_files": [], "stuck_pending": [], "stuck_runs": [],
    ...               "stuck_claimed": [], "failed_invocations": {}, "iam": {}})[:2]
    ['endpoint   http://127.0.0.1:4566', "ledger     {'DONE': 2}"]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from sluice.aws.iam_audit import denial_report
from sluice.aws.sns import Email, read_outbox
from sluice.timeline import unwrapped_console

if TYPE_CHECKING:
    from sluice.runtime import Runtime


def status_lines(status: dict[str, Any]) -> list[str]:
    """`sluice status`: the ledger, runs, queues and alarms; what is failed, stuck or denied."""
    lines = [f"endpoint   {status['endpoint']}",
             f"ledger     {status['ledger']}",
             f"job runs   {status['job_runs']}",
             f"queues     {status['queues']}",
             f"emails     {status['emails']} in {status['outbox']}"]
    for alarm in status["alarms"]:
        lines.append(f"alarm      {alarm['state']:<17} {alarm['name']}"
                     + (f": {alarm['reason']}" if alarm["state"] == "ALARM" else ""))
    lines += [f"FAILED     {item['key']}: {item['reason']}" for item in status["failed_files"]]
    lines += [f"STUCK      {item['key']}: PENDING since {item['since']}" for item in status["stuck_pending"]]
    lines += [f"STUCK      job run {run['id']}: {run['state']} since {run['since']} (past the job's Timeout)"
              for run in status["stuck_runs"]]
    lines += [f"STUCK      {item['key']}: CLAIMED by {item['run_id']} since {item['since']} "
              f"(longer than the job's Timeout)" for item in status["stuck_claimed"]]
    lines += [f"DENIED     rule {rule}: {count} failed invocation(s)"
              for rule, count in status["failed_invocations"].items()]
    if status["iam"].get("denied"):
        lines.append(denial_report(status["iam"]["denied"]))
    if status["failed_files"] or status["stuck_pending"] or status["queues"]["ingest_dlq"]:
        lines.append("recover with: sluice redrive")
    return lines


def iam_lines(audit: dict[str, Any]) -> list[str]:
    """`sluice iam`: per principal, the calls made and the grants never used; every denial."""
    lines = []
    unused = audit.get("unused_grants", {})
    for principal in sorted({*audit.get("calls", {}), *unused}):
        lines.append(f"{principal}")
        for call in audit.get("calls", {}).get(principal, []):
            mark = "" if call["allowed"] else "  DENIED"
            lines.append(f"  {call['action']:<28} {call['resource']}  ({call['count']}x){mark}")
        lines += [f"  unused: {grant['statement']}: {grant['action']} on {grant['resource']}"
                  for grant in unused.get(principal, [])]
    if audit.get("denied"):
        lines.append(denial_report(audit["denied"]))
    return lines


def email_text(mail: Email) -> str:
    """`sluice outbox`: one email, headers first."""
    return (f"==> {mail.path}\nFrom: {mail.sender}\nTo: {mail.recipient}\nDate: {mail.date}\n"
            f"Subject: {mail.subject}\n\n{mail.body}")


def denials(status: dict[str, Any]) -> bool:
    """Print every denied call or delivery (AWS would have refused it): `make run` fails on any."""
    denied, failed = status["iam"].get("denied", []), status["failed_invocations"]
    if denied:
        print(f"\nFAILED: AWS would deny {len(denied)} call(s) or delivery(ies):\n"
              f"{denial_report(denied)}", file=sys.stderr)
    for rule, count in failed.items():
        print(f"FAILED: rule {rule}: {count} failed invocation(s) (FailedInvocations)", file=sys.stderr)
    return bool(denied or failed)


def demo_outcome(runtime: Runtime, status: dict[str, Any]) -> bool:
    """`make run`'s last screen: each email, the ledger, the output's partitions and a query of the
    processed tables as the analysts' role. False if the query did not succeed."""
    from rich.cells import cell_len

    console = unwrapped_console()

    def rule(title: str) -> None:
        _fit(console, cell_len(title) + 6)
        console.rule(title)

    for mail in read_outbox(Path(status["outbox"])):
        rule(f"Email to {mail.recipient} ({mail.path.name})")
        console.print(f"Subject: {mail.subject}\n\n{mail.body.strip()}", markup=False)
    rule("Ledger")
    console.print(json.dumps(status["ledger"]))
    s3 = runtime.aws.client("s3")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=status["processed_bucket"]) for o in page.get("Contents", [])]
    partitions = sorted({k.rsplit("/", 1)[0] for k in keys})
    rule(f"Output: s3://{status['processed_bucket']}/ ({len(keys)} objects)")
    for partition in partitions:
        console.print(f"  {partition}/", markup=False)
    # What it processed, as an analyst sees it: a query of the processed tables, as AnalystRole.
    from sluice.query import show_demo_query

    return show_demo_query(runtime, console)


def _fit(console: Console, width: int) -> None:
    """Without a terminal rich lays rules and tables out to 80 columns, cutting a long title or
    cell short: there, give them the width they need."""
    if not console.is_terminal:
        console.width = max(80, width)
