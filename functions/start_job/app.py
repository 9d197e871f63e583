"""StartJobFunction: crawler Succeeded, the sweep schedule, or a finished job run -> runs.

Which event means what is decided here in one place; what to do lives in runs.py.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from functools import cache

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from glue_job import GlueJob
from manifests import S3Manifests
from outputs import CatalogOutputs
from run_summary import summary_message
from runs import RunPlanner, RunSettings

from ledger.table import DynamoLedger

logger = Logger()
RETRIES = Config(retries={"mode": "standard", "max_attempts": 6})
RUN_ENDED_BADLY = {"FAILED", "TIMEOUT", "STOPPED"}


@cache
def _planner(table: str, bucket: str, job: str, database: str, processed: str, max_files: int,
             max_bytes: int, max_attempts: int) -> RunPlanner:
    s3, glue = boto3.client("s3", config=RETRIES), boto3.client("glue", config=RETRIES)
    return RunPlanner(
        ledger=DynamoLedger(boto3.resource("dynamodb", config=RETRIES).Table(table)),
        manifests=S3Manifests(s3, bucket),
        jobs=GlueJob(glue, job),
        outputs=CatalogOutputs(glue, s3, database, processed),
        settings=RunSettings(max_files, max_bytes, max_attempts),
    )


def planner() -> RunPlanner:
    env = os.environ
    return _planner(env["LEDGER_TABLE"], env["ARTIFACTS_BUCKET"], env["JOB_NAME"],
                    env["PROCESSED_DATABASE"], env["PROCESSED_BUCKET"], int(env["MAX_FILES_PER_RUN"]),
                    int(env["MAX_BYTES_PER_RUN"]), int(env["MAX_ATTEMPTS"]))


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict:
    detail = event.detail
    if event.detail_type == "Glue Crawler State Change":
        if detail.get("crawlerName") != os.environ["CRAWLER_NAME"] or detail.get("state") != "Succeeded":
            return _ignored(event, "not our crawler's success")
        return _started(planner().start_runs(), trigger="crawler succeeded")

    if event.detail_type == "Scheduled Event":
        age = timedelta(seconds=int(os.environ.get("SWEEP_AFTER_SECONDS", "900")))
        return _started(planner().start_runs(pending_before=datetime.now(UTC) - age),
                        trigger="sweep")

    if event.detail_type == "Glue Job State Change":
        if detail.get("jobName") != os.environ["JOB_NAME"]:
            return _ignored(event, "not our job")
        state = detail.get("state", "")
        if state in RUN_ENDED_BADLY:
            moved = planner().run_ended_badly(detail["jobRunId"], state, detail.get("message", ""))
            logger.warning("run ended badly; files released", extra={
                "job_run_id": detail["jobRunId"], "state": state,
                "moved": {s.value: n for s, n in moved.items()}})
            return {"released": {s.value: n for s, n in moved.items()}}
        if state == "SUCCEEDED":  # tell what the run did, then use the free slot
            _notify_summary(detail["jobRunId"])
            return _started(planner().start_runs(), trigger="run succeeded")
        return _ignored(event, f"job state {state}")

    return _ignored(event, "unknown event")


def _notify_summary(job_run_id: str) -> None:
    topic = os.environ.get("NOTIFICATION_TOPIC")
    run_id = planner().jobs.run_id_of(job_run_id)
    summary = planner().manifests.read_summary(run_id) if run_id else None
    if not topic or summary is None:
        logger.warning("no run summary to send", extra={"job_run_id": job_run_id, "run_id": run_id})
        return
    subject, text = summary_message(summary)
    boto3.client("sns", config=RETRIES).publish(TopicArn=topic, Subject=subject, Message=text)


def _started(runs: list, trigger: str) -> dict:
    logger.info("runs started", extra={"trigger": trigger, "runs": [r.__dict__ for r in runs]})
    return {"runs": [r.__dict__ for r in runs]}


def _ignored(event: EventBridgeEvent, why: str) -> dict:
    logger.info("event ignored", extra={"detail_type": event.detail_type, "why": why})
    return {"ignored": why}
