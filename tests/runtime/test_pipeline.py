"""End to end through the local runtime: put -> SQS -> StartCrawlerFunction -> crawler ->
EventBridge -> StartJobFunction -> Glue job -> EventBridge -> SNS email. One warm runtime for the
module; each test writes to a dataset folder of its own and waits for its own files."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from ledger import State
from sluice.aws.sns import read_outbox
from sluice.runtime import Runtime
from sluice.status import redrive
from tests.runtime.conftest import (
    emails,
    eventually,
    ledger_items,
    ledger_of,
    orders_csv,
    processed_keys,
    put,
    started_runtime,
    until,
    wait,
    wait_for_email,
)

pytestmark = [pytest.mark.slow, pytest.mark.spark]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Iterator[Runtime]:
    with started_runtime(tmp_path_factory.mktemp("sluice")) as rt:
        yield rt


def test_one_file_from_put_to_email(runtime):
    before = len(emails(runtime))
    put(runtime, "single/2026-11-24.csv", orders_csv(20))
    [item] = wait(runtime, "single", 1)
    assert (item["state"], item["rows_in"], item["rows_out"], item["rows_bad"]) == ("DONE", 20, 20, 0)
    email = wait_for_email(runtime, "single/2026-11-24.csv", before)
    # the one email of the run: counts, and nothing else of it (Glue's own state change is not emailed)
    assert ": SUCCEEDED. 1 files, 20 rows in, 20 written, 0 quarantined, 0 duplicate. Written: single: " \
        in email
    [mail] = [m for m in read_outbox(runtime.outbox_dir)[before:] if item["run_id"] in m.body]
    assert mail.subject == "AWS Notification Message"  # EventBridge gives SNS no Subject
    assert mail.body.startswith('"Sluice run ')  # the target input as it is, quotes included
    assert any(k.endswith(".parquet") for k in processed_keys(runtime, "single"))


def test_burst_of_50_files_is_coalesced_and_each_done_exactly_once(runtime):
    """While files are in flight the crawler starts at most once per CrawlIntervalSeconds (plus
    a crawl per sweep that found a file pending long): how many crawls a burst shares depends
    on how long it lasts, which a busy machine stretches, so the bound is measured with it."""
    crawls_before = sum(c.crawls for c in runtime.crawlers)
    runs_before = len(runtime.jobs[0].finished)
    sweeps_before = sum(d.delivered for d in runtime.deliveries if d.target.schedule)
    began = time.monotonic()
    for i in range(50):
        put(runtime, f"burst/part-{i:03d}.csv", orders_csv(10, start=i * 10))
    items = wait(runtime, "burst", 50)
    took = time.monotonic() - began
    assert len(items) == 50 and {i["state"] for i in items} == {"DONE"}
    assert sum(int(i["rows_out"]) for i in items) == 500
    interval = int(runtime.parameters["CrawlIntervalSeconds"])
    sweeps = sum(d.delivered for d in runtime.deliveries if d.target.schedule) - sweeps_before
    crawls = sum(c.crawls for c in runtime.crawlers) - crawls_before
    assert crawls <= 1 + math.ceil(took / interval) + sweeps, (crawls, took, sweeps)
    assert len(runtime.jobs[0].finished) - runs_before < 25  # runs are shared too: never a run per file


def test_crawler_running_loses_nothing(runtime):
    crawler = runtime.crawlers[0]
    glue = runtime.aws.client("glue")
    crawler.paused.set()  # a crawl is under way and stays so until we let it finish
    try:
        glue.start_crawler(Name=crawler.name)
        failures_before = sum(s.failed_records for s in runtime.sources)
        for i in range(3):
            put(runtime, f"busy/file-{i}.csv", orders_csv(5, start=1000 + i * 5))
        until(runtime, lambda: sum(s.failed_records for s in runtime.sources) - failures_before >= 3,
              "the busy crawler's three records reported as batch item failures")
        assert {i["state"] for i in ledger_items(runtime, "busy")} == {"PENDING"}  # kept, not lost
    finally:
        crawler.paused.clear()
    items = wait(runtime, "busy", 3)
    assert [i["state"] for i in items] == ["DONE"] * 3


def test_failing_job_emails_failed_and_returns_files_to_pending(runtime):
    put(runtime, "doomed/first.csv", orders_csv(5, start=2000))
    wait(runtime, "doomed", 1)  # the table exists now
    runtime.faults.arm("job-fails", 1, message="injected: executor lost")
    before = len(emails(runtime))
    put(runtime, "doomed/second.csv", orders_csv(5, start=3000))
    email = wait_for_email(runtime, "FAILED", before)
    assert "injected: executor lost" in email and "Nothing from this run was kept" in email
    assert "back to PENDING with one attempt counted" in email
    # The email and the release are two consumers of one "Glue Job State Change" event, so the
    # email may come first: wait for the release, then check it counted the attempt.
    until(runtime, lambda: int(_item(runtime, "doomed/second.csv").get("attempts", 0)) > 0,
          "the failed run's file released with its attempt counted")
    second = _item(runtime, "doomed/second.csv")
    assert (second["state"], int(second["attempts"])) in {("PENDING", 1), ("CLAIMED", 1), ("DONE", 1)}



def test_a_job_error_of_any_shape_is_emailed_and_the_pipeline_goes_on(runtime):
    """Spark's errors are multi-line, quoted and long: the Job State Change event carrying one
    still reaches StartJobFunction (its files released) and the email, and the next file is
    processed (one bad run used to wedge the local pipeline)."""
    message = ("AnalysisException: [UNRESOLVED_COLUMN.WITH_SUGGESTION] A column \"event_time\" cannot be "
               "resolved.\n'Project ['event_time]\n+- Relation [user_id#1,\tts#2] csv\n" + "x" * 5000)
    put(runtime, "shapes/first.csv", orders_csv(5, start=7000))
    wait(runtime, "shapes", 1)  # the table exists now
    runtime.faults.arm("job-fails", 1, message=message)
    before = len(emails(runtime))
    put(runtime, "shapes/second.csv", orders_csv(5, start=7100))
    email = wait_for_email(runtime, "FAILED", before)
    assert "UNRESOLVED_COLUMN" in email and "'Project ['event_time]" in email
    until(runtime, lambda: int(_item(runtime, "shapes/second.csv").get("attempts", 0)) > 0,
          "the failed run's file released with its attempt counted")
    put(runtime, "shapes/third.csv", orders_csv(5, start=7200))
    items = wait(runtime, "shapes", 3, states=("DONE",))
    assert sorted(i["key"] for i in items) == ["shapes/first.csv", "shapes/second.csv", "shapes/third.csv"]

def _item(runtime, key: str) -> dict:
    return next(i for i in ledger_items(runtime, key.split("/")[0]) if i["key"] == key)


def test_bad_rows_are_quarantined_counted_and_emailed(runtime):
    before = len(emails(runtime))
    good = orders_csv(10, start=4000)
    bad = good + b"o-x1,c-1,DE,1.00,EUR,not a time\n,c-2,DE,2.00,EUR,2026-11-24T10:00:00Z\n"
    put(runtime, "mixed/with-bad-rows.csv", bad)
    [item] = wait(runtime, "mixed", 1)
    assert (item["state"], item["rows_in"], item["rows_out"], item["rows_bad"]) == ("DONE", 12, 10, 2)
    quarantine = [k for k in processed_keys(runtime, "_quarantine") if "/mixed/" in k]
    assert quarantine
    email = wait_for_email(runtime, "mixed/with-bad-rows.csv", before)
    assert "12 in, 10 written, 2 quarantined" in email and "_quarantine/" in email


def test_upload_through_a_plain_boto3_client_is_processed(runtime):
    s3 = boto3.client("s3", endpoint_url=runtime.aws.endpoint, region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="y")
    s3.put_object(Bucket=runtime.stack.outputs["RawBucketName"], Key="external/orders.csv",
                  Body=orders_csv(7, start=5000))
    [item] = wait(runtime, "external", 1)
    assert item["state"] == State.DONE.value and item["rows_out"] == 7


def test_every_finished_run_has_exactly_one_email(runtime):
    """What `make run` checks: no run without its email, none with two."""
    status = eventually(runtime, lambda: (s := runtime.status())["emails_per_run"]["missing"] == [] and s)
    assert status["job_runs"]["finished"] > 0 and status["emails_per_run"]["duplicated"] == []


def test_a_dead_letter_makes_its_alarm_fire_and_clearing_it_returns_it_to_ok(runtime):
    """A message in the ingest DLQ: its alarm goes to ALARM in `sluice status`, computed from the
    queue's metric as CloudWatch computes it; redriven (an s3:TestEvent, which StartCrawlerFunction
    ignores), the queue empties and the alarm returns to OK once a period shows it empty."""
    name = runtime.stack.resources["IngestDLQAlarm"]["AlarmName"]

    def state() -> str:
        return next(a["state"] for a in runtime.status()["alarms"] if a["name"] == name)

    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-25T10:00:00.000Z",
                  "Bucket": runtime.stack.outputs["RawBucketName"], "RequestId": "r", "HostId": "h"}
    runtime.aws.client("sqs").send_message(QueueUrl=runtime.stack.outputs["IngestDLQUrl"],
                                           MessageBody=json.dumps(test_event))
    eventually(runtime, lambda: state() == "ALARM")
    assert redrive(runtime.aws.client, runtime.aws.resource, runtime.stack.outputs)["messages"] == 1
    eventually(runtime, lambda: state() == "OK")  # the next 60 s period without the message
    assert runtime.status()["queues"]["ingest_dlq"] == 0


def test_status_reports_the_contract_fields(runtime):
    status = runtime.status()
    assert {"endpoint", "raw_bucket", "processed_bucket", "ledger"} <= set(status)
    assert set(status["ledger"]) == {s.value for s in State}


def test_ledger_never_holds_two_items_for_one_file(runtime):
    items = list(ledger_of(runtime).files())
    ids = [i["file_id"] for i in items]
    assert len(ids) == len(set(ids))
    assert Path(runtime.outbox_dir).exists()


def test_each_glue_event_reaches_the_start_job_function_once(runtime):
    """A schedule rule matches nothing but its schedule (moto would match every event)."""
    from sluice.aws.events import put_event

    start_job_queues = [t for t in runtime.stack.rule_targets if t.kind == "lambda"]
    probe = {"jobName": "not-our-job", "severity": "INFO", "state": "SUCCEEDED", "jobRunId": "jr_x",
             "message": "probe"}
    sqs = runtime.aws.client("sqs")
    before = {t.rule: int(sqs.get_queue_attributes(QueueUrl=t.queue_url, AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])
        for t in start_job_queues}
    put_event(runtime.aws, "aws.glue", "Glue Job State Change", probe)
    sweep = next(t for t in start_job_queues if t.schedule)
    assert int(sqs.get_queue_attributes(QueueUrl=sweep.queue_url, AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"]) == before[sweep.rule]
