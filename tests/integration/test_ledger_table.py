"""The ledger's conditional transitions against emulated DynamoDB."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from ledger import FileRef, RowCounts, RunBudget, State
from ledger.table import DynamoLedger


def _ledger(aws, table) -> DynamoLedger:
    return DynamoLedger(aws.resource("dynamodb").Table(table))


def _refs(n: int, size: int = 10) -> list[FileRef]:
    return [FileRef("raw", f"orders/f{i:03}.csv", f"etag{i}", size) for i in range(n)]


def test_duplicate_event_keeps_one_item(aws, ledger_table):
    ledger = _ledger(aws, ledger_table)
    ref = _refs(1)[0]
    assert ledger.record_pending(ref) is State.PENDING
    assert ledger.record_pending(ref) is State.PENDING
    assert aws.client("dynamodb").scan(TableName=ledger_table)["Count"] == 1


def test_new_bytes_under_same_key_are_a_new_file(aws, ledger_table):
    ledger = _ledger(aws, ledger_table)
    ledger.record_pending(FileRef("raw", "orders/a.csv", "v1", 5))
    ledger.record_pending(FileRef("raw", "orders/a.csv", "v2", 6))
    assert ledger.count_by_state()["PENDING"] == 2


def test_a_claim_takes_only_files_created_before_the_crawl(aws, ledger_table):
    ledger = _ledger(aws, ledger_table)
    crawl = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    before, after, unknown = _refs(3)
    ledger.record_pending(before, created=crawl - timedelta(milliseconds=1))
    ledger.record_pending(after, created=crawl + timedelta(milliseconds=1))  # after it listed
    aws.client("dynamodb").put_item(TableName=ledger_table, Item={  # recorded by an older version
        "file_id": {"S": unknown.file_id}, **{k: {"S": str(v)} for k, v in unknown.to_dict().items()
                                               if k != "size" and v is not None},
        "size": {"N": str(unknown.size)}, "state": {"S": "PENDING"}, "attempts": {"N": "0"},
        "updated_at": {"S": "2026-11-25T08:00:00.000+00:00"}})
    claimed = ledger.claim_pending("run-1", RunBudget(10, 10**9), created_before=crawl)
    assert sorted(r.file_id for r in claimed) == sorted([before.file_id, unknown.file_id])
    assert [r.file_id for r in ledger.claim_pending("run-2", RunBudget(10, 10**9))] == [after.file_id]


def test_concurrent_claimers_take_disjoint_files(aws, ledger_table):
    ledger = _ledger(aws, ledger_table)
    for ref in _refs(40):
        ledger.record_pending(ref)

    def claim(run_id: str) -> list[FileRef]:
        return _ledger(aws, ledger_table).claim_pending(run_id, RunBudget(max_files=1000, max_bytes=10**9))

    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(claim, ["run-a", "run-b", "run-c", "run-d"]))
    claimed = [ref.file_id for run in runs for ref in run]
    assert len(claimed) == len(set(claimed)) == 40


def test_budget_caps_a_run(aws, ledger_table):
    ledger = _ledger(aws, ledger_table)
    for ref in _refs(10, size=100):
        ledger.record_pending(ref)
    assert len(ledger.claim_pending("run-1", RunBudget(max_files=4, max_bytes=10**9))) == 4
    assert len(ledger.claim_pending("run-2", RunBudget(max_files=100, max_bytes=250))) == 2
    assert ledger.count_by_state()["PENDING"] == 4


def test_a_claim_stops_when_told_and_keeps_what_it_took(aws, ledger_table):
    ledger = _ledger(aws, ledger_table)
    for ref in _refs(10):
        ledger.record_pending(ref)
    checks = iter(range(100))
    claimed = ledger.claim_pending("run-1", RunBudget(10, 10**9), stop=lambda: next(checks) >= 3)
    assert len(claimed) == 3  # one conditional write per check that said go on
    assert {item["file_id"] for item in ledger.by_run("run-1")} == {r.file_id for r in claimed}
    assert ledger.count_by_state()["PENDING"] == 7


def test_failed_run_returns_files_then_gives_up(aws, ledger_table):
    ledger = _ledger(aws, ledger_table)
    ref = _refs(1)[0]
    ledger.record_pending(ref)
    for attempt in range(1, 4):
        assert ledger.claim_pending(f"run-{attempt}", RunBudget(10, 10**9)) == [ref]
        moved = ledger.fail_run(f"run-{attempt}", max_attempts=3, reason="job FAILED")
        item = ledger.get(ref.file_id)
        assert item["attempts"] == attempt
        assert item["state"] == (State.FAILED.value if attempt == 3 else State.PENDING.value)
        assert sum(moved.values()) == 1
    assert ledger.claim_pending("run-4", RunBudget(10, 10**9)) == []
    assert ledger.retry_failed() == 1  # redrive: a fresh start, the old reason kept aside
    item = ledger.get(ref.file_id)
    assert (item["state"], item["attempts"], item["previous_reason"]) == ("PENDING", 0, "job FAILED")
    assert [r.file_id for r in ledger.claim_pending("run-5", RunBudget(10, 10**9))] == [ref.file_id]
    assert ledger.retry_failed() == 0


def test_mark_done_only_for_the_owning_run(aws, ledger_table):
    ledger = _ledger(aws, ledger_table)
    ref = _refs(1)[0]
    ledger.record_pending(ref)
    ledger.claim_pending("run-1", RunBudget(10, 10**9))
    counts = RowCounts(rows_in=10, rows_out=8, rows_bad=1, rows_duplicate=1)
    assert not ledger.mark_done("run-other", ref.file_id, counts)
    assert ledger.mark_done("run-1", ref.file_id, counts)
    assert ledger.mark_done("run-1", ref.file_id, counts)  # a retried attempt of the same run
    item = ledger.get(ref.file_id)
    assert (item["state"], item["rows_out"], item["rows_bad"]) == ("DONE", 8, 1)
    assert RowCounts.from_dict(item) == counts  # the DONE item reads back as the counts it was given


def test_release_claim_keeps_attempts(aws, ledger_table):
    ledger = _ledger(aws, ledger_table)
    refs = _refs(3)
    for ref in refs:
        ledger.record_pending(ref)
    claimed = ledger.claim_pending("run-1", RunBudget(10, 10**9))
    assert ledger.release_claim("run-other", claimed) == 0  # not its files
    assert ledger.release_claim("run-1", claimed) == 3
    assert ledger.count_by_state()["PENDING"] == 3
    assert all(ledger.get(r.file_id)["attempts"] == 0 for r in refs)
