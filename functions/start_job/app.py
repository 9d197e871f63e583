"""StartJobFunction: crawler Succeeded, the sweep schedule, or a finished job run -> runs.

Which event means what is decided here in one place; what to do lives in runs.py, and the AWS
calls in the adapters (glue_job, manifests, outputs, notifier, waiting, ledger.glue_crawler).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import boto3
import waiting
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from glue_job import GlueJob
from manifests import S3Manifests
from notifier import EventBridgeNotifier
from run_summary import Place
from runs import Email, RunPlanner, RunSettings, StartedRun, TimeLeft

from ledger.glue_crawler import GlueCrawler
from ledger.outputs import CatalogOutputs
from ledger.run_table import DynamoRunRecords
from ledger.table import DynamoLedger

logger = Logger()
RETRIES = Config(retries={"mode": "standard", "max_attempts": 6})
RUN_ENDED_BADLY = {"FAILED", "TIMEOUT", "STOPPED"}


@cache
def _planner(table: str, bucket: str, job: str, crawler: str, database: str, processed: str,
             source: str, settings: RunSettings) -> RunPlanner:
    s3, glue = boto3.client("s3", config=RETRIES), boto3.client("glue", config=RETRIES)
    ledger_table = boto3.resource("dynamodb", config=RETRIES).Table(table)
    place = Place(processed, database, job, os.environ.get("AWS_REGION", "us-east-1"), settings.max_attempts)
    return RunPlanner(
        ledger=DynamoLedger(ledger_table),
        runs=DynamoRunRecords(ledger_table),
        manifests=S3Manifests(s3, bucket),
        jobs=GlueJob(glue, job),
        outputs=CatalogOutputs(glue, s3, database, processed, bucket),
        crawler=GlueCrawler(glue, crawler),
        notifier=EventBridgeNotifier(boto3.client("events", config=RETRIES), s3, bucket, source,
                                     grace=settings.claim_grace),
        settings=settings,
        place=place,
    )


def planner() -> RunPlanner:
    env = os.environ
    settings = RunSettings(int(env["MAX_FILES_PER_RUN"]), int(env["MAX_BYTES_PER_RUN"]),
                           int(env["MAX_ATTEMPTS"]),
                           timedelta(seconds=int(env.get("SWEEP_AFTER_SECONDS", "900"))),
                           timedelta(seconds=int(env.get("CLAIM_GRACE_SECONDS", "900"))))
    return _planner(env["LEDGER_TABLE"], env["ARTIFACTS_BUCKET"], env["JOB_NAME"], env["CRAWLER_NAME"],
                    env["PROCESSED_DATABASE"], env["PROCESSED_BUCKET"], env["EVENT_SOURCE"], settings)


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict:
    detail = event.detail
    time_left = TimeLeft.of(context.get_remaining_time_in_millis)  # claims stop short of the timeout
    if event.detail_type == "Scheduled Event":  # each sweep tick: how long the oldest file waits
        _publish_waiting()
    if event.detail_type == "Glue Crawler State Change":
        if detail.get("crawlerName") != os.environ["CRAWLER_NAME"]:
            return _ignored(event, "not our crawler")
        if detail.get("state") == "Failed":
            email = planner().crawl_failed(event.get_id, detail["crawlerName"],
                                           detail.get("errorMessage", ""), event.time,
                                           detail.get("cloudWatchLogLink", ""))
            return _emailed(email)
        if detail.get("state") != "Succeeded":
            return _ignored(event, f"crawler state {detail.get('state')}")
        return _started(planner().start_runs(time_left), trigger="crawler succeeded")

    if event.detail_type == "Scheduled Event":
        swept = planner().sweep()
        if swept.released:
            logger.warning("claims of runs that never started released", extra={"released": swept.released})
        if swept.settled:
            logger.warning("runs whose end was never heard settled", extra={"settled": swept.settled})
        if swept.crawl is None:
            return _ignored(event, "nothing pending for long")
        released = sum(swept.released.values())
        return {"sweep": f"crawler {swept.crawl.value}" + (
            f"; {released} files released from runs that never started" if released else "")}

    if event.detail_type == "Glue Job State Change":
        if detail.get("jobName") != os.environ["JOB_NAME"]:
            return _ignored(event, "not our job")
        state, job_run_id = detail.get("state", ""), detail.get("jobRunId", "")
        if state in RUN_ENDED_BADLY:
            settled, email = planner().run_ended_badly(job_run_id, state, detail.get("message", ""))
            moved = {s.value: n for s, n in settled.items()}
            logger.warning("run ended badly; files settled",
                           extra={"job_run_id": job_run_id, "state": state, "moved": moved})
            return {"released": moved, **_emailed(email)}
        if state == "SUCCEEDED":  # use the free slot first, then tell what the run did
            started = _started(planner().start_runs(time_left), trigger="run succeeded")
            return {**started, **_emailed(planner().run_succeeded(job_run_id))}
        return _ignored(event, f"job state {state}")

    return _ignored(event, "unknown event")


def _emailed(email: Email) -> dict:
    """A send that failed has raised already (Lambda retries the event, then its DLQ keeps it)."""
    logger.info("email", extra={"about": email.name, "outcome": email.outcome,
                                "sent": email.sent, "why_not": None if email.sent else "sent already"})
    return {"email": {"about": email.name, "outcome": email.outcome, "sent": email.sent}}


def _publish_waiting() -> None:
    """The metric is the alarm's input, not the sweep's: a failed publish is logged, the sweep goes on
    (the alarm keeps its state meanwhile: TreatMissingData ignore)."""
    try:
        waiting.publish(_cloudwatch(), os.environ["LEDGER_TABLE"],
                        waiting.waiting_ages(planner().ledger, datetime.now(UTC)))
    except Exception as error:  # any failure to measure or publish
        logger.error("waiting-file metric not published", extra={"error": f"{type(error).__name__}: {error}"})


@cache
def _cloudwatch() -> Any:
    return boto3.client("cloudwatch", config=RETRIES)


def _started(runs: list[StartedRun], trigger: str) -> dict:
    logger.info("runs started", extra={"trigger": trigger, "runs": [r.__dict__ for r in runs]})
    return {"runs": [r.__dict__ for r in runs]}


def _ignored(event: EventBridgeEvent, why: str) -> dict:
    logger.info("event ignored", extra={"detail_type": event.detail_type, "why": why})
    return {"ignored": why}
