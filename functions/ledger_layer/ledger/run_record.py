"""The run record: one ledger item per run, which says whether a job run may act on the run's
claims. It is the fence between the two parties that may touch a CLAIMED file: the job run that
holds it and the sweep that gives back claims whose run never started.

    OPEN ------> STARTING ------> STARTED ------> RUNNING
      |  manifest   |   StartJobRun    |   the job's     (settled when its job run ends)
      |  written    |   accepted       |   own fence
      +-------------+-----> ABANDONED: no job run may act on it; its claims are given back

Every arrow is a conditional write on the record's current state, so exactly one of "the job
run begins" (STARTING/STARTED -> RUNNING, the first thing the job does) and "the sweep gives the
claims back" (-> ABANDONED) can win, and only one job run can begin a run (the record keeps its
id). A job run that finds its record ABANDONED, missing or another job run's writes nothing; a
record that reached RUNNING is never abandoned. This holds whatever the job
run listing says, however slow StartJobRun is, and however long a run waits in Glue's queue:
the sweep only *prefers* to consult GetJobRuns before abandoning a STARTING run (to spare a
run that exists), it never relies on it.

The record lives in the ledger table under the key `run#<run_id>`, with no `state` and no
`run_id` attribute, so it is in neither of the file indexes.

    >>> now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    >>> record = RunRecord("run-1", RunState.OPEN, opened_at=now - timedelta(seconds=5),
    ...                    updated_at=now - timedelta(seconds=5))
    >>> stranded_action(record, now, grace=timedelta(seconds=3))
    <StrandedAction.ABANDON: 'abandon'>
    >>> stranded_action(record, now, grace=timedelta(seconds=60))
    <StrandedAction.WAIT: 'wait'>
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

RUN_KEY_PREFIX = "run#"


def run_key(run_id: str) -> str:
    """The ledger key of a run's record (file items are keyed s3://..., so they never collide)."""
    return f"{RUN_KEY_PREFIX}{run_id}"


class RunState(str, Enum):
    OPEN = "OPEN"  # StartJobFunction is claiming files into the run
    STARTING = "STARTING"  # manifest written; StartJobRun called, its outcome not yet known
    STARTED = "STARTED"  # StartJobRun accepted: a job run exists (it may wait in Glue's queue)
    RUNNING = "RUNNING"  # the job run passed its fence: only its end settles the run's files
    ABANDONED = "ABANDONED"  # no job run may act on the run; its claims go back to PENDING


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    state: RunState
    opened_at: datetime
    updated_at: datetime
    job_run_id: str | None = None

    @classmethod
    def from_item(cls, item: dict) -> RunRecord:
        return cls(run_id=item["file_id"].removeprefix(RUN_KEY_PREFIX), state=RunState(item["run_state"]),
                   opened_at=_parse(item["opened_at"]), updated_at=_parse(item["updated_at"]),
                   job_run_id=item.get("job_run_id"))


class StrandedAction(str, Enum):
    """What the sweep does with claims older than the claim grace, by their run's record."""

    WAIT = "wait"  # the claiming invocation may still be running: look again next sweep
    ABANDON = "abandon"  # fence the run off (conditional), then give its claims back
    RELEASE = "release"  # the run is fenced off already: give its claims back
    CHECK_LISTING = "check-listing"  # StartJobRun's outcome unknown: look for the job run first
    KEEP = "keep"  # a job run holds the run: its end settles the files


def stranded_action(record: RunRecord | None, now: datetime, grace: timedelta) -> StrandedAction:
    """The sweep's rule for the claims of one run, given the run's record (read consistently).

    `grace` is the claiming function's timeout: once it has passed since the record last moved,
    the invocation that moved it has ended (Lambda stops an invocation at its timeout), so an
    OPEN run will never be started by it and a STARTING run's StartJobRun call has returned or
    been cut off. A claim with no record at all was made by a StartJobFunction older than run
    records, whose job run (if any) runs a job without the fence: it is given back only if no
    job run is listed for it.

    >>> now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    >>> stranded_action(None, now, timedelta(seconds=3))
    <StrandedAction.CHECK_LISTING: 'check-listing'>
    >>> old = now - timedelta(minutes=5)
    >>> [stranded_action(RunRecord("r", s, old, old), now, timedelta(seconds=3)).value for s in RunState]
    ['abandon', 'check-listing', 'keep', 'keep', 'release']
    """
    if record is None:
        return StrandedAction.CHECK_LISTING
    if record.state is RunState.ABANDONED:
        return StrandedAction.RELEASE
    if record.state in (RunState.STARTED, RunState.RUNNING):
        return StrandedAction.KEEP
    if now - record.updated_at < grace:
        return StrandedAction.WAIT
    return StrandedAction.ABANDON if record.state is RunState.OPEN else StrandedAction.CHECK_LISTING


def _parse(stamp: str) -> datetime:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
