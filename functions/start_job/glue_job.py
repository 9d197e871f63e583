"""Adapter: start the ETL job for a run, and find a job run's run id again."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from runs import ConcurrencyLimitReached


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

    def run_id_of(self, job_run_id: str) -> str | None:
        """Our run id travels in the job run's own arguments, so no mapping table is needed."""
        try:
            run = self.glue.get_job_run(JobName=self.name, RunId=job_run_id)["JobRun"]
        except ClientError as error:
            if error.response["Error"]["Code"] == "EntityNotFoundException":
                return None
            raise
        return run.get("Arguments", {}).get("--run_id")
