"""The run records and the job's claim check on the emulator's DynamoDB: every transition is
conditional on the record's current state, as tests/unit/run_fakes.py assumes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger import FileRef, RunBudget
from ledger.run_record import RunState
from ledger.run_table import DynamoRunRecords
from ledger.table import DynamoLedger


@pytest.fixture
def table(aws, ledger_table):
    return aws.resource("dynamodb").Table(ledger_table)


def test_a_run_goes_open_starting_started_running_and_no_step_can_be_taken_twice(table):
    runs = DynamoRunRecords(table)
    assert runs.open("run-1") and not runs.open("run-1")
    assert not runs.started("run-1", "jr_1")  # StartJobRun is called only after STARTING
    assert runs.starting("run-1") and not runs.starting("run-1")
    assert runs.started("run-1", "jr_1")
    assert runs.begin("run-1", "jr_1") and runs.begin("run-1", "jr_1")  # a retried attempt begins again
    record = runs.get("run-1")
    assert (record.state, record.job_run_id) == (RunState.RUNNING, "jr_1")
    assert not runs.abandon("run-1", RunState.STARTING) and not runs.abandon("run-1", RunState.STARTED)
    assert runs.get("run-1").state is RunState.RUNNING


@pytest.mark.parametrize("seen", [RunState.OPEN, RunState.STARTING, RunState.STARTED])
def test_an_abandoned_run_can_never_be_begun(table, seen):
    runs = DynamoRunRecords(table)
    runs.open("run-1")
    if seen is not RunState.OPEN:
        runs.starting("run-1")
    if seen is RunState.STARTED:
        runs.started("run-1", "jr_1")
    assert not runs.abandon("run-1", RunState.ABANDONED if seen is RunState.OPEN else RunState.OPEN)
    assert runs.abandon("run-1", seen)
    assert not runs.begin("run-1", "jr_1") and not runs.starting("run-1")
    assert runs.get("run-1").state is RunState.ABANDONED


def test_a_missing_record_can_be_fenced_off_but_never_begun(table):
    runs = DynamoRunRecords(table)
    assert not runs.begin("run-old", "jr_1")  # the job refuses a run without a record
    assert runs.get("run-old") is None
    assert runs.abandon("run-old", None) and not runs.abandon("run-old", None)
    assert runs.get("run-old").state is RunState.ABANDONED


def test_only_an_open_record_is_dropped_and_records_stay_out_of_the_file_indexes(table):
    runs, ledger = DynamoRunRecords(table), DynamoLedger(table)
    runs.open("run-empty")
    runs.open("run-going")
    runs.starting("run-going")
    assert runs.drop("run-empty") and runs.get("run-empty") is None
    assert not runs.drop("run-going") and runs.get("run-going") is not None
    assert set(ledger.count_by_state().values()) == {0}  # no `state`: not in ByState
    assert list(ledger.by_run("run-going")) == []  # no `run_id`: not in ByRun
    item = table.get_item(Key={"file_id": "run#run-going"})["Item"]
    expires = datetime.fromtimestamp(int(item["expires_at"]), UTC)
    assert timedelta(days=29) < expires - datetime.now(UTC) < timedelta(days=31)  # DynamoDB's TTL deletes it


def test_the_claim_check_keeps_the_files_the_run_holds_and_names_the_holder_of_the_others(table):
    ledger = DynamoLedger(table)
    refs = [FileRef("raw", f"d/{i}.csv", f"e{i}", 10) for i in range(205)]  # three BatchGetItem pages
    for ref in refs:
        ledger.record_pending(ref)
    ours = ledger.claim_pending("run-a", RunBudget(200, 10**9))
    assert ledger.mark_done("run-a", ours[0].file_id, _counts())  # an earlier attempt of the same run
    assert ledger.release_claim("run-a", ours[1:2]) == 1
    taken = ledger.claim_pending("run-b", RunBudget(10, 10**9))  # re-claimed by another run
    assert ours[1] in taken and len(taken) == 6
    ghost = FileRef("raw", "d/ghost.csv", "e", 1)  # in the manifest, never recorded
    held, not_held = ledger.held_by("run-a", [*refs, ghost])
    assert held == [ours[0], *ours[2:]]
    reasons = {n.file: n.reason for n in not_held}
    assert "CLAIMED by run-b" in reasons[ours[1].uri]
    assert "CLAIMED by run-b" in reasons[refs[200].uri] and "no ledger item" in reasons[ghost.uri]
    assert len(not_held) == 1 + 5 + 1


def _counts():
    from ledger import RowCounts

    return RowCounts(1, 1, 0)
