"""Each fault the runtime can inject, through the whole pipeline: the final ledger state, every
row written exactly once (rows in = rows out + quarantined + duplicates), the DLQ, and the email.

The runtime here runs with compressed timings (visibility 4 s, 4 receives before the DLQ, crawls
paced 2 s apart, a sweep every 2 s of files pending 3 s) so that retries happen within a test; the
rules are the template's, only the clock is faster. The proportions are the template's defaults'
too: a paced or crawler-running wait spends one receive, and the pacing interval is shorter than
the visibility timeout, so a healthy message spends at most a few of its receives waiting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sluice.runtime import Runtime
from sluice.status import redrive
from tests.runtime.conftest import (
    assert_each_row_once,
    emails,
    eventually,
    ledger_items,
    orders_csv,
    put,
    started_runtime,
    wait,
    wait_for_email,
)

pytestmark = [pytest.mark.slow, pytest.mark.spark]

FAST = {"IngestVisibilityTimeoutSeconds": "4", "IngestMaxReceiveCount": "4", "CrawlIntervalSeconds": "2",
        "SweepAfterSeconds": "3"}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Iterator[Runtime]:
    with started_runtime(tmp_path_factory.mktemp("sluice-faults"), schedule_every=2, **FAST) as rt:
        yield rt


def _put_orders(rt: Runtime, table: str, files: int, rows: int = 10) -> set[str]:
    for f in range(files):
        put(rt, f"{table}/part-{f}.csv", orders_csv(rows, start=f * rows))
    return {f"o-{i:06d}" for i in range(files * rows)}


def _dlq(rt: Runtime) -> int:
    return rt.status()["queues"]["ingest_dlq"]


def test_crawler_already_running(runtime):
    runtime.faults.arm("crawler-running", 1)
    before = len(emails(runtime))
    expected = _put_orders(runtime, "fault_crawler", 3)
    items = wait(runtime, "fault_crawler", 3, timeout=60)
    assert {i["state"] for i in items} == {"DONE"}
    assert runtime.faults.fired["crawler-running"] >= 1
    assert_each_row_once(runtime, "fault_crawler", expected)
    assert _dlq(runtime) == 0
    assert "fault_crawler/part-0.csv" in wait_for_email(runtime, "fault_crawler/part-0.csv", before)


@pytest.mark.parametrize("fault", ["job-concurrency", "job-throttled"])
def test_start_job_run_refused_or_throttled(runtime, fault):
    runtime.faults.arm(fault, 2)
    table = f"fault_{fault.replace('-', '_')}"
    expected = _put_orders(runtime, table, 2)
    items = wait(runtime, table, 2, timeout=60)  # throttling: botocore retries; refusal: the sweeper
    assert {i["state"] for i in items} == {"DONE"} and {int(i.get("attempts", 0)) for i in items} == {0}
    assert runtime.faults.fired[fault] >= 1
    assert_each_row_once(runtime, table, expected)


def test_handler_crashes_after_part_of_its_batch(runtime):
    runtime.faults.arm("handler-crash", 1)
    expected = _put_orders(runtime, "fault_crash", 4)
    items = wait(runtime, "fault_crash", 4, timeout=60)
    assert runtime.faults.fired["handler-crash"] == 1
    assert len(items) == 4 and {i["state"] for i in items} == {"DONE"}  # one item per file
    assert_each_row_once(runtime, "fault_crash", expected)
    assert _dlq(runtime) == 0


def test_a_message_delivered_twice(runtime):
    runtime.faults.arm("sqs-duplicate", 2)
    expected = _put_orders(runtime, "fault_twice", 2)
    items = wait(runtime, "fault_twice", 2, timeout=60)
    assert runtime.faults.fired["sqs-duplicate"] == 2
    assert len(items) == 2 and {i["state"] for i in items} == {"DONE"}
    assert_each_row_once(runtime, "fault_twice", expected)


def test_job_fails_after_writing_output(runtime):
    runtime.faults.arm("job-fails-after-write", 1)
    before = len(emails(runtime))
    expected = _put_orders(runtime, "fault_jobfail", 2)
    assert "AccessDenied" in wait_for_email(runtime, "FAILED", before)
    items = wait(runtime, "fault_jobfail", 2, timeout=60)
    # The failed run's files (both, or one if the other was created after its crawl began and
    # went into a run of its own) were retried once under a new run id; the failed run's
    # partitions and objects were discarded, so every row is still written once.
    assert {i["state"] for i in items} == {"DONE"}
    assert sorted(int(i["attempts"]) for i in items) in ([0, 1], [1, 1])
    assert_each_row_once(runtime, "fault_jobfail", expected)
    assert "fault_jobfail/part-1.csv" in wait_for_email(runtime, "fault_jobfail/part-1.csv", before)


def test_job_times_out_after_its_commit_point(runtime):
    runtime.faults.arm("job-timeout-after-commit", 1)
    before = len(emails(runtime))
    expected = _put_orders(runtime, "fault_timeout", 2)
    assert "TIMEOUT" in wait_for_email(runtime, "TIMEOUT", before)
    items = wait(runtime, "fault_timeout", 2, timeout=60)
    # the output was complete: finished from the run summary, not run again
    assert {(i["state"], int(i.get("attempts", 0))) for i in items} == {("DONE", 0)}
    assert_each_row_once(runtime, "fault_timeout", expected)
    assert "fault_timeout/part-0.csv" in wait_for_email(runtime, "fault_timeout/part-0.csv", before)


def test_sweeper_claims_a_file_whose_crawl_never_came_and_redrive_recovers_the_dlq(runtime):
    runtime.faults.arm("crawler-running", 1000)  # every crawl refused: the message ends in the DLQ
    expected = _put_orders(runtime, "fault_sweep", 1)
    deadline = time.monotonic() + 60
    while _dlq(runtime) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _dlq(runtime) == 1
    assert [i["state"] for i in ledger_items(runtime, "fault_sweep")] == ["PENDING"]  # kept, not lost
    runtime.faults.disarm("crawler-running")
    items = wait(runtime, "fault_sweep", 1, timeout=60)  # no new upload: the sweeper re-crawled
    assert [i["state"] for i in items] == ["DONE"]
    assert_each_row_once(runtime, "fault_sweep", expected)
    assert redrive(runtime.aws.client, runtime.aws.resource, runtime.stack.outputs)["messages"] == 1
    time.sleep(2)  # the redriven event is a duplicate of a DONE file: nothing moves
    assert [i["state"] for i in ledger_items(runtime, "fault_sweep")] == ["DONE"]
    assert_each_row_once(runtime, "fault_sweep", expected)


def test_poison_message_rests_in_the_dlq_and_nothing_else_is_held_up(runtime):
    sqs = runtime.aws.client("sqs")
    sqs.send_message(QueueUrl=runtime.stack.outputs["IngestQueueUrl"], MessageBody="not an S3 event")
    expected = _put_orders(runtime, "fault_poison", 1)
    wait(runtime, "fault_poison", 1, timeout=60)
    assert_each_row_once(runtime, "fault_poison", expected)
    deadline = time.monotonic() + 30
    while _dlq(runtime) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    message = sqs.receive_message(QueueUrl=runtime.stack.outputs["IngestDLQUrl"])["Messages"][0]
    assert message["Body"] == "not an S3 event"
    status = json.loads(json.dumps(runtime.status()))
    assert status["queues"]["ingest_dlq"] == 1


# --- a failing run never wedges the pipeline (issue 13, item 4) --------------------------------

def _claimed(rt: Runtime, dataset: str) -> list[dict]:
    return [i for i in ledger_items(rt, dataset) if i["state"] == "CLAIMED"]



def test_a_run_past_the_job_timeout_is_settled_timeout_and_shown_stuck_until_then(runtime):
    from sluice.aws.glue_jobs import _moto_job_runs

    job = runtime.jobs[0]
    before = len(emails(runtime))
    job.paused.set()  # runs wait in STARTING, as when Glue has no worker for them
    try:
        put(runtime, "stuck_run/f.csv", orders_csv(5))
        [item] = eventually(lambda: _claimed(runtime, "stuck_run"))
        table = runtime.aws.resource("dynamodb").Table(runtime.stack.outputs["LedgerTableName"])
        table.update_item(Key={"file_id": item["file_id"]}, UpdateExpression="SET updated_at = :t",
                          ExpressionAttributeValues={":t": "2000-01-01T00:00:00+00:00"})
        assert [s["key"] for s in runtime.status()["stuck_claimed"]] == ["stuck_run/f.csv"]
        [run] = [r for r in _moto_job_runs(job.job_name) if r.status == "STARTING"]
        timeout = int(runtime.parameters.get("JobTimeoutMinutes", 60))
        run.started_on = datetime.now(UTC) - timedelta(minutes=timeout + 1)
        assert "TIMEOUT" in wait_for_email(runtime, "TIMEOUT", before)
        assert job.finished[run.job_run_id] == "TIMEOUT"
        # StartJobFunction heard the TIMEOUT: the file left the run that never ran
        eventually(lambda: all(i.get("run_id") != item["run_id"] or i["state"] != "CLAIMED"
                              for i in ledger_items(runtime, "stuck_run")))
    finally:
        job.paused.clear()
    assert wait(runtime, "stuck_run", 1, timeout=90)


def test_the_job_runner_survives_an_exception_and_serves_the_next_run(runtime):
    job = runtime.jobs[0]
    original, seen = job.run, len(job.finished)

    def broken(run):
        job.run = original  # once
        raise RuntimeError("runner bug (injected)")

    job.run = broken
    before = len(emails(runtime))
    put(runtime, "runner_bug/f.csv", orders_csv(5))
    assert "runner bug" in wait_for_email(runtime, "FAILED", before)  # the run was still announced
    eventually(lambda: len(job.finished) > seen + 1, timeout=90)  # and a later run was served
    assert wait(runtime, "runner_bug", 1, timeout=90)
