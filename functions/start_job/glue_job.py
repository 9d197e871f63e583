"""Adapter: start the ETL job for a run, and find a job run's run id again."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from runs import ConcurrencyLimitReached

from ledger import ACTIVE_JOB_RUN_STATES

NEWEST_RUNS = 200  # GetJobRuns' largest page; it lists the newest runs first


class GlueJob:
    def __init__(self, glue: Any, name: str) -> None:
        self.glue = glue
        self.name = name

    def start(self, run_id: str, manifest_uri: str) -> str:
        try:
            response = self.glue.start_job_run(
                JobName=self.name, Arguments={"--run_id": run_id, "--manifest_uri": manifest_uri})
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConcurrentRunsExceededException":
                raise ConcurrencyLimitReached(str(error)) from error
            raise
        return response["JobRunId"]

    def has_capacity(self) -> bool:
        """Is a run slot free? Counted among the newest runs only, so it can only err towards
        yes; StartJobRun stays the judge. It saves claiming a run's worth of files just to give
        them back when the job is at its limit (every run-ended event used to)."""
        job = self.glue.get_job(JobName=self.name)["Job"]
        limit = job.get("ExecutionProperty", {}).get("MaxConcurrentRuns", 1)
        runs = self.glue.get_job_runs(JobName=self.name, MaxResults=NEWEST_RUNS)["JobRuns"]
        return sum(run["JobRunState"] in ACTIVE_JOB_RUN_STATES for run in runs) < limit

    def run_id_of(self, job_run_id: str) -> str | None:
        """Our run id travels in the job run's own arguments, so no mapping table is needed."""
        try:
            run = self.glue.get_job_run(JobName=self.name, RunId=job_run_id)["JobRun"]
        except ClientError as error:
            if error.response["Error"]["Code"] == "EntityNotFoundException":
                return None
            raise
        return run.get("Arguments", {}).get("--run_id")

    def holding(self, run_ids: set[str]) -> set[str]:
        """Which of these run ids a job run of ours was started for (newest runs first; stops
        as soon as all are found)."""
        found: set[str] = set()
        for page in self.glue.get_paginator("get_job_runs").paginate(JobName=self.name):
            found |= {r.get("Arguments", {}).get("--run_id") for r in page["JobRuns"]} & run_ids
            if found == run_ids:
                break
        return found
