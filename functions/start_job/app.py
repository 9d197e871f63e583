"""StartJobFunction: crawler Succeeded, the sweep schedule, or a finished job run -> runs.

Which event means what is decided here in one place; what to do lives in runs.py, and the AWS
calls in the adapters (glue_job, manifests, outputs, notifier, ledger.glue_crawler).
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import cache

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from glue_job import GlueJob
from manifests import S3Manifests
from notifier import SnsNotifier
from outputs import CatalogOutputs
from runs import RunPlanner, RunSettings, StartedRun

from ledger.glue_crawler import GlueCrawler
from ledger.table import DynamoLedger

logger = Logger()
RETRIES = Config(retries={"mode": "standard", "max_attempts": 6})
RUN_ENDED_BADLY = {"FAILED", "TIMEOUT", "STOPPED"}


@cache
def _planner(table: str, bucket: str, job: str, crawler: str, database: str, processed: str,
             topic: str, settings: RunSettings) -> RunPlanner:
    s3, glue = boto3.client("s3", config=RETRIES), boto3.client("glue", config=RETRIES)
    return RunPlanner(
        ledger=DynamoLedger(boto3.resource("dynamodb", config=RETRIES).Table(table)),
        manifests=S3Manifests(s3, bucket),
        jobs=GlueJob(glue, job),
        outputs=CatalogOutputs(glue, s3, database, processed),
        crawler=GlueCrawler(glue, crawler),
        notifier=SnsNotifier(boto3.client("sns", config=RETRIES), topic),
        settings=settings,
    )


def planner() -> RunPlanner:
    env = os.environ
    settings = RunSettings(int(env["MAX_FILES_PER_RUN"]), int(env["MAX_BYTES_PER_RUN"]),
                           int(env["MAX_ATTEMPTS"]),
                           timedelta(seconds=int(env.get("SWEEP_AFTER_SECONDS", "900"))))
    return _planner(env["LEDGER_TABLE"], env["ARTIFACTS_BUCKET"], env["JOB_NAME"], env["CRAWLER_NAME"],
                    env["PROCESSED_DATABASE"], env["PROCESSED_BUCKET"], env["NOTIFICATION_TOPIC"], settings)


@logger.inject_lambda_context(correlation_id_path="id", clear_state=True)
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict:
    detail = event.detail
    if event.detail_type == "Glue Crawler State Change":
        if detail.get("crawlerName") != os.environ["CRAWLER_NAME"] or detail.get("state") != "Succeeded":
            return _ignored(event, "not our crawler's success")
        return _started(planner().start_runs(), trigger="crawler succeeded")

    if event.detail_type == "Scheduled Event":
        started = planner().sweep()
        if started is None:
            return _ignored(event, "nothing pending for long")
        return {"sweep": f"crawler {started.value}"}

    if event.detail_type == "Glue Job State Change":
        if detail.get("jobName") != os.environ["JOB_NAME"]:
            return _ignored(event, "not our job")
        state, job_run_id = detail.get("state", ""), detail.get("jobRunId", "")
        if state in RUN_ENDED_BADLY:
            moved = {s.value: n for s, n in planner().run_ended_badly(
                job_run_id, state, detail.get("message", "")).items()}
            logger.warning("run ended badly; files settled",
                           extra={"job_run_id": job_run_id, "state": state, "moved": moved})
            return {"released": moved}
        if state == "SUCCEEDED":  # tell what the run did, then use the free slot
            if not planner().run_succeeded(job_run_id):
                logger.warning("no run summary to send", extra={"job_run_id": job_run_id})
            return _started(planner().start_runs(), trigger="run succeeded")
        return _ignored(event, f"job state {state}")

    return _ignored(event, "unknown event")


def _started(runs: list[StartedRun], trigger: str) -> dict:
    logger.info("runs started", extra={"trigger": trigger, "runs": [r.__dict__ for r in runs]})
    return {"runs": [r.__dict__ for r in runs]}


def _ignored(event: EventBridgeEvent, why: str) -> dict:
    logger.info("event ignored", extra={"detail_type": event.detail_type, "why": why})
    return {"ignored": why}
