"""Run planning rules with in-memory fakes: caps, refusals, failures, the time left, the sweep and
the email."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger import (
    CrawlerStart,
    FileRef,
    FileSummary,
    RowCounts,
    RunBudget,
    RunManifest,
    RunSummary,
    State,
    state_after_failed_run,
)

from runs import ConcurrencyLimitReached, Email, RunPlanner, RunSettings, Sweep, TimeLeft  # isort: skip


CREATED = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # when the fake ledger's files were created
CRAWLED = CREATED + timedelta(minutes=1)  # a crawl that began after: it catalogued them


class FakeLedger:
    def __init__(self, n: int, size: int = 10) -> None:
        self.pending = [FileRef("raw", f"d/{i}.csv", "e", size) for i in range(n)]
        self.claims: dict[str, list[FileRef]] = {}
        self.claimed_at: dict[str, datetime] = {}  # run id -> when its files were claimed
        self.released: list[str] = []

    def claim_pending(self, run_id, budget: RunBudget, created_before=None, stop=None):
        taken = []
        while created_before > CREATED and self.pending and not (stop and stop()) \
                and budget.take(self.pending[0]):
            taken.append(self.pending.pop(0))
        self.claims[run_id] = taken
        self.claimed_at[run_id] = CRAWLED
        return taken

    def release_claim(self, run_id, refs):
        self.released.append(run_id)
        self.pending[:0] = refs
        self.claims.pop(run_id, None)
        return len(refs)

    def fail_run(self, run_id, max_attempts, reason):
        self.failed = {**getattr(self, "failed", {}), run_id: (max_attempts, reason)}
        return {State.PENDING: len(self.claims.get(run_id, []))}

    def by_run(self, run_id):
        return iter([])

    def by_state(self, state, updated_before=None, page_size=None):
        if state is State.PENDING and updated_before is not None and updated_before > CREATED:
            return iter([ref.to_dict() for ref in self.pending])
        if state is State.CLAIMED:
            return iter([{**ref.to_dict(), "run_id": run_id} for run_id, refs in self.claims.items()
                         for ref in refs if self.claimed_at[run_id] < updated_before])
        return iter([])

    def mark_done(self, run_id, file_id, counts):
        self.done = {**getattr(self, "done", {}), file_id: counts}
        return True


class FakeManifests:
    def __init__(self) -> None:
        self.written: dict[str, RunManifest] = {}

    def write(self, manifest):
        self.written[manifest.run_id] = manifest
        return f"s3://artifacts/runs/{manifest.run_id}/manifest.json"

    def delete(self, run_id):
        self.written.pop(run_id)

    def exists(self, run_id):
        return run_id in self.written

    def summary_uri(self, run_id):
        return f"s3://artifacts/runs/{run_id}/summary.json"

    def read_summary(self, run_id):
        return self.summaries.get(run_id) if hasattr(self, "summaries") else None


class FakeCrawler:
    def __init__(self, catalogued_before=CRAWLED, running: bool = False) -> None:
        self.before = catalogued_before
        self.running = running
        self.starts = 0

    def catalogued_before(self):
        return self.before

    def start(self):
        self.starts += 1
        return CrawlerStart.ALREADY_RUNNING if self.running else CrawlerStart.STARTED


class FakeNotifier:
    """Sends a report once per name, as EventBridgeNotifier does."""

    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list = []
        self.error = error

    def send(self, report):
        if self.error:
            raise self.error
        if any(r.name == report.name for r in self.sent):
            return False
        self.sent.append(report)
        return True


class FakeOutputs:
    def __init__(self) -> None:
        self.discarded: list[str] = []

    def discard(self, run_id):
        self.discarded.append(run_id)
        return 1


class FakeJobs:
    def __init__(self, slots: int = 100, error: Exception | None = None,
                 advertised_slots: int | None = None) -> None:
        self.slots = slots  # what StartJobRun enforces
        self.advertised_slots = advertised_slots  # what has_capacity sees (None: always room)
        self.error = error
        self.started: dict[str, str] = {}

    def has_capacity(self):
        return self.advertised_slots is None or len(self.started) < self.advertised_slots

    def start(self, run_id, manifest_uri):
        if self.error:
            raise self.error
        if len(self.started) >= self.slots:
            raise ConcurrencyLimitReached("limit")
        job_run_id = f"jr_{len(self.started)}"
        self.started[job_run_id] = run_id
        return job_run_id

    def run_id_of(self, job_run_id):
        return self.started.get(job_run_id)

    def holding(self, run_ids):
        return set(self.started.values()) & run_ids


def _planner(ledger, jobs, max_files=4, max_bytes=10**9, crawler=None, now=lambda: CRAWLED, notifier=None):
    return RunPlanner(ledger, FakeManifests(), jobs, FakeOutputs(), crawler or FakeCrawler(),
                      notifier or FakeNotifier(),
                      RunSettings(max_files, max_bytes, 3, sweep_after=timedelta(minutes=15),
                                  claim_grace=timedelta(minutes=5)), now=now)


def _summary(run_id: str, *counts: RowCounts) -> RunSummary:
    return RunSummary(run_id, files=[FileSummary(f"s3://raw/d/{i}.csv", f"f{i + 1}", "d", c)
                                     for i, c in enumerate(counts)])


@pytest.mark.parametrize(("files", "max_files", "max_bytes", "runs"), [
    (0, 4, 10**9, []),
    (3, 4, 10**9, [3]),
    (4, 4, 10**9, [4]),
    (9, 4, 10**9, [4, 4, 1]),
    (9, 100, 25, [2, 2, 2, 2, 1]),
])
def test_runs_are_capped(files, max_files, max_bytes, runs):
    planner = _planner(FakeLedger(files), FakeJobs(), max_files, max_bytes)
    assert [r.files for r in planner.start_runs()] == runs


def test_only_files_a_successful_crawl_catalogued_are_claimed():
    ledger, crawler = FakeLedger(3), FakeCrawler(catalogued_before=None)
    planner = _planner(ledger, FakeJobs(), crawler=crawler)
    assert planner.start_runs() == []  # no crawl has succeeded yet
    crawler.before = CREATED - timedelta(seconds=1)
    assert planner.start_runs() == []  # it began before they existed
    crawler.before = CRAWLED
    assert [r.files for r in planner.start_runs()] == [3]


def test_concurrency_limit_releases_the_refused_claim_and_its_manifest():
    ledger, jobs = FakeLedger(10), FakeJobs(slots=2)
    planner = _planner(ledger, jobs)
    started = planner.start_runs()
    assert [r.files for r in started] == [4, 4]
    assert len(ledger.released) == 1 and len(ledger.pending) == 2
    assert set(planner.manifests.written) == {r.run_id for r in started}


def test_a_job_at_its_limit_is_not_claimed_for():
    ledger, jobs = FakeLedger(10), FakeJobs(slots=2, advertised_slots=2)
    planner = _planner(ledger, jobs)
    assert [r.files for r in planner.start_runs()] == [4, 4]
    assert ledger.released == [] and len(ledger.claims) == 2  # no claim made just to give it back
    assert planner.start_runs() == [] and len(ledger.claims) == 2


def test_unexpected_errors_release_the_claim_and_propagate():
    ledger = FakeLedger(3)
    planner = _planner(ledger, FakeJobs(error=RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        planner.start_runs()
    assert len(ledger.pending) == 3 and planner.manifests.written == {}


def test_failed_run_is_traced_through_the_job_run_arguments():
    ledger, jobs = FakeLedger(2), FakeJobs()
    planner = _planner(ledger, jobs)
    [run] = planner.start_runs()
    settled = planner.run_ended_badly(run.job_run_id, "FAILED", "boom")
    assert settled == ({State.PENDING: 2}, Email(run.run_id, "FAILED", sent=True))
    assert planner.outputs.discarded == [run.run_id]  # what it wrote before failing is removed
    assert ledger.failed[run.run_id] == (3, f"job run {run.job_run_id} FAILED: boom")  # an attempt counted
    [report] = planner.notifier.sent  # why, and what happens to its files
    assert "ended FAILED: boom" in report.message and "Its files: 2 back to PENDING" in report.message
    unknown = planner.run_ended_badly("jr_unknown", "FAILED", "boom")
    assert unknown == ({}, Email("jr_unknown", "FAILED", sent=True))  # said so; nothing settled


def test_a_run_that_dies_after_its_commit_point_is_finished_from_its_summary_and_emailed():
    ledger, jobs = FakeLedger(2), FakeJobs()
    planner = _planner(ledger, jobs)
    [run] = planner.start_runs()
    planner.manifests.summaries = {run.run_id: _summary(run.run_id, RowCounts(3, 2, 1), RowCounts(0, 0, 0))}
    assert planner.run_ended_badly(run.job_run_id, "TIMEOUT", "late") == (
        {State.DONE: 2}, Email(run.run_id, "SUCCEEDED", sent=True))
    assert planner.outputs.discarded == [] and ledger.done["f1"].rows_bad == 1
    assert not hasattr(ledger, "failed")  # no attempt counted against files that were processed
    [report] = planner.notifier.sent
    assert report.message.startswith(f"Sluice run {run.run_id}: SUCCEEDED. 2 files, 3 rows in, 2 written, "
                                     f"1 quarantined, 0 duplicate")


def test_every_run_gets_one_email_and_a_repeated_end_no_second():
    ledger, jobs = FakeLedger(1), FakeJobs()
    planner = _planner(ledger, jobs)
    [run] = planner.start_runs()
    planner.manifests.summaries = {run.run_id: _summary(run.run_id, RowCounts(5, 5, 0))}
    assert planner.run_succeeded(run.job_run_id) == Email(run.run_id, "SUCCEEDED", sent=True)
    assert planner.run_succeeded(run.job_run_id) == Email(run.run_id, "SUCCEEDED", sent=False)  # again
    assert planner.run_succeeded("jr_someone_elses") == Email("jr_someone_elses", "SUCCEEDED", sent=True)
    assert [r.message.split(". ")[0] for r in planner.notifier.sent] == [
        f"Sluice run {run.run_id}: SUCCEEDED", "Glue job run jr_someone_elses of etl ended SUCCEEDED"]


def test_a_succeeded_run_without_its_summary_is_emailed_as_incomplete():
    ledger, jobs = FakeLedger(1), FakeJobs()
    planner = _planner(ledger, jobs)
    [run] = planner.start_runs()
    assert planner.run_succeeded(run.job_run_id) == Email(run.run_id, "INCOMPLETE", sent=True)


@pytest.mark.parametrize(("minutes_pending", "running", "expected"), [
    (5, False, None),  # pending, but not for long: the next crawl or run-ended event takes it
    (20, False, CrawlerStart.STARTED),
    (20, True, CrawlerStart.ALREADY_RUNNING),
])
def test_the_sweep_crawls_only_for_files_pending_long(minutes_pending, running, expected):
    crawler = FakeCrawler(running=running)
    planner = _planner(FakeLedger(2), FakeJobs(), crawler=crawler,
                       now=lambda: CREATED + timedelta(minutes=minutes_pending))
    assert planner.sweep() == Sweep(expected)
    assert crawler.starts == (expected is not None)
    assert _planner(FakeLedger(0), FakeJobs(), crawler=crawler).sweep() == Sweep()  # nothing pending


class Clock:
    """An invocation's remaining time that falls by `step` ms each time it is read."""

    def __init__(self, start_ms: int, step: int) -> None:
        self.left, self.step = start_ms, step

    def __call__(self) -> int:
        self.left -= self.step
        return self.left + self.step


