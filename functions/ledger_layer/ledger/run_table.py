"""Run records in the ledger table: each transition of ledger.run_record is one conditional
UpdateItem on the record's current state, so StartJobFunction, the sweep and the job run can
race and only one wins (DynamoDB developer guide, "Condition expressions": a conditional write
succeeds only if the condition holds, atomically with the write).

    >>> runs = DynamoRunRecords(boto3.resource("dynamodb").Table("sluice-ledger"))  # doctest: +SKIP
    >>> runs.open("run-1")                                                          # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from ledger.run_record import RunRecord, RunState, run_key

# A record outlives any job run that could still act on it: a Glue job run's timeout is under 7
# days (Glue API, Job.Timeout: "less than 7 days or 10080 minutes"); DynamoDB deletes expired items
# itself (Time to Live, `expires_at` in epoch seconds; see template.yaml FileLedger).
RECORD_LIFETIME = timedelta(days=30)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


class DynamoRunRecords:
    def __init__(self, table: Any, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.table = table
        self.now = now

    def open(self, run_id: str) -> bool:
        """A new run, before its first claim."""
        now = self.now()
        return self._write(run_id, "SET run_state = :new, opened_at = :now, updated_at = :now, "
                                   "expires_at = :expires", "attribute_not_exists(file_id)",
                           {":new": RunState.OPEN.value, ":now": _iso(now),
                            ":expires": int((now + RECORD_LIFETIME).timestamp())})

    def starting(self, run_id: str) -> bool:
        """OPEN -> STARTING, just before StartJobRun. False: the sweep abandoned the run meanwhile,
        so it must not be started."""
        return self._move(run_id, (RunState.OPEN,), RunState.STARTING)

    def started(self, run_id: str, job_run_id: str) -> bool:
        """STARTING -> STARTED with the job run's id (StartJobRun accepted it). False when the job
        run has already begun (RUNNING): nothing to record then."""
        return self._move(run_id, (RunState.STARTING,), RunState.STARTED, job_run_id)

    def begin(self, run_id: str, job_run_id: str) -> bool:
        """The job run's fence, -> RUNNING: from STARTING (whichever job run comes first), or from
        STARTED/RUNNING by the job run the record names (StartJobRun's answer; the same job run
        beginning again). False: the run was abandoned, has no record, or belongs to another job
        run - StartJobRun is not idempotent, so a call botocore retried after a lost answer can
        leave two job runs for one run, and only one may act on it."""
        return self._write(
            run_id, "SET run_state = :new, updated_at = :now, job_run_id = :job",
            "run_state = :starting OR (run_state IN (:started, :running) AND job_run_id = :job)",
            {":new": RunState.RUNNING.value, ":now": _iso(self.now()), ":job": job_run_id,
             ":starting": RunState.STARTING.value, ":started": RunState.STARTED.value,
             ":running": RunState.RUNNING.value})

    def abandon(self, run_id: str, expected: RunState | None) -> bool:
        """Fence the run off if its record is still in the state the caller saw (None: still
        missing): no job run may begin it afterwards."""
        if expected is None:
            now = self.now()
            return self._write(run_id, "SET run_state = :new, opened_at = :now, updated_at = :now, "
                                       "expires_at = :expires", "attribute_not_exists(file_id)",
                               {":new": RunState.ABANDONED.value, ":now": _iso(now),
                                ":expires": int((now + RECORD_LIFETIME).timestamp())})
        return self._move(run_id, (expected,), RunState.ABANDONED)

    def drop(self, run_id: str) -> bool:
        """Delete an OPEN record whose run claimed nothing (a run that never was)."""
        try:
            self.table.delete_item(Key={"file_id": run_key(run_id)},
                                   ConditionExpression="run_state = :open",
                                   ExpressionAttributeValues={":open": RunState.OPEN.value})
            return True
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise

    def get(self, run_id: str) -> RunRecord | None:
        item = self.table.get_item(Key={"file_id": run_key(run_id)}, ConsistentRead=True).get("Item")
        return RunRecord.from_item(item) if item else None

    def _move(self, run_id: str, old: tuple[RunState, ...], new: RunState, job_run_id: str | None = None
              ) -> bool:
        names = {f":old{i}": state.value for i, state in enumerate(old)}
        update = "SET run_state = :new, updated_at = :now"
        values: dict[str, Any] = {":new": new.value, ":now": _iso(self.now()), **names}
        if job_run_id:
            update += ", job_run_id = :job"
            values[":job"] = job_run_id
        return self._write(run_id, update, f"run_state IN ({', '.join(names)})", values)

    def _write(self, run_id: str, update: str, condition: str, values: dict[str, Any]) -> bool:
        try:
            self.table.update_item(Key={"file_id": run_key(run_id)}, UpdateExpression=update,
                                   ConditionExpression=condition, ExpressionAttributeValues=values)
            return True
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
