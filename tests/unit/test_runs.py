"""Run planning rules with in-memory fakes: caps, refusals, failures, the time left, the sweep and
the email."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledger import (
    CrawlerStart,
    FileSummary,
    RowCounts,
    RunBudget,
    RunManifest,
    RunSummary,
    State,
    state_after_failed_run,
)
from ledger.run_record import RunRecord, RunState
from tests.unit.run_fakes import (
    CRAWLED,
    CREATED,
    Clock,
    FakeCrawler,
    FakeJobs,
    FakeLedger,
    FakeManifests,
    FakeNotifier,
    FakeOutputs,
    FakeRuns,
)

from runs import Email, RunPlanner, RunSettings, StartRefused, Sweep, TimeLeft  # isort: skip


def _planner(ledger, jobs, max_files=4, max_bytes=10**9, crawler=None, now=lambda: CRAWLED, notifier=None,
             runs=None):
    return RunPlanner(ledger, runs or FakeRuns(now), FakeManifests(), jobs, FakeOutputs(),
                      crawler or FakeCrawler(), notifier or FakeNotifier(),
                      RunSettings(max_files, max_bytes, 3, sweep_after=timedelta(minutes=15),
                                  claim_grace=timedelta(minutes=5)), now=now)


def _summary(run_id: str, *counts: RowCounts) -> RunSummary:
    return RunSummary(run_id, files=[FileSummary(f"s3://raw/d/{i}.csv", f"s3://raw/d/{i}.csv#e", "d", c)
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


def test_a_refused_start_gives_the_claim_back_at_once_and_propagates():
    ledger = FakeLedger(3)
    planner = _planner(ledger, FakeJobs(error=StartRefused("InvalidInputException")))
    with pytest.raises(StartRefused):
        planner.start_runs()
    assert len(ledger.pending) == 3 and planner.manifests.written == {}
    assert [r.state for r in planner.runs.records.values()] == [RunState.ABANDONED]


def test_a_start_whose_outcome_is_unknown_keeps_its_claim_for_the_sweep():
    """A timeout or a 5xx from StartJobRun may hide a job run that exists: nothing is given back
    until the sweep has looked for it (and the fence protects even a run the listing misses)."""
    clock = Clock()
    ledger = FakeLedger(3, now=clock)
    planner = _planner(ledger, FakeJobs(error=RuntimeError("InternalServiceException")), now=clock)
    with pytest.raises(RuntimeError):
        planner.start_runs()
    [record] = planner.runs.records.values()
    assert record.state is RunState.STARTING and len(ledger.claims[record.run_id]) == 3
    clock.advance(minutes=10)
    assert planner.sweep().released == {record.run_id: 3} and len(ledger.pending) == 3


def _began(planner: RunPlanner, run) -> None:
    """The job run passed its fence (what the job does first)."""
    assert planner.runs.begin(run.run_id, run.job_run_id)


def test_failed_run_is_traced_through_the_job_run_arguments():
    ledger, jobs = FakeLedger(2), FakeJobs()
    planner = _planner(ledger, jobs)
    [run] = planner.start_runs()
    _began(planner, run)
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
    _began(planner, run)
    planner.manifests.summaries = {run.run_id: _summary(run.run_id, RowCounts(3, 2, 1), RowCounts(0, 0, 0))}
    assert planner.run_ended_badly(run.job_run_id, "TIMEOUT", "late") == (
        {State.DONE: 2}, Email(run.run_id, "SUCCEEDED", sent=True))
    assert planner.outputs.discarded == [] and ledger.done["s3://raw/d/0.csv#e"].rows_bad == 1
    assert ledger.failed == {}  # no attempt counted against files that were processed
    [report] = planner.notifier.sent
    assert report.message.startswith(f"Sluice run {run.run_id}: SUCCEEDED. 2 files, 3 rows in, 2 written, "
                                     f"1 quarantined, 0 duplicate")


def test_every_run_gets_one_email_and_a_repeated_end_no_second():
    ledger, jobs = FakeLedger(1), FakeJobs()
    planner = _planner(ledger, jobs)
    [run] = planner.start_runs()
    _began(planner, run)
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


class Countdown:
    """An invocation's remaining time that falls by `step` ms each time it is read."""

    def __init__(self, start_ms: int, step: int) -> None:
        self.left, self.step = start_ms, step

    def __call__(self) -> int:
        self.left -= self.step
        return self.left + self.step


