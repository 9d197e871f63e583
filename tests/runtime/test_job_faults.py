"""The Glue job's faults, through the whole pipeline: StartJobRun refused or throttled, a run that
fails after writing, one that times out after its commit point, one stuck past its timeout, and a
job runner that meets an exception. Nothing is lost and nothing is written twice; the timings are
test_faults.py's (the template's rules on a faster clock), in a runtime of this module's own so
that the two modules run side by side.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sluice.runtime import Runtime
from tests.runtime.conftest import (
    FAULT_CLOCK,
    assert_each_row_once,
    emails,
    eventually,
    ledger_items,
    orders_csv,
    processed_keys,
    put,
    put_orders,
    started_runtime,
    wait,
    wait_for_email,
)

pytestmark = [pytest.mark.slow, pytest.mark.spark]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Iterator[Runtime]:
    with started_runtime(tmp_path_factory.mktemp("sluice-job-faults"), schedule_every=2, **FAULT_CLOCK) as rt:
        yield rt


@pytest.mark.parametrize("fault", ["job-concurrency", "job-throttled"])
def test_start_job_run_refused_or_throttled(runtime, fault):
    runtime.faults.arm(fault, 2)
    table = f"fault_{fault.replace('-', '_')}"
    expected = put_orders(runtime, table, 2)
    items = wait(runtime, table, 2)  # throttling: botocore retries; refusal: the sweeper
    assert {i["state"] for i in items} == {"DONE"} and {int(i.get("attempts", 0)) for i in items} == {0}
    assert runtime.faults.fired[fault] >= 1
    assert_each_row_once(runtime, table, expected)


def test_job_fails_after_writing_output(runtime):
    runtime.faults.arm("job-fails-after-write", 1)
    before = len(emails(runtime))
    expected = put_orders(runtime, "fault_jobfail", 2)
    assert "AccessDenied" in wait_for_email(runtime, "FAILED", before)
    items = wait(runtime, "fault_jobfail", 2)
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
    expected = put_orders(runtime, "fault_timeout", 2)
    assert "TIMEOUT" in wait_for_email(runtime, "TIMEOUT", before)
    items = wait(runtime, "fault_timeout", 2)
    # the output was complete: finished from the run summary, not run again, and its partitions
    # registered by StartJobFunction from the run's output records (the job died before it did)
    assert {(i["state"], int(i.get("attempts", 0))) for i in items} == {("DONE", 0)}
    assert_each_row_once(runtime, "fault_timeout", expected)
    glue, database = runtime.aws.client("glue"), runtime.stack.outputs["ProcessedDatabaseName"]
    partitions = glue.get_partitions(DatabaseName=database, TableName="fault_timeout")["Partitions"]
    assert {p["Values"][-1] for p in partitions} == {i["run_id"] for i in items}
    bucket = runtime.stack.outputs["ProcessedBucketName"]
    assert {k.rsplit("/", 1)[0] + "/" for k in processed_keys(runtime, "fault_timeout")} == {
        p["StorageDescriptor"]["Location"].removeprefix(f"s3://{bucket}/") for p in partitions}
    assert "fault_timeout/part-0.csv" in wait_for_email(runtime, "fault_timeout/part-0.csv", before)


def _claimed(rt: Runtime, dataset: str) -> list[dict]:
    return [i for i in ledger_items(rt, dataset) if i["state"] == "CLAIMED"]



def test_a_run_past_the_job_timeout_is_settled_timeout_and_shown_stuck_until_then(runtime):

    job = runtime.jobs[0]
    before = len(emails(runtime))
    job.paused.set()  # runs wait in STARTING, as when Glue has no worker for them
    try:
        put(runtime, "stuck_run/f.csv", orders_csv(5))
        [item] = eventually(runtime, lambda: _claimed(runtime, "stuck_run"))
        table = runtime.aws.resource("dynamodb").Table(runtime.stack.outputs["LedgerTableName"])
        table.update_item(Key={"file_id": item["file_id"]}, UpdateExpression="SET updated_at = :t",
                          ExpressionAttributeValues={":t": "2000-01-01T00:00:00+00:00"})
        assert [s["key"] for s in runtime.status()["stuck_claimed"]] == ["stuck_run/f.csv"]
        [run] = [r for r in job.job_runs() if r.status == "STARTING"]
        timeout = int(runtime.parameters.get("JobTimeoutMinutes", 60))
        run.started_on = datetime.now(UTC) - timedelta(minutes=timeout + 1)
        assert "TIMEOUT" in wait_for_email(runtime, "TIMEOUT", before)
        assert job.finished[run.job_run_id] == "TIMEOUT"
        # StartJobFunction heard the TIMEOUT: the file left the run that never ran
        eventually(runtime, lambda: all(i.get("run_id") != item["run_id"] or i["state"] != "CLAIMED"
                              for i in ledger_items(runtime, "stuck_run")))
    finally:
        job.paused.clear()
    assert wait(runtime, "stuck_run", 1)


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
    eventually(runtime, lambda: len(job.finished) > seen + 1)  # and a later run was served
    assert wait(runtime, "runner_bug", 1)
