"""Issue 22's race through the whole pipeline: a job run that StartJobRun is slow to create, one a
retried StartJobRun creates twice, and one that waits in Glue's queue while sweeps come and go and
the job-run listing misses it. Each ends with every row written once. They wait on the states they
mean (the run's record, the sweeps delivered), not on the clock.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator

import pytest

from ledger.run_record import RunState
from ledger.run_table import DynamoRunRecords
from sluice.runtime import Runtime
from tests.runtime.conftest import (
    FAULT_CLOCK,
    assert_each_row_once,
    eventually,
    ledger_items,
    put_orders,
    started_runtime,
    wait,
)

pytestmark = [pytest.mark.slow, pytest.mark.spark]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Iterator[Runtime]:
    with started_runtime(tmp_path_factory.mktemp("sluice-claim-race"), schedule_every=2, **FAULT_CLOCK) as rt:
        yield rt


def _records(rt: Runtime) -> DynamoRunRecords:
    return DynamoRunRecords(rt.aws.resource("dynamodb").Table(rt.stack.outputs["LedgerTableName"]))


def _claims(rt: Runtime, table: str) -> dict[str, str] | None:
    """key -> run id, once every file of the table is CLAIMED."""
    items = ledger_items(rt, table)
    if len(items) == 3 and all(i["state"] == "CLAIMED" for i in items):
        return {i["key"]: i["run_id"] for i in items}
    return None


def _state(rt: Runtime, run_id: str) -> RunState | None:
    record = _records(rt).get(run_id)
    return record.state if record else None


def _sweeps(rt: Runtime) -> int:
    return sum(d.delivered for d in rt.deliveries if d.target.schedule)


def test_a_start_job_run_that_outlasts_the_grace_is_fenced_off_and_every_row_is_written_once(runtime):
    runtime.faults.arm("job-start-outlasts-grace", 1)
    expected = put_orders(runtime, "race_slow_start", 3)
    items = wait(runtime, "race_slow_start", 3)
    assert {i["state"] for i in items} == {"DONE"}
    assert runtime.faults.outlasted == ["ABANDONED"]  # the sweep gave the files back first
    assert {int(i.get("attempts", 0)) for i in items} == {0}  # not the files' fault
    assert_each_row_once(runtime, "race_slow_start", expected)


def test_a_start_job_run_retried_after_a_lost_answer_runs_twice_and_writes_once(runtime):
    runtime.faults.arm("job-start-answer-lost", 1)
    before = len(runtime.jobs[0].job_runs())
    expected = put_orders(runtime, "race_twice", 3)
    items = wait(runtime, "race_twice", 3)
    assert {i["state"] for i in items} == {"DONE"} and runtime.faults.fired["job-start-answer-lost"] == 1
    run_ids = [run.arguments["--run_id"] for run in runtime.jobs[0].job_runs()[before:]]
    assert 2 in Counter(run_ids).values()  # one run, two job runs: only one may act on it
    assert_each_row_once(runtime, "race_twice", expected)


def test_a_run_waiting_in_the_queue_keeps_its_files_through_sweeps_the_listing_misses_it_in(runtime):
    job = runtime.jobs[0]
    glue_job = sys.modules["glue_job"]  # StartJobFunction's adapter, as its handler imported it
    listing = glue_job.GlueJob.holding
    glue_job.GlueJob.holding = lambda self, run_ids: {}  # GetJobRuns shows none of our runs
    job.paused.set()  # runs wait, as Glue's queue (WAITING) or a busy account holds them
    try:
        expected = put_orders(runtime, "race_queued", 3)
        claims = eventually(runtime, lambda: _claims(runtime, "race_queued"))  # every file in a run
        eventually(runtime, lambda: all(_state(runtime, r) is RunState.STARTED for r in set(claims.values())),
                   "each StartJobRun accepted, each job run waiting")
        seen = _sweeps(runtime)
        eventually(runtime, lambda: _sweeps(runtime) >= seen + 3)  # three sweeps, all past the grace
        assert _claims(runtime, "race_queued") == claims  # nothing given back, nothing re-claimed
    finally:
        glue_job.GlueJob.holding = listing
        job.paused.clear()
    items = wait(runtime, "race_queued", 3)
    assert {i["key"]: (i["state"], i["run_id"]) for i in items} == {
        key: ("DONE", run_id) for key, run_id in claims.items()}  # the runs that waited wrote them
    assert_each_row_once(runtime, "race_queued", expected)
