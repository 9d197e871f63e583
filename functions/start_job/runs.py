"""Turning PENDING files into Glue job runs, settling runs that end, and telling what a run did:
the pure decisions of StartJobFunction. The ledger, the manifest store, the job, the crawler and
the notifier are small interfaces, so these rules are tested with in-memory fakes.

    >>> settings = RunSettings(max_files=1000, max_bytes=10**10, max_attempts=3)
    >>> settings.budget().max_files, settings.sweep_after
    (1000, datetime.timedelta(seconds=900))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from run_summary import summary_message

from ledger import (
    CountAttempt,
    CrawlerStart,
    FileRef,
    RunBudget,
    RunManifest,
    RunSummary,
    State,
    new_run_id,
    settle_ended_run,
)
from ledger.settle import SettlingLedger


@dataclass(frozen=True)
class RunSettings:
    max_files: int
    max_bytes: int
    max_attempts: int
    sweep_after: timedelta = timedelta(seconds=900)  # a file PENDING this long makes the sweep crawl

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


class Ledger(SettlingLedger, Protocol):
    def claim_pending(self, run_id: str, budget: RunBudget,
                      created_before: datetime | None = None) -> list[FileRef]: ...
    def by_state(self, state: State, updated_before: datetime | None = None,
                 page_size: int | None = None) -> Iterator[dict]: ...


class Manifests(Protocol):
    def write(self, manifest: RunManifest) -> str: ...
    def delete(self, run_id: str) -> None: ...
    def read_summary(self, run_id: str) -> RunSummary | None: ...


class Outputs(Protocol):
    def discard(self, run_id: str) -> int: ...


class Jobs(Protocol):
    def has_capacity(self) -> bool: ...
    def start(self, run_id: str, manifest_uri: str) -> str: ...
    def run_id_of(self, job_run_id: str) -> str | None: ...


class Crawler(Protocol):
    def catalogued_before(self) -> datetime | None: ...
    def start(self) -> CrawlerStart: ...


class Notifier(Protocol):
    def send(self, subject: str, text: str) -> None: ...


class RunPlanner:
    """Claims pending files into runs and starts the job for each, until nothing is pending or
    the job's concurrency limit is reached. Each run owns a disjoint set of files."""

    def __init__(self, ledger: Ledger, manifests: Manifests, jobs: Jobs, outputs: Outputs,
                 crawler: Crawler, notifier: Notifier, settings: RunSettings,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.ledger = ledger
        self.manifests = manifests
        self.jobs = jobs
        self.outputs = outputs
        self.crawler = crawler
        self.notifier = notifier
        self.settings = settings
        self.now = now

    def start_runs(self) -> list[StartedRun]:
        """Runs for the files the catalog already describes: those created before the last
        successful crawl began (none when no crawl has succeeded yet). A file created later
        waits for its own crawl, so a new table, column or type is catalogued before the job
        reads the file."""
        started: list[StartedRun] = []
        crawled_before = self.crawler.catalogued_before()
        if crawled_before is None:
            return started
        while self.jobs.has_capacity():  # else the next run-ended event or the sweep comes back
            run_id = new_run_id(self.now())
            claimed = self.ledger.claim_pending(run_id, self.settings.budget(), crawled_before)
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

    def sweep(self) -> CrawlerStart | None:
        """The sweep crawls rather than claims: a file left PENDING may be one whose crawl never
        came (its message is in the DLQ), so its table may not exist yet. The crawl's Succeeded
        event then starts runs for everything pending, as after any crawl. None: nothing has
        been pending for long."""
        if not self.has_pending(before=self.now() - self.settings.sweep_after):
            return None
        return self.crawler.start()

    def _give_back(self, run_id: str, claimed: list[FileRef]) -> None:
        self.ledger.release_claim(run_id, claimed)
        self.manifests.delete(run_id)

    def run_succeeded(self, job_run_id: str) -> bool:
        """Email what the run did; False when there is no summary to send (not our run)."""
        run_id = self.jobs.run_id_of(job_run_id)
        summary = self.manifests.read_summary(run_id) if run_id else None
        if summary is not None:
            self.notifier.send(*summary_message(summary))
        return summary is not None

    def run_ended_badly(self, job_run_id: str, state: str, message: str) -> dict[State, int]:
        """A run FAILED, TIMED OUT or was STOPPED: settled (ledger.settle), with the attempt
        counted. A run that had committed is finished from its summary, and its summary
        emailed: its output stands."""
        run_id = self.jobs.run_id_of(job_run_id)
        if run_id is None:
            return {}
        summary = self.manifests.read_summary(run_id)
        attempt = CountAttempt(self.settings.max_attempts, f"job run {job_run_id} {state}: {message}")
        moved = settle_ended_run(self.ledger, run_id, summary, self.outputs.discard, attempt)
        if summary is not None:
            self.notifier.send(*summary_message(summary))
        return moved
