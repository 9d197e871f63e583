"""Turning PENDING files into Glue job runs, settling runs that end, and telling what a run did:
the pure decisions of StartJobFunction. The ledger, the manifest store, the job, the crawler and
the notifier are small interfaces, so these rules are tested with in-memory fakes.

    >>> settings = RunSettings(max_files=1000, max_bytes=10**10, max_attempts=3)
    >>> settings.budget().max_files, settings.sweep_after
    (1000, datetime.timedelta(seconds=900))
    >>> TimeLeft.of(lambda: 60_000).margin_ms, TimeLeft.of(lambda: 3_000).margin_ms
    (10000, 1000)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from run_summary import Place, Report, RunEnd, crawl_failed_report, run_report

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
    # A claim older than this whose run has no job run was left by an invocation that timed out
    # mid-claim: no invocation outlives Lambda's largest timeout, 900 s (Lambda quotas page,
    # docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html); the function's own
    # timeout is enough.
    claim_grace: timedelta = timedelta(seconds=900)

    def budget(self) -> RunBudget:
        return RunBudget(max_files=self.max_files, max_bytes=self.max_bytes)


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    job_run_id: str
    manifest_uri: str
    files: int
    bytes: int


@dataclass(frozen=True)
class TimeLeft:
    """The invocation's time left (Lambda's context.get_remaining_time_in_millis) and the margin
    kept for what follows the last claim: writing the manifest, StartJobRun (with retries), the
    response. Claims stop when the margin is reached, and the run starts with what it has."""

    remaining_ms: Callable[[], int]
    margin_ms: int

    @classmethod
    def of(cls, remaining_ms: Callable[[], int], most: int = 10_000) -> TimeLeft:
        """A margin of 10 s, or a third of the time the invocation has, whichever is less."""
        return cls(remaining_ms, min(most, remaining_ms() // 3))

    @classmethod
    def unlimited(cls) -> TimeLeft:
        return cls(lambda: 2**31, 0)

    def running_out(self) -> bool:
        return self.remaining_ms() < self.margin_ms


@dataclass(frozen=True)
class Email:
    """A run's (or a crawl's) one email: what it is about, its outcome, and whether this
    invocation sent it (False: another one already had). A send that fails raises instead, so
    the invocation is retried and, failing that, rests in the function's DLQ."""

    name: str
    outcome: str
    sent: bool


@dataclass(frozen=True)
class Sweep:
    crawl: CrawlerStart | None = None  # None: no crawl needed
    released: dict[str, int] = field(default_factory=dict)  # run id -> files given back


class ConcurrencyLimitReached(RuntimeError):
    """The job already runs MaxConcurrentRuns times (ConcurrentRunsExceededException)."""


class Ledger(SettlingLedger, Protocol):
    def claim_pending(self, run_id: str, budget: RunBudget, created_before: datetime | None = None,
                      stop: Callable[[], bool] | None = None) -> list[FileRef]: ...
    def by_state(self, state: State, updated_before: datetime | None = None,
                 page_size: int | None = None) -> Iterator[dict]: ...


class Manifests(Protocol):
    def write(self, manifest: RunManifest) -> str: ...
    def delete(self, run_id: str) -> None: ...
    def read_summary(self, run_id: str) -> RunSummary | None: ...
    def exists(self, run_id: str) -> bool: ...
    def summary_uri(self, run_id: str) -> str: ...


class Outputs(Protocol):
    def discard(self, run_id: str) -> int: ...


class Jobs(Protocol):
    def has_capacity(self) -> bool: ...
    def start(self, run_id: str, manifest_uri: str) -> str: ...
    def run_id_of(self, job_run_id: str) -> str | None: ...
    def holding(self, run_ids: set[str]) -> set[str]: ...


class Crawler(Protocol):
    def catalogued_before(self) -> datetime | None: ...
    def start(self) -> CrawlerStart: ...


class Notifier(Protocol):
    def send(self, report: Report) -> bool: ...


