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

from ledger import State
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
        return _started(planner().start_runs(_crawled_before()), trigger="crawler succeeded")

    if event.detail_type == "Scheduled Event":
        # The sweep crawls rather than claims: a file left PENDING may be one whose crawl never
        # came (its message is in the DLQ), so its table may not exist yet. The crawl's
        # Succeeded event then starts runs for everything pending, as after any crawl.
        age = timedelta(seconds=int(os.environ.get("SWEEP_AFTER_SECONDS", "900")))
        if not planner().has_pending(before=datetime.now(UTC) - age):
            return _ignored(event, "nothing pending for long")
        return {"sweep": _start_crawler(os.environ["CRAWLER_NAME"])}

    if event.detail_type == "Glue Job State Change":
        if detail.get("jobName") != os.environ["JOB_NAME"]:
            return _ignored(event, "not our job")
        state = detail.get("state", "")
        if state in RUN_ENDED_BADLY:
            moved = planner().run_ended_badly(detail["jobRunId"], state, detail.get("message", ""))
            if moved.get(State.DONE):  # it had committed: its output stands, so tell what it did
                _notify_summary(detail["jobRunId"])
            logger.warning("run ended badly; files released", extra={
                "job_run_id": detail["jobRunId"], "state": state,
                "moved": {s.value: n for s, n in moved.items()}})
            return {"released": {s.value: n for s, n in moved.items()}}
        if state == "SUCCEEDED":  # tell what the run did, then use the free slot
            _notify_summary(detail["jobRunId"])
            return _started(planner().start_runs(_crawled_before()), trigger="run succeeded")
        return _ignored(event, f"job state {state}")

    return _ignored(event, "unknown event")


def _crawled_before() -> datetime | None:
    """When the last successful crawl began: every file created before it is in the catalog."""
    crawler = planner().jobs.glue.get_crawler(Name=os.environ["CRAWLER_NAME"])["Crawler"]
    last = crawler.get("LastCrawl", {})
    return last.get("StartTime") if last.get("Status") == "SUCCEEDED" else None


def _start_crawler(name: str) -> str:
    glue = planner().jobs.glue
    try:
        glue.start_crawler(Name=name)
    except glue.exceptions.CrawlerRunningException:
        return "crawler already running"
    return "crawler started"


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