def test_claims_stop_short_of_the_timeout_and_the_run_starts_with_what_it_has():
    ledger, jobs = FakeLedger(10), FakeJobs()
    planner = _planner(ledger, jobs, max_files=100)
    time_left = TimeLeft.of(Clock(3_000, step=400))  # margin 1 s; ~5 reads left before it
    [run] = planner.start_runs(time_left)
    assert 0 < run.files < 10 and len(ledger.pending) == 10 - run.files
    assert jobs.started == {run.job_run_id: run.run_id}  # every claimed file is in a started run
    assert planner.start_runs(TimeLeft.of(Clock(3_000, step=0))) != []  # the next trigger takes the rest


def test_no_claim_when_the_time_is_already_out():
    ledger = FakeLedger(3)
    assert _planner(ledger, FakeJobs()).start_runs(TimeLeft(lambda: 500, margin_ms=1_000)) == []
    assert ledger.claims == {} and len(ledger.pending) == 3


@pytest.mark.parametrize(("minutes_after_claim", "manifest", "job_run", "released"), [
    (10, False, False, True),  # the invocation timed out mid-claim: no manifest
    (10, True, False, True),  # it timed out between the manifest and StartJobRun
    (10, True, True, False),  # the run holds them: its end settles them
    (2, False, False, False),  # within the grace: the claiming invocation may still be running
])
def test_the_sweep_releases_claims_of_runs_that_never_started(minutes_after_claim, manifest, job_run,
                                                              released):
    ledger, jobs, crawler = FakeLedger(3), FakeJobs(), FakeCrawler()
    now = CRAWLED + timedelta(minutes=minutes_after_claim)
    planner = _planner(ledger, jobs, crawler=crawler, now=lambda: now)
    claimed = ledger.claim_pending("run-x", RunBudget(10, 10**9), CRAWLED)
    if manifest:
        planner.manifests.write(RunManifest("run-x", CRAWLED.isoformat(), claimed))
    if job_run:
        jobs.started["jr_x"] = "run-x"
    swept = planner.sweep()
    assert swept.released == ({"run-x": 3} if released else {})
    assert len(ledger.pending) == (3 if released else 0)
    assert ("run-x" in planner.manifests.written) == (manifest and not released)
    assert swept.crawl == (CrawlerStart.STARTED if released else None)  # the crawl's success runs them


