"""Settling a run that ended without finishing: the one rule StartJobFunction applies to a run
that FAILED, TIMED OUT or was STOPPED, and the local runtime to a run its restart interrupted.

If the run got past its commit point (its summary exists), its output is complete: the files it
had not yet marked are marked DONE from the summary. Otherwise whatever it wrote is discarded
and its files go back to PENDING - with an attempt counted (attempts+1, FAILED with the reason
once out of attempts) when the run's failure may be the files' fault, or unchanged when it
cannot be (the runtime was stopped under it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from ledger.model import FileRef, RowCounts, State
from ledger.summary import RunSummary


class SettlingLedger(Protocol):
    def mark_done(self, run_id: str, file_id: str, counts: RowCounts) -> bool: ...
    def fail_run(self, run_id: str, max_attempts: int, reason: str) -> dict[State, int]: ...
    def release_claim(self, run_id: str, refs: list[FileRef]) -> int: ...
    def by_run(self, run_id: str) -> Iterator[dict]: ...


@dataclass(frozen=True)
class CountAttempt:
    """The run's failure counts against its files: attempts+1, FAILED with `reason` once a file
    has had max_attempts."""

    max_attempts: int
    reason: str


def settle_ended_run(ledger: SettlingLedger, run_id: str, summary: RunSummary | None,
                     discard: Callable[[str], object], attempt: CountAttempt | None,
                     finish: Callable[[str], object] = lambda run_id: None) -> dict[State, int]:
    """Returns how many of the run's files went to each state. `discard(run_id)` removes what
    the run wrote (its partitions, objects and quarantine); `finish(run_id)` registers a
    committed run's partitions (ledger.outputs); `attempt` None leaves attempts as they were.
    (A summary entry without a file id comes from a job older than this rule.)"""
    if summary is not None:
        finish(run_id)  # before the files are DONE: a DONE file's rows are queryable
        return {State.DONE: sum(ledger.mark_done(run_id, f.file_id, f.counts)
                                for f in summary.files if f.file_id)}
    discard(run_id)
    if attempt is not None:
        return ledger.fail_run(run_id, attempt.max_attempts, attempt.reason)
    claimed = [FileRef.from_dict(item) for item in ledger.by_run(run_id)
               if item["state"] == State.CLAIMED.value]
    return {State.PENDING: ledger.release_claim(run_id, claimed)}
