"""Turning PENDING files into Glue job runs, and taking them back when a run fails: the pure
decisions of StartJobFunction. The ledger, the manifest store and the job are small interfaces,
so these rules are tested with in-memory fakes.

    >>> settings = RunSettings(max_files=1000, max_bytes=10**10, max_attempts=3)
    >>> settings.budget().max_files
    1000
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from ledger import FileRef, RowCounts, RunBudget, RunManifest, State, new_run_id


@dataclass(frozen=True)
class RunSettings:
    max_files: int
    max_bytes: int
    max_attempts: int

    def budget(self) -> RunBudget:
        return RunBudget(max_files=self.max_files, max_bytes=self.max_bytes)


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    job_run_id: str
    manifest_uri: str
    files: int
    bytes: int


class ConcurrencyLimitReached(RuntimeError):
    """The job already runs MaxConcurrentRuns times (ConcurrentRunsExceededException)."""


class Ledger(Protocol):
    def claim_pending(self, run_id: str, budget: RunBudget,
                      created_before: datetime | None = None) -> list[FileRef]: ...
    def release_claim(self, run_id: str, refs: list[FileRef]) -> None: ...
    def fail_run(self, run_id: str, max_attempts: int, reason: str) -> dict[State, int]: ...
    def mark_done(self, run_id: str, file_id: str, counts: RowCounts) -> bool: ...
    def by_state(self, state: State, updated_before: datetime | None = None,
                 page_size: int | None = None) -> Iterator[dict]: ...


class Manifests(Protocol):
    def write(self, manifest: RunManifest) -> str: ...
    def delete(self, run_id: str) -> None: ...
    def read_summary(self, run_id: str) -> dict | None: ...


class Outputs(Protocol):
    def discard(self, run_id: str) -> int: ...


class Jobs(Protocol):
    def has_capacity(self) -> bool: ...
    def start(self, run_id: str, manifest_uri: str) -> str: ...
    def run_id_of(self, job_run_id: str) -> str | None: ...


class RunPlanner:
    """Claims pending files into runs and starts the job for each, until nothing is pending or
    the job's concurrency limit is reached. Each run owns a disjoint set of files."""

    def __init__(self, ledger: Ledger, manifests: Manifests, jobs: Jobs, outputs: Outputs,
                 settings: RunSettings, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.ledger = ledger
        self.manifests = manifests
        self.jobs = jobs
        self.outputs = outputs
        self.settings = settings
        self.now = now

    def start_runs(self, crawled_before: datetime | None) -> list[StartedRun]:
        """Runs for the files the catalog already describes: those created before the last
        successful crawl began (`crawled_before`; None when no crawl has succeeded yet). A file
        created later waits for its own crawl, so a new table, column or type is catalogued
        before the job reads the file."""
        started: list[StartedRun] = []
        if crawled_before is None:
            return started
        while self.jobs.has_capacity():  # else the next run-ended event or the sweep comes back
            run_id = new_run_id(self.now())
            budget = self.settings.budget()
            claimed = self.ledger.claim_pending(run_id, budget, crawled_before)
            if not claimed:
                return started  # nothing pending: no run
            try:
                manifest = RunManifest(run_id, self.now().isoformat(), claimed)
                uri = self.manifests.write(manifest)
                job_run_id = self.jobs.start(run_id, uri)
            except ConcurrencyLimitReached:
                self._give_back(run_id, claimed)  # the next trigger or the sweeper takes them
                return started
            except Exception:
                self._give_back(run_id, claimed)
                raise
            started.append(StartedRun(run_id, job_run_id, uri, len(claimed), manifest.total_bytes))
            # Go round again even if the budget had room: the next file may simply not have fit.
        return started

    def has_pending(self, before: datetime) -> bool:
        """Is any file PENDING since before `before`? (What the sweep looks for.)"""
        return next(iter(self.ledger.by_state(State.PENDING, before, page_size=1)), None) is not None

    def _give_back(self, run_id: str, claimed: list[FileRef]) -> None:
        self.ledger.release_claim(run_id, claimed)
        self.manifests.delete(run_id)

    def run_ended_badly(self, job_run_id: str, state: str, message: str) -> dict[State, int]:
        """A run FAILED, TIMED OUT or was STOPPED. If it got past its commit point (the run
        summary exists), its output is complete: the files it had not yet marked are marked DONE
        from the summary. Otherwise whatever it wrote is discarded and its files go back to
        PENDING (attempts+1) or, out of attempts, to FAILED with the reason."""
        run_id = self.jobs.run_id_of(job_run_id)
        if run_id is None:
            return {}
        summary = self.manifests.read_summary(run_id)
        if summary is not None:
            done = sum(self.ledger.mark_done(run_id, f["file_id"], RowCounts(
                f["rows_in"], f["rows_out"], f["rows_bad"], f["rows_duplicate"])) for f in summary["files"])
            return {State.DONE: done}
        self.outputs.discard(run_id)
        reason = f"job run {job_run_id} {state}: {message}"
        return self.ledger.fail_run(run_id, self.settings.max_attempts, reason)
