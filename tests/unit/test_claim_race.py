"""The claim race of issue 22, replayed deterministically: StartJobFunction's claimer, its sweep and
the job runs interleaved at the exact points where a run used to be invisible to the sweep. Each
scenario ends with every file DONE and written by exactly one run. The fakes keep the ledger's and
the run records' conditional rules (tests/unit/run_fakes.py; the real adapters are checked against
the emulator in tests/integration/test_run_records.py)."""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from datetime import timedelta

import pytest

from ledger.run_record import RunState
from tests.unit.run_fakes import (
    Clock,
    FakeCrawler,
    FakeJobRun,
    FakeJobs,
    FakeLedger,
    FakeManifests,
    FakeNotifier,
    FakeOutputs,
    FakeRuns,
)

from runs import ConcurrencyLimitReached, JobRunState, RunPlanner, RunSettings, StartRefused  # isort: skip

GRACE = timedelta(seconds=3)  # the local runtime's: one function timeout


class Pipeline:
    def __init__(self, files: int = 6, max_files: int = 3) -> None:
        self.clock = Clock()
        self.ledger = FakeLedger(files, now=self.clock)
        self.runs = FakeRuns(self.clock)
        self.jobs = FakeJobs()
        self.planner = RunPlanner(self.ledger, self.runs, FakeManifests(), self.jobs, FakeOutputs(),
                                  FakeCrawler(), FakeNotifier(),
                                  RunSettings(max_files, 10**9, 3, claim_grace=GRACE), now=self.clock)
        self.job = FakeJobRun(self.ledger, self.runs, self.planner.manifests)
        self.ran: set[str] = set()

    def run_jobs(self) -> list[str]:
        """Every job run created so far and not yet run, runs (in the order they were created)."""
        outcomes = []
        for job_run_id, run_id in list(self.jobs.started.items()):
            if job_run_id not in self.ran:
                self.ran.add(job_run_id)
                outcomes.append(self.job.run(job_run_id, run_id))
        return outcomes

    def assert_every_row_once(self) -> None:
        assert {i["state"] for i in self.ledger.items.values()} == {"DONE"}
        assert self.job.written == Counter(dict.fromkeys(self.ledger.items, 1))


def test_a_claimer_that_overruns_the_grace_never_starts_the_run_the_sweep_gave_back():
    p = Pipeline()

    def sweep_meanwhile(manifest):  # the claimer is slow: a sweep runs before it starts its run
        p.planner.manifests.on_write = None
        p.clock.advance(seconds=10)
        assert p.planner.sweep().released == {manifest.run_id: 3}

    p.planner.manifests.on_write = sweep_meanwhile
    assert p.planner.start_runs() == []  # fenced off: StartJobRun never called for it
    assert p.jobs.started == {} and len(p.ledger.pending) == 6
    assert [r.files for r in p.planner.start_runs()] == [3, 3]
    p.run_jobs()
    p.assert_every_row_once()


def test_a_run_waiting_behind_the_concurrency_limit_keeps_its_files_however_long_it_waits():
    p = Pipeline()
    started = p.planner.start_runs()  # accepted; queued by Glue (WAITING) - the job has not begun
    for _ in range(20):  # an hour of sweeps
        p.clock.advance(minutes=3)
        assert p.planner.sweep().released == {}
    assert {r.state for r in p.runs.records.values()} == {RunState.STARTED}
    assert p.run_jobs() == ["3 written", "3 written"] and len(started) == 2
    p.assert_every_row_once()


def test_a_start_job_run_retried_past_the_grace_is_fenced_off_if_the_sweep_gave_its_files_back():
    p = Pipeline(files=3)

    def slow_start(run_id):  # inside StartJobRun, before Glue creates the run: retries, throttling
        p.jobs.before_create = None
        p.clock.advance(seconds=10)
        assert p.planner.sweep().released == {run_id: 3}  # none listed: abandoned, given back
        assert [r.files for r in p.planner.start_runs()] == [3]  # another invocation takes them

    p.jobs.before_create = slow_start
    assert p.planner.start_runs() == []  # its job run was created after all, but fenced off
    assert len(p.jobs.started) == 2
    assert sorted(p.run_jobs()) == ["3 written", "fenced off"]
    p.assert_every_row_once()


def test_a_job_run_the_listing_misses_is_fenced_off_after_its_files_were_given_back():
    p = Pipeline(files=3)
    p.jobs.answer_lost = True  # StartJobRun created the run, but its answer never came back
    with pytest.raises(TimeoutError):
        p.planner.start_runs()
    p.jobs.answer_lost = False
    p.jobs.unlisted = set(p.jobs.started)  # and GetJobRuns does not show it
    p.clock.advance(seconds=10)
    [lost] = p.jobs.started.values()
    assert p.planner.sweep().released == {lost: 3}
    assert [r.files for r in p.planner.start_runs()] == [3]
    assert sorted(p.run_jobs()) == ["3 written", "fenced off"]
    p.assert_every_row_once()


