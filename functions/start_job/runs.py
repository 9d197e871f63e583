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
    FINAL_JOB_RUN_STATES,
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
from ledger.run_record import RunRecord, RunState, StrandedAction, stranded_action
from ledger.settle import SettlingLedger


@dataclass(frozen=True)
class RunSettings:
    max_files: int
    max_bytes: int
    max_attempts: int
    sweep_after: timedelta = timedelta(seconds=900)  # a file PENDING this long makes the sweep crawl
    # How long after a run record last moved the invocation that moved it has surely ended: the
    # function's own timeout (Lambda stops an invocation there; none outlives Lambda's largest
    # timeout, 900 s: Lambda quotas page, docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
    # It only decides how soon stranded claims come back; their safety is the run record's fence.
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


NO_EMAIL = Email("", "", False)  # a job run that did nothing (fenced off): nothing to tell

@dataclass(frozen=True)
class Sweep:
    crawl: CrawlerStart | None = None  # None: no crawl needed
    released: dict[str, int] = field(default_factory=dict)  # run id -> files given back
    settled: dict[str, str] = field(default_factory=dict)  # run id -> its job run's final state


class StartRefused(RuntimeError):
    """StartJobRun answered an error that means no job run was created (a client error such as
    InvalidInputException, EntityNotFoundException, ResourceNumberLimitExceededException,
    ThrottlingException after the SDK's retries, AccessDenied)."""


class ConcurrencyLimitReached(StartRefused):
    """The job already runs MaxConcurrentRuns times (ConcurrentRunsExceededException)."""


@dataclass(frozen=True)
class JobRunState:
    """A job run as GetJobRun reports it."""

    state: str
    completed_on: datetime | None = None
    message: str = ""


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
    def discard(self, run_id: str, recorded: bool = True) -> int: ...
    def finish(self, run_id: str) -> int: ...


class Runs(Protocol):
    """The run records (ledger.run_table.DynamoRunRecords): the fence between claims and job runs."""

    def open(self, run_id: str) -> bool: ...
    def starting(self, run_id: str) -> bool: ...
    def started(self, run_id: str, job_run_id: str) -> bool: ...
    def abandon(self, run_id: str, expected: RunState | None) -> bool: ...
    def drop(self, run_id: str) -> bool: ...
    def get(self, run_id: str) -> RunRecord | None: ...


class Jobs(Protocol):
    def has_capacity(self) -> bool: ...
    def start(self, run_id: str, manifest_uri: str) -> str: ...
    def run_id_of(self, job_run_id: str) -> str | None: ...
    def holding(self, run_ids: set[str]) -> dict[str, str]: ...
    def state_of(self, job_run_id: str) -> JobRunState | None: ...


class Crawler(Protocol):
    def catalogued_before(self) -> datetime | None: ...
    def start(self) -> CrawlerStart: ...


class Notifier(Protocol):
    def send(self, report: Report) -> bool: ...


