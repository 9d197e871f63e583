"""Settling a run that ended without finishing (ledger.settle), the rule StartJobFunction and the
local runtime's restart share: with an in-memory ledger."""

from __future__ import annotations

import pytest

from ledger import CountAttempt, FileRef, FileSummary, RowCounts, RunSummary, State, settle_ended_run
from ledger.model import state_after_failed_run


class FakeLedger:
    """Items keyed by file id; the same transitions and conditions as DynamoLedger."""

    def __init__(self, run_id: str, attempts: list[int]) -> None:
        self.items = {}
        for i, tries in enumerate(attempts):
            ref = FileRef("raw", f"d/{i}.csv", "e", 10)
            self.items[ref.file_id] = {**ref.to_dict(), "state": "CLAIMED", "run_id": run_id,
                                       "attempts": tries}

    def by_run(self, run_id):
        return iter([dict(i) for i in self.items.values() if i.get("run_id") == run_id])

    def mark_done(self, run_id, file_id, counts):
        item = self.items.get(file_id)
        if item is None or item.get("run_id") != run_id or item["state"] not in ("CLAIMED", "DONE"):
            return False
        item.update(state="DONE", **counts.to_dict())
        return True

    def release_claim(self, run_id, refs):
        released = 0
        for ref in refs:
            item = self.items[ref.file_id]
            if item["state"] == "CLAIMED" and item.get("run_id") == run_id:
                item["state"] = "PENDING"
                del item["run_id"]
                released += 1
        return released

    def fail_run(self, run_id, max_attempts, reason):
        moved = {State.PENDING: 0, State.FAILED: 0}
        for item in self.items.values():
            if item["state"] == "CLAIMED" and item.get("run_id") == run_id:
                state, item["attempts"] = state_after_failed_run(item["attempts"], max_attempts)
                item.update(state=state.value, reason=reason)
                del item["run_id"]
                moved[state] += 1
        return moved

    def states(self):
        return sorted((i["state"], i["attempts"]) for i in self.items.values())


class Discards(list):
    def __call__(self, run_id):
        self.append(run_id)


COUNTED = CountAttempt(max_attempts=3, reason="job run jr_1 FAILED: boom")


@pytest.mark.parametrize("attempt", [COUNTED, None])
def test_a_committed_run_is_finished_from_its_summary_whether_or_not_attempts_count(attempt):
    ledger, discard = FakeLedger("run-1", [0, 2]), Discards()
    summary = RunSummary("run-1", files=[FileSummary(f"s3://{i['bucket']}/{i['key']}", fid, "d",
                                                     RowCounts(4, 3, 1))
                                         for fid, i in ledger.items.items()])
    assert settle_ended_run(ledger, "run-1", summary, discard, attempt) == {State.DONE: 2}
    assert discard == [] and ledger.states() == [("DONE", 0), ("DONE", 2)]
    assert all(i["rows_bad"] == 1 for i in ledger.items.values())


def test_an_uncommitted_run_is_discarded_and_each_file_pays_an_attempt():
    ledger, discard = FakeLedger("run-1", [0, 2]), Discards()
    moved = settle_ended_run(ledger, "run-1", None, discard, COUNTED)
    assert moved == {State.PENDING: 1, State.FAILED: 1}
    assert discard == ["run-1"]
    assert ledger.states() == [("FAILED", 3), ("PENDING", 1)]
    assert {i["reason"] for i in ledger.items.values()} == {COUNTED.reason}


def test_an_interrupted_run_gives_its_files_back_with_attempts_unchanged():
    ledger, discard = FakeLedger("run-1", [0, 2]), Discards()
    assert settle_ended_run(ledger, "run-1", None, discard, attempt=None) == {State.PENDING: 2}
    assert discard == ["run-1"]
    assert ledger.states() == [("PENDING", 0), ("PENDING", 2)]
    assert all("reason" not in i for i in ledger.items.values())


def test_summary_entries_from_a_job_without_file_ids_are_not_marked():
    ledger = FakeLedger("run-1", [0])
    old = RunSummary("run-1", files=[FileSummary("s3://raw/d/0.csv", "", "d", RowCounts(1, 1, 0))])
    assert settle_ended_run(ledger, "run-1", old, Discards(), None) == {State.DONE: 0}