@pytest.mark.parametrize("first", ["lost answer", "returned answer"])
def test_two_job_runs_for_one_run_only_one_writes_and_only_its_end_settles(first):
    """StartJobRun is not idempotent: a retry after a lost answer can create a second job run for
    the same run. Whichever begins first, only one writes; the other's end changes nothing."""
    p = Pipeline(files=3)
    p.jobs.created_twice = True
    [run] = p.planner.start_runs()
    lost = next(j for j in p.jobs.started if j != run.job_run_id)
    order = [lost, run.job_run_id] if first == "lost answer" else [run.job_run_id, lost]
    outcomes = [p.job.run(j, run.run_id) for j in order]
    p.ran.update(order)
    assert sorted(outcomes) == ["3 written", "fenced off"]
    fenced = order[outcomes.index("fenced off")]
    assert p.planner.run_ended_badly(fenced, "FAILED", "boom")[0] == {}  # settles nothing
    assert p.planner.run_succeeded(fenced).sent is False
    p.assert_every_row_once()


def test_an_accepted_run_the_listing_misses_keeps_its_files():
    p = Pipeline(files=3)
    p.planner.start_runs()
    p.jobs.unlisted = set(p.jobs.started)
    p.clock.advance(minutes=30)
    assert p.planner.sweep().released == {}
    assert p.run_jobs() == ["3 written"]
    p.assert_every_row_once()


@pytest.mark.parametrize(("began", "attempts"), [(True, 1), (False, 0)])
def test_a_run_whose_end_event_was_lost_is_settled_by_the_sweep(began, attempts):
    """Its files come back (attempts+1 if the job run had begun and failed; unchanged if it
    ended before it began), and a later run writes them once."""
    p = Pipeline(files=3)
    [run] = p.planner.start_runs()
    if began:
        assert p.runs.begin(run.run_id, run.job_run_id)
    p.ran.add(run.job_run_id)  # it wrote nothing and ended FAILED; the event never arrived
    p.jobs.states[run.job_run_id] = JobRunState("FAILED", p.clock(), "Exceeded maximum concurrent compute")
    p.clock.advance(seconds=2)
    assert p.planner.sweep().settled == {}  # its event may still be on its way
    p.clock.advance(seconds=10)
    assert p.planner.sweep().settled == {run.run_id: "FAILED"}
    assert {i.get("attempts", 0) for i in p.ledger.items.values()} == {attempts}
    p.planner.start_runs()
    assert p.run_jobs() == ["3 written"]
    p.assert_every_row_once()


@pytest.mark.parametrize("seed", range(40))
def test_any_interleaving_writes_every_row_once(seed):
    """Claimers, sweeps, job runs and StartJobRun faults in a random order, the clock jumping past
    the grace now and then: at every step no file has been written by two runs, and in the end
    every file is DONE, written once."""
    rng = random.Random(seed)
    p = Pipeline(files=12, max_files=rng.choice([2, 3, 5]))

    def fault():
        p.jobs.error, p.jobs.answer_lost, p.jobs.before_create = None, False, None
        p.jobs.created_twice = False
        kind = rng.choice(["none", "none", "refused", "concurrency", "unknown", "answer-lost", "slow",
                           "twice"])
        if kind == "refused":
            p.jobs.error = StartRefused("ThrottlingException")
        elif kind == "concurrency":
            p.jobs.error = ConcurrencyLimitReached("limit")
        elif kind == "unknown":
            p.jobs.error = RuntimeError("InternalServiceException")
        elif kind == "answer-lost":
            p.jobs.answer_lost = True
        elif kind == "twice":
            p.jobs.created_twice = True
        elif kind == "slow":
            p.jobs.before_create = lambda run_id: (p.clock.advance(seconds=rng.choice([1, 5])),
                                                   p.planner.sweep())
        if rng.random() < 0.2:
            p.jobs.unlisted |= set(p.jobs.started)

    for _ in range(60):
        step = rng.choice(["claim", "claim", "sweep", "run", "tick"])
        if step == "claim":
            fault()
            with contextlib.suppress(StartRefused, RuntimeError, TimeoutError):
                p.planner.start_runs()
        elif step == "sweep":
            p.planner.sweep()
        elif step == "run":
            p.run_jobs()
        else:
            p.clock.advance(seconds=rng.choice([1, 2, 4, 10]))
        assert max(p.job.written.values(), default=0) <= 1
    p.jobs.error, p.jobs.answer_lost, p.jobs.before_create, p.jobs.created_twice = None, False, None, False
    for _ in range(20):  # then calm: sweeps, claims and runs until everything is settled
        p.clock.advance(seconds=10)
        p.planner.sweep()
        p.planner.start_runs()
        p.run_jobs()
    p.assert_every_row_once()
