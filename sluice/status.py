"""Operations on a running pipeline, from any process: what `sluice status` shows and what
`sluice redrive` does. Both read and act through the emulator's API only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ledger import ACTIVE_JOB_RUN_STATES, State
from ledger.table import DynamoLedger
from sluice.aws.cloudwatch import alarm_states
from sluice.aws.events import failed_invocations
from sluice.aws.moto_patch import utc
from sluice.aws.sns import read_outbox


def collect_status(client: Any, resource: Any, outputs: dict[str, str], endpoint: str,
                   outbox: Path, stuck_after_s: int, iam: dict[str, Any] | None = None) -> dict[str, Any]:
    """One JSON-able picture of the pipeline, read from the emulator through its API only (so it
    works from another process too); `iam` is the runtime's audit (Audit.to_dict())."""
    sqs = client("sqs")

    def depth(url: str) -> int:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return sum(int(v) for v in attributes.values())

    ledger = DynamoLedger(resource("dynamodb").Table(outputs["LedgerTableName"]))
    glue = client("glue")
    pages = glue.get_paginator("get_job_runs").paginate(JobName=outputs["EtlJobName"])
    runs = [r for page in pages for r in page["JobRuns"]]
    states = [r["JobRunState"] for r in runs]
    # A run past the job's Timeout should have been settled TIMEOUT; a file CLAIMED that long
    # belongs to a run that no longer holds it.
    job = glue.get_job(JobName=outputs["EtlJobName"])["Job"]
    overdue = datetime.now(UTC) - timedelta(minutes=int(job.get("Timeout") or 2880))
    failed = [{"key": i["key"], "reason": i.get("reason", "")} for i in ledger.by_state(State.FAILED)]
    old = datetime.now(UTC) - timedelta(seconds=stuck_after_s)
    stuck = [{"key": i["key"], "since": i["updated_at"]} for i in ledger.by_state(State.PENDING, old)]
    emails = read_outbox(outbox)
    finished = [r["Id"] for r in runs if r["JobRunState"] not in ACTIVE_JOB_RUN_STATES]
    return {
        "endpoint": endpoint,
        "raw_bucket": outputs["RawBucketName"],
        "processed_bucket": outputs["ProcessedBucketName"],
        "artifacts_bucket": outputs["ArtifactsBucketName"],
        "ledger": ledger.count_by_state(),
        "failed_files": failed,
        "stuck_pending": stuck,  # older than sweep age + sweep interval: the sweeper is not keeping up
        "stuck_runs": [{"id": r["Id"], "state": r["JobRunState"], "since": str(r["StartedOn"])}
                       for r in runs if r["JobRunState"] in ACTIVE_JOB_RUN_STATES
                       and utc(r["StartedOn"]) < overdue],
        "stuck_claimed": [{"key": i["key"], "run_id": i.get("run_id", ""), "since": i["updated_at"]}
                          for i in ledger.by_state(State.CLAIMED, overdue)],
        "failed_invocations": failed_invocations(client("cloudwatch")),  # per rule: denied deliveries
        "iam": iam or {},
        "job_runs": {"total": len(states), "active": sum(s in ACTIVE_JOB_RUN_STATES for s in states),
                     "finished": sum(s not in ACTIVE_JOB_RUN_STATES for s in states),
                     "by_state": {s: states.count(s) for s in sorted(set(states))}},
        "queues": {"ingest": depth(outputs["IngestQueueUrl"]), "ingest_dlq": depth(outputs["IngestDLQUrl"])},
        "emails": len(emails),
        "emails_per_run": _emails_per_run(finished, [m.body for m in emails]),
        "alarms": alarm_states(client("cloudwatch")),  # as the runtime's CloudWatch evaluated them
        "outbox": str(outbox),
    }


def _emails_per_run(finished: list[str], bodies: list[str]) -> dict[str, list[str]]:
    """Finished job runs with no email, and with more than one: each run gets exactly one, and it
    names the job run."""
    counts = {run: sum(run in body for body in bodies) for run in finished}
    return {"missing": sorted(r for r, n in counts.items() if n == 0),
            "duplicated": sorted(r for r, n in counts.items() if n > 1)}


def redrive(client: Any, resource: Any, outputs: dict[str, str]) -> dict[str, int]:
    """Recover what is stuck: messages in the ingest DLQ go back to the ingest queue (a file
    already recorded is recognised as a duplicate event there), and FAILED files go back to
    PENDING for the sweeper or the next crawl to claim."""
    sqs = client("sqs")
    moved = 0
    while messages := sqs.receive_message(QueueUrl=outputs["IngestDLQUrl"],
                                          MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            sqs.send_message(QueueUrl=outputs["IngestQueueUrl"], MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=outputs["IngestDLQUrl"], ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    retried = DynamoLedger(resource("dynamodb").Table(outputs["LedgerTableName"])).retry_failed()
    return {"messages": moved, "failed_files": retried}