class RunPlanner:
    """Claims pending files into runs and starts the job for each, until nothing is pending or
    the job's concurrency limit is reached. Each run owns a disjoint set of files."""

    def __init__(self, ledger: Ledger, manifests: Manifests, jobs: Jobs, outputs: Outputs,
                 crawler: Crawler, notifier: Notifier, settings: RunSettings,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), place: Place | None = None) -> None:
        self.ledger = ledger
        self.manifests = manifests
        self.jobs = jobs
        self.outputs = outputs
        self.crawler = crawler
        self.notifier = notifier
        self.settings = settings
        self.now = now
        self.place = place or Place("processed", "processed", "etl", max_attempts=settings.max_attempts)

    def start_runs(self, time_left: TimeLeft | None = None) -> list[StartedRun]:
        """Runs for the files the catalog already describes: those created before the last
        successful crawl began (none when no crawl has succeeded yet). A file created later
        waits for its own crawl, so a new table, column or type is catalogued before the job
        reads the file. Claiming stops when `time_left` runs out: a run starts with what it
        claimed, and the next trigger takes the rest."""
        started: list[StartedRun] = []
        time_left = time_left or TimeLeft.unlimited()
        crawled_before = self.crawler.catalogued_before()
        if crawled_before is None:
            return started
        # else the next run-ended event or the sweep comes back
        while not time_left.running_out() and self.jobs.has_capacity():
            run_id = new_run_id(self.now())
            claimed = self.ledger.claim_pending(run_id, self.settings.budget(), crawled_before,
                                                stop=time_left.running_out)
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

    def sweep(self) -> Sweep:
        """The sweep gives back claims whose run never started, then crawls rather than claims:
        a file left PENDING may be one whose crawl never came (its message is in the DLQ), so
        its table may not exist yet. The crawl's Succeeded event then starts runs for everything
        pending, as after any crawl. No crawl when nothing was given back or pending for long."""
        released = self.release_stranded_claims()
        if not released and not self.has_pending(before=self.now() - self.settings.sweep_after):
            return Sweep()
        return Sweep(self.crawler.start(), released)

    def release_stranded_claims(self) -> dict[str, int]:
        """CLAIMED files of runs that never started: claimed longer ago than the claim grace (so
        the claiming invocation has ended) and with no manifest or no job run holding the run id
        (the manifest is written before StartJobRun). Back to PENDING, attempts unchanged: the
        files did nothing wrong. Returns run id -> files released."""
        stale: dict[str, list[FileRef]] = {}
        for item in self.ledger.by_state(State.CLAIMED, self.now() - self.settings.claim_grace):
            stale.setdefault(item["run_id"], []).append(FileRef.from_dict(item))
        with_manifest = {run_id for run_id in stale if self.manifests.exists(run_id)}
        held = self.jobs.holding(with_manifest) if with_manifest else set()
        released = {}
        for run_id in sorted(set(stale) - held):
            released[run_id] = self.ledger.release_claim(run_id, stale[run_id])
            if run_id in with_manifest:
                self.manifests.delete(run_id)
        return released

    def _give_back(self, run_id: str, claimed: list[FileRef]) -> None:
        self.ledger.release_claim(run_id, claimed)
        self.manifests.delete(run_id)

    def run_succeeded(self, job_run_id: str) -> Email:
        """Email what the run did (call it after start_runs: the email must not hold up the next
        run). A run whose tables failed and handed their files back is PARTIAL (or FAILED when no
        table was written), not a success."""
        run_id = self.jobs.run_id_of(job_run_id)
        summary = self.manifests.read_summary(run_id) if run_id else None
        return self._run_email(RunEnd(job_run_id, "SUCCEEDED"), run_id, summary)

    def run_ended_badly(self, job_run_id: str, state: str, message: str) -> tuple[dict[State, int], Email]:
        """A run FAILED, TIMED OUT or was STOPPED: settled (ledger.settle), with the attempt
        counted, then emailed with why and what happens to its files. A run that had committed is
        finished from its summary: its output stands."""
        run_id = self.jobs.run_id_of(job_run_id)
        if run_id is None:
            return {}, self._run_email(RunEnd(job_run_id, state, message), None, None)
        summary = self.manifests.read_summary(run_id)
        attempt = CountAttempt(self.settings.max_attempts, f"job run {job_run_id} {state}: {message}")
        moved = settle_ended_run(self.ledger, run_id, summary, self.outputs.discard, attempt)
        email = self._run_email(RunEnd(job_run_id, state, message), run_id, summary,
                                {s.value: n for s, n in moved.items()})
        return moved, email

    def _run_email(self, end: RunEnd, run_id: str | None, summary: RunSummary | None,
                   settled: dict[str, int] | None = None) -> Email:
        report = run_report(end, run_id, summary, self.place, settled,
                            self.manifests.summary_uri(run_id) if run_id else "")
        return Email(report.name, report.detail["outcome"], self.notifier.send(report))

    def crawl_failed(self, event_id: str, crawler: str, error: str, time: str, log_link: str = "") -> Email:
        """The raw crawler failed: its files stay PENDING (the sweep crawls again); email it."""
        report = crawl_failed_report(event_id, crawler, error, time, log_link)
        return Email(report.name, "FAILED", self.notifier.send(report))