def test_an_email_that_cannot_be_sent_raises_after_the_run_is_settled():
    """Finding 5: a lost email was only logged; now the invocation fails and Lambda retries it (then
    its DLQ and alarm), and the settling it did stands."""
    ledger, jobs = FakeLedger(1), FakeJobs()
    planner = _planner(ledger, jobs, notifier=FakeNotifier(RuntimeError("EventBridge is down")))
    [run] = planner.start_runs()
    planner.manifests.summaries = {run.run_id: _summary(run.run_id, RowCounts(5, 5, 0))}
    with pytest.raises(RuntimeError, match="EventBridge is down"):
        planner.run_succeeded(run.job_run_id)
    with pytest.raises(RuntimeError, match="EventBridge is down"):
        planner.run_ended_badly(run.job_run_id, "TIMEOUT", "late")
    assert ledger.done == {"f1": RowCounts(5, 5, 0)}  # settled before the email


@pytest.mark.parametrize(("attempts", "max_attempts", "expected"), [
    (0, 3, (State.PENDING, 1)), (1, 3, (State.PENDING, 2)), (2, 3, (State.FAILED, 3)),
    (0, 1, (State.FAILED, 1)),
])
def test_state_after_failed_run(attempts, max_attempts, expected):
    assert state_after_failed_run(attempts, max_attempts) == expected