def test_claims_stop_short_of_the_timeout_and_the_run_starts_with_what_it_has():
    ledger, jobs = FakeLedger(10), FakeJobs()
    planner = _planner(ledger, jobs, max_files=100)
    time_left = TimeLeft.of(Countdown(3_000, step=400))  # margin 1 s; ~5 reads left before it
    [run] = planner.start_runs(time_left)
    assert 0 < run.files < 10 and len(ledger.pending) == 10 - run.files
    assert jobs.started == {run.job_run_id: run.run_id}  # every claimed file is in a started run
    assert planner.start_runs(TimeLeft.of(Countdown(3_000, step=0))) != []  # the next trigger takes the rest


def test_no_claim_when_the_time_is_already_out():
    ledger = FakeLedger(3)
    assert _planner(ledger, FakeJobs()).start_runs(TimeLeft(lambda: 500, margin_ms=1_000)) == []
    assert ledger.claims == {} and len(ledger.pending) == 3


@pytest.mark.parametrize(("record", "minutes", "listed", "released", "after"), [
    (None, 10, False, True, RunState.ABANDONED),  # a claim from before run records, no job run listed
    (None, 10, True, False, None),  # ... and one a job run (of a job without the fence) holds
    (RunState.OPEN, 10, False, True, RunState.ABANDONED),  # the claimer timed out mid-claim
    (RunState.OPEN, 2, False, False, RunState.OPEN),  # within the grace: it may still be claiming
    (RunState.STARTING, 10, False, True, RunState.ABANDONED),  # StartJobRun made no run (none listed)
    (RunState.STARTING, 10, True, False, RunState.STARTED),  # StartJobRun's answer was lost: the run exists
    (RunState.STARTING, 2, False, False, RunState.STARTING),  # StartJobRun may still be in flight
    (RunState.STARTED, 10, False, False, RunState.STARTED),  # accepted (maybe queued): never given back
    (RunState.RUNNING, 10, False, False, RunState.RUNNING),  # the job run holds them
    (RunState.ABANDONED, 10, False, True, RunState.ABANDONED),  # fenced off already
])
def test_the_sweep_gives_back_only_claims_no_job_run_can_act_on(record, minutes, listed, released, after):
    ledger, jobs, crawler = FakeLedger(3), FakeJobs(), FakeCrawler()
    now = CRAWLED + timedelta(minutes=minutes)
    planner = _planner(ledger, jobs, crawler=crawler, now=lambda: now)
    claimed = ledger.claim_pending("run-x", RunBudget(10, 10**9), CRAWLED)
    planner.manifests.write(RunManifest("run-x", CRAWLED.isoformat(), claimed))
    if record is not None:
        job_run_id = "jr_x" if record in (RunState.STARTED, RunState.RUNNING) else None
        planner.runs.records["run-x"] = RunRecord("run-x", record, CRAWLED, CRAWLED, job_run_id)
    if listed:
        jobs.started["jr_x"] = "run-x"
    swept = planner.sweep()
    assert swept.released == ({"run-x": 3} if released else {})
    assert len(ledger.pending) == (3 if released else 0)
    assert ("run-x" in planner.manifests.written) == (not released)
    assert (planner.runs.get("run-x") or RunRecord("run-x", None, CRAWLED, CRAWLED)).state is after
    assert swept.crawl == (CrawlerStart.STARTED if released else None)  # the crawl's success runs them


def test_an_email_that_cannot_be_sent_raises_after_the_run_is_settled():
    """Finding 5: a lost email was only logged; now the invocation fails and Lambda retries it (then
    its DLQ and alarm), and the settling it did stands."""
    ledger, jobs = FakeLedger(1), FakeJobs()
    planner = _planner(ledger, jobs, notifier=FakeNotifier(RuntimeError("EventBridge is down")))
    [run] = planner.start_runs()
    _began(planner, run)
    planner.manifests.summaries = {run.run_id: _summary(run.run_id, RowCounts(5, 5, 0))}
    with pytest.raises(RuntimeError, match="EventBridge is down"):
        planner.run_succeeded(run.job_run_id)
    with pytest.raises(RuntimeError, match="EventBridge is down"):
        planner.run_ended_badly(run.job_run_id, "TIMEOUT", "late")
    assert ledger.done == {"s3://raw/d/0.csv#e": RowCounts(5, 5, 0)}  # settled before the email


@pytest.mark.parametrize(("attempts", "max_attempts", "expected"), [
    (0, 3, (State.PENDING, 1)), (1, 3, (State.PENDING, 2)), (2, 3, (State.FAILED, 3)),
    (0, 1, (State.FAILED, 1)),
])
def test_state_after_failed_run(attempts, max_attempts, expected):
    assert state_after_failed_run(attempts, max_attempts) == expected
