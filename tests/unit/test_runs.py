"""Run planning rules with in-memory fakes: caps, refusals, failures, the sweep and the email."""

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

from runs import ConcurrencyLimitReached, RunPlanner, RunSettings  # isort: skip


CREATED = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # when the fake ledger's files were created
CRAWLED = CREATED + timedelta(minutes=1)  # a crawl that began after: it catalogued them


class FakeLedger:
    def __init__(self, n: int, size: int = 10) -> None:
        self.pending = [FileRef("raw", f"d/{i}.csv", "e", size) for i in range(n)]
        self.claims: dict[str, list[FileRef]] = {}
        self.released: list[str] = []

    def claim_pending(self, run_id, budget: RunBudget, created_before=None):
        taken = []
        while created_before > CREATED and self.pending and budget.take(self.pending[0]):
            taken.append(self.pending.pop(0))
        self.claims[run_id] = taken
        return taken

    def release_claim(self, run_id, refs):
        self.released.append(run_id)
        self.pending[:0] = refs
        return len(refs)

    def fail_run(self, run_id, max_attempts, reason):
        self.failed = {**getattr(self, "failed", {}), run_id: (max_attempts, reason)}
        return {State.PENDING: len(self.claims.get(run_id, []))}

    def by_run(self, run_id):
        return iter([])

    def by_state(self, state, updated_before=None, page_size=None):
        if state is State.PENDING and updated_before is not None and updated_before > CREATED:
            return iter([ref.to_dict() for ref in self.pending])
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
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, subject, text):
        self.sent.append((subject, text))


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


def _planner(ledger, jobs, max_files=4, max_bytes=10**9, crawler=None, now=lambda: CRAWLED):
    return RunPlanner(ledger, FakeManifests(), jobs, FakeOutputs(), crawler or FakeCrawler(), FakeNotifier(),
                      RunSettings(max_files, max_bytes, 3, sweep_after=timedelta(minutes=15)), now=now)


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
    assert planner.run_ended_badly(run.job_run_id, "FAILED", "boom") == {State.PENDING: 2}
    assert planner.outputs.discarded == [run.run_id]  # what it wrote before failing is removed
    assert ledger.failed[run.run_id] == (3, f"job run {run.job_run_id} FAILED: boom")  # an attempt counted
    assert planner.notifier.sent == []  # it did not commit: nothing to tell
    assert planner.run_ended_badly("jr_unknown", "FAILED", "boom") == {}


def test_a_run_that_dies_after_its_commit_point_is_finished_from_its_summary_and_emailed():
    ledger, jobs = FakeLedger(2), FakeJobs()
    planner = _planner(ledger, jobs)
    [run] = planner.start_runs()
    planner.manifests.summaries = {run.run_id: _summary(run.run_id, RowCounts(3, 2, 1), RowCounts(0, 0, 0))}
    assert planner.run_ended_badly(run.job_run_id, "TIMEOUT", "late") == {State.DONE: 2}
    assert planner.outputs.discarded == [] and ledger.done["f1"].rows_bad == 1
    assert not hasattr(ledger, "failed")  # no attempt counted against files that were processed
    [(subject, _)] = planner.notifier.sent
    assert subject == f"Sluice run {run.run_id}: 2 files, 2 of 3 rows written, 1 quarantined, 0 duplicate"


def test_a_succeeded_run_emails_its_summary_and_an_unknown_one_nothing():
    ledger, jobs = FakeLedger(1), FakeJobs()
    planner = _planner(ledger, jobs)
    [run] = planner.start_runs()
    assert planner.run_succeeded(run.job_run_id) is False  # no summary (yet): nothing sent
    planner.manifests.summaries = {run.run_id: _summary(run.run_id, RowCounts(5, 5, 0))}
    assert planner.run_succeeded(run.job_run_id) is True
    assert planner.run_succeeded("jr_someone_elses") is False
    assert [subject for subject, _ in planner.notifier.sent] == [
        f"Sluice run {run.run_id}: 1 files, 5 of 5 rows written, 0 quarantined, 0 duplicate"]


@pytest.mark.parametrize(("minutes_pending", "running", "expected"), [
    (5, False, None),  # pending, but not for long: the next crawl or run-ended event takes it
    (20, False, CrawlerStart.STARTED),
    (20, True, CrawlerStart.ALREADY_RUNNING),
])
def test_the_sweep_crawls_only_for_files_pending_long(minutes_pending, running, expected):
    crawler = FakeCrawler(running=running)
    planner = _planner(FakeLedger(2), FakeJobs(), crawler=crawler,
                       now=lambda: CREATED + timedelta(minutes=minutes_pending))
    assert planner.sweep() == expected
    assert crawler.starts == (expected is not None)
    assert _planner(FakeLedger(0), FakeJobs(), crawler=crawler).sweep() is None  # nothing pending


@pytest.mark.parametrize(("attempts", "max_attempts", "expected"), [
    (0, 3, (State.PENDING, 1)), (1, 3, (State.PENDING, 2)), (2, 3, (State.FAILED, 3)),
    (0, 1, (State.FAILED, 1)),
])
def test_state_after_failed_run(attempts, max_attempts, expected):
    assert state_after_failed_run(attempts, max_attempts) == expected
