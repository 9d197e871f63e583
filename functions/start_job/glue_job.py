"""Adapter: start the ETL job for a run, and find a job run's run id and state again."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from runs import ConcurrencyLimitReached, JobRunState, StartRefused

from ledger import ACTIVE_JOB_RUN_STATES

NEWEST_RUNS = 200  # GetJobRuns' largest page; it lists the newest runs first

# StartJobRun errors that mean the request was refused, so no job run exists (Glue API reference,
# StartJobRun "Errors"; ThrottlingException and AccessDenied are the common errors every action can
# answer, and reach us only after botocore's retries). InternalServiceException and
# OperationTimeoutException are not among them: the run may have been created all the same.
REFUSALS = {"ConcurrentRunsExceededException", "EntityNotFoundException", "InvalidInputException",
            "ResourceNumberLimitExceededException", "ThrottlingException", "AccessDeniedException",
            "ValidationException"}


class GlueJob:
    def __init__(self, glue: Any, name: str) -> None:
        self.glue = glue
        self.name = name

    def start(self, run_id: str, manifest_uri: str) -> str:
        try:
            response = self.glue.start_job_run(
                JobName=self.name, Arguments={"--run_id": run_id, "--manifest_uri": manifest_uri})
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code == "ConcurrentRunsExceededException":
                raise ConcurrencyLimitReached(str(error)) from error
            if code in REFUSALS:
                raise StartRefused(str(error)) from error
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
        run = self._job_run(job_run_id)
        return run.get("Arguments", {}).get("--run_id") if run else None

    def state_of(self, job_run_id: str) -> JobRunState | None:
        run = self._job_run(job_run_id)
        if run is None:
            return None
        return JobRunState(run["JobRunState"], run.get("CompletedOn"), run.get("ErrorMessage", ""))

    def holding(self, run_ids: set[str]) -> dict[str, str]:
        """Which of these run ids a job run of ours was started for, and its job run id (newest
        runs first; stops as soon as all are found). Only ever a hint: the run record's fence,
        not this listing, decides whether a run's claims may be given back."""
        found: dict[str, str] = {}
        for page in self.glue.get_paginator("get_job_runs").paginate(JobName=self.name):
            for run in page["JobRuns"]:
                run_id = run.get("Arguments", {}).get("--run_id")
                if run_id in run_ids:
                    found.setdefault(run_id, run["Id"])
            if set(found) == run_ids:
                break
        return found

    def _job_run(self, job_run_id: str) -> dict | None:
        try:
            return self.glue.get_job_run(JobName=self.name, RunId=job_run_id)["JobRun"]
        except ClientError as error:
            if error.response["Error"]["Code"] == "EntityNotFoundException":
                return None
            raise