class RunPlanner:
    """Claims pending files into runs and starts the job for each, until nothing is pending or
    the job's concurrency limit is reached. Each run owns a disjoint set of files."""

    def __init__(self, ledger: Ledger, runs: Runs, manifests: Manifests, jobs: Jobs, outputs: Outputs,
                 crawler: Crawler, notifier: Notifier, settings: RunSettings,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), place: Place | None = None) -> None:
        self.ledger = ledger
        self.runs = runs
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
            self.runs.open(run_id)  # before the first claim: the sweep judges claims by it
            claimed = self.ledger.claim_pending(run_id, self.settings.budget(), crawled_before,
                                                stop=time_left.running_out)
            if not claimed:
                self.runs.drop(run_id)
                return started  # nothing pending: no run
            run = self._start(run_id, claimed)
            if run is None:
                return started
            started.append(run)
            # Go round again even if the budget had room: the next file may simply not have fit.
        return started

    def _start(self, run_id: str, claimed: list[FileRef]) -> StartedRun | None:
        """Manifest, fence, StartJobRun. None when the run was not started and its files went
        back (refused for concurrency, or fenced off by a sweep while this invocation claimed:
        it overran the claim grace). An error whose outcome is unknown (a timeout, a 5xx) leaves
        the record STARTING and is raised: the sweep settles it, consulting GetJobRuns."""
        try:
            manifest = RunManifest(run_id, self.now().isoformat(), claimed)
            uri = self.manifests.write(manifest)
        except Exception:  # no job run can exist yet: give the files back now
            if self.runs.abandon(run_id, RunState.OPEN):
                self._give_back(run_id, claimed)
            raise
        if not self.runs.starting(run_id):
            self._give_back(run_id, claimed)  # the sweep fenced it off and gives them back too
            return None
        try:
            job_run_id = self.jobs.start(run_id, uri)
        except StartRefused as refused:  # no job run was created
            if self.runs.abandon(run_id, RunState.STARTING):
                self._give_back(run_id, claimed)  # the next trigger or the sweeper takes them
            if isinstance(refused, ConcurrencyLimitReached):
                return None
            raise
        if not self.runs.started(run_id, job_run_id) and self._fenced_off(run_id):
            return None  # StartJobRun outlasted the grace and a sweep gave the files back: that job
            # run will find its record ABANDONED and do nothing
        return StartedRun(run_id, job_run_id, uri, len(claimed), manifest.total_bytes)

    def _fenced_off(self, run_id: str) -> bool:
        record = self.runs.get(run_id)
        return record is None or record.state is RunState.ABANDONED

    def has_pending(self, before: datetime) -> bool:
        """Is any file PENDING since before `before`? (What the sweep looks for.)"""
        return next(iter(self.ledger.by_state(State.PENDING, before, page_size=1)), None) is not None

    def sweep(self) -> Sweep:
        """The sweep gives back claims whose run never started (and settles runs whose end was
        never heard), then crawls rather than claims: a file left PENDING may be one whose crawl
        never came (its message is in the DLQ), so its table may not exist yet. The crawl's
        Succeeded event then starts runs for everything pending, as after any crawl. No crawl
        when nothing was given back or pending for long."""
        released, settled = self.settle_stranded_claims()
        if not released and not self.has_pending(before=self.now() - self.settings.sweep_after):
            return Sweep(released=released, settled=settled)
        return Sweep(self.crawler.start(), released, settled)

    def settle_stranded_claims(self) -> tuple[dict[str, int], dict[str, str]]:
        """CLAIMED files claimed longer ago than the claim grace, by their run's record
        (ledger/run_record.py, `stranded_action`): a run that was never started, or whose
        StartJobRun provably created no job run, is fenced off (ABANDONED) and its files go back
        to PENDING with attempts unchanged (they did nothing wrong). A run a job run holds is
        never given back; if its job run has ended and the end was never heard (a lost event),
        it is settled now as that end would have settled it. Returns (run id -> files given
        back, run id -> final state of the job runs settled)."""
        stale: dict[str, list[FileRef]] = {}
        for item in self.ledger.by_state(State.CLAIMED, self.now() - self.settings.claim_grace):
            stale.setdefault(item["run_id"], []).append(FileRef.from_dict(item))
        released: dict[str, int] = {}
        settled: dict[str, str] = {}
        for run_id, refs in sorted(stale.items()):
            record = self.runs.get(run_id)
            action = stranded_action(record, self.now(), self.settings.claim_grace)
            if action is StrandedAction.CHECK_LISTING:
                # A job run for it may exist (StartJobRun's answer was lost): spare it if listed. A
                # listing that misses it costs nothing but that run: the fence stops it.
                job_run_id = self.jobs.holding({run_id}).get(run_id)
                if job_run_id is not None:
                    self.runs.started(run_id, job_run_id)
                    continue
                action = StrandedAction.ABANDON
            if action is StrandedAction.ABANDON:
                if not self.runs.abandon(run_id, record.state if record else None):
                    continue  # the record moved meanwhile (the run began): look again next sweep
                action = StrandedAction.RELEASE
            if action is StrandedAction.RELEASE:
                released[run_id] = self.ledger.release_claim(run_id, refs)
                self.manifests.delete(run_id)
            elif action is StrandedAction.KEEP and record is not None and record.job_run_id:
                if state := self._settle_if_ended(record.job_run_id):
                    settled[run_id] = state
        return released, settled

    def _settle_if_ended(self, job_run_id: str) -> str | None:
        """A job run that ended longer ago than the claim grace while its files are still
        CLAIMED: its Job State Change event was lost (EventBridge and Lambda deliver at least
        once, but a target can fail for good). Settled as the event would have settled it."""
        run = self.jobs.state_of(job_run_id)
        if run is None or run.state not in FINAL_JOB_RUN_STATES or run.completed_on is None:
            return None
        if self.now() - run.completed_on < self.settings.claim_grace:
            return None  # its event may still be on its way
        if run.state == "SUCCEEDED":
            self.run_succeeded_late(job_run_id)
        else:
            self.run_ended_badly(job_run_id, run.state, run.message or "its end event was never received")
        return run.state

    def _give_back(self, run_id: str, claimed: list[FileRef]) -> None:
        self.ledger.release_claim(run_id, claimed)
        self.manifests.delete(run_id)

    def run_succeeded(self, job_run_id: str) -> Email:
        """Email what the run did (call it after start_runs: the email must not hold up the next
        run). A run whose tables failed and handed their files back is PARTIAL (or FAILED when no
        table was written), not a success. A job run that another job run's record displaced,
        or that was fenced off (its run ABANDONED), did nothing: no email (the run that holds the
        files sends theirs)."""
        run_id = self.jobs.run_id_of(job_run_id)
        if run_id is not None and self._did_nothing(self.runs.get(run_id), job_run_id):
            return NO_EMAIL
        summary = self.manifests.read_summary(run_id) if run_id else None
        return self._run_email(RunEnd(job_run_id, "SUCCEEDED"), run_id, summary)

    def _discard(self, record: RunRecord | None) -> Callable[[str], int]:
        """How a run's output is discarded: from its output records, or - a run without a run
        record, started before records existed - the old, unbounded way."""
        return lambda run_id: self.outputs.discard(run_id, recorded=record is not None)

    @staticmethod
    def _another_holds(record: RunRecord | None, job_run_id: str) -> bool:
        """Does the run's record name a job run other than this one? Then this one never began the
        run (a second job run a retried StartJobRun created, fenced off): its end settles nothing."""
        return record is not None and record.job_run_id is not None and record.job_run_id != job_run_id

    @classmethod
    def _did_nothing(cls, record: RunRecord | None, job_run_id: str) -> bool:
        """A job run that never acted on its run: another holds it, or it was fenced off."""
        return cls._another_holds(record, job_run_id) or (
            record is not None and record.state is RunState.ABANDONED)

    def run_ended_badly(self, job_run_id: str, state: str, message: str) -> tuple[dict[State, int], Email]:
        """A run FAILED, TIMED OUT or was STOPPED: settled (ledger.settle), with the attempt
        counted, then emailed with why and what happens to its files. A run that had committed is
        finished from its summary: its output stands. A job run that ended before it began the run
        (its record never reached RUNNING: Glue failed it for concurrency or resources) wrote
        nothing, so its files go back with attempts unchanged; one that never acted on its run
        (another job run holds it, or it was fenced off) settles nothing and sends nothing."""
        run_id = self.jobs.run_id_of(job_run_id)
        if run_id is None:
            return {}, self._run_email(RunEnd(job_run_id, state, message), None, None)
        record = self.runs.get(run_id)
        if self._did_nothing(record, job_run_id):
            return {}, NO_EMAIL
        began = record is None or record.state is RunState.RUNNING
        if not began and record is not None and self.runs.abandon(run_id, record.state):
            claimed = [FileRef.from_dict(item) for item in self.ledger.by_run(run_id)
                       if item["state"] == State.CLAIMED.value]
            self.manifests.delete(run_id)
            moved = {State.PENDING: self.ledger.release_claim(run_id, claimed)}
        else:
            summary = self.manifests.read_summary(run_id)
            attempt = CountAttempt(self.settings.max_attempts, f"job run {job_run_id} {state}: {message}")
            moved = settle_ended_run(self.ledger, run_id, summary, self._discard(record), attempt,
                                     self.outputs.finish)
        summary = self.manifests.read_summary(run_id)
        email = self._run_email(RunEnd(job_run_id, state, message), run_id, summary,
                                {s.value: n for s, n in moved.items()})
        return moved, email

    def run_succeeded_late(self, job_run_id: str) -> Email:
        """A SUCCEEDED run whose end event never came: its files are finished from its summary
        and it is emailed, as the event would have done. (A run that succeeded without a summary
        never committed: settled as a failed run.)"""
        run_id = self.jobs.run_id_of(job_run_id)
        summary = self.manifests.read_summary(run_id) if run_id else None
        if run_id is None or summary is None:
            return self.run_ended_badly(job_run_id, "SUCCEEDED", "the run ended without its summary")[1]
        moved = settle_ended_run(self.ledger, run_id, summary, self._discard(self.runs.get(run_id)), None,
                                 self.outputs.finish)
        return self._run_email(RunEnd(job_run_id, "SUCCEEDED"), run_id, summary,
                               {s.value: n for s, n in moved.items()})

    def _run_email(self, end: RunEnd, run_id: str | None, summary: RunSummary | None,
                   settled: dict[str, int] | None = None) -> Email:
        report = run_report(end, run_id, summary, self.place, settled,
                            self.manifests.summary_uri(run_id) if run_id else "")
        return Email(report.name, report.detail["outcome"], self.notifier.send(report))

    def crawl_failed(self, event_id: str, crawler: str, error: str, time: str, log_link: str = "") -> Email:
        """The raw crawler failed: its files stay PENDING (the sweep crawls again); email it."""
        report = crawl_failed_report(event_id, crawler, error, time, log_link)
        return Email(report.name, "FAILED", self.notifier.send(report))
