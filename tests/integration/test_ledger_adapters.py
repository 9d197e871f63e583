"""The adapters the ledger layer and StartJobFunction share, against the emulator: deleting a
prefix in chunks, reading a run summary, the crawler's catalogued-before, the run's one email."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from ledger import RowCounts, RunSummary, summary_key
from ledger import s3 as ledger_s3
from ledger.crawl import CrawlerStart
from ledger.glue_crawler import GlueCrawler
from ledger.summary import FileSummary
from sluice.aws import glue_crawler as local_crawler

from notifier import REPORTS, EventBridgeNotifier, NotificationFailed  # isort: skip  (on sys.path)
from run_summary import Report  # isort: skip

BUCKET = "processed-test"


@pytest.fixture
def s3(aws):
    client = aws.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def test_delete_prefix_deletes_in_chunks_and_only_under_the_prefix(s3, monkeypatch):
    monkeypatch.setattr(ledger_s3, "DELETE_BATCH", 3)  # 7 objects: three DeleteObjects calls
    run = "orders/day=24/run_id=run-1/"
    for i in range(7):
        s3.put_object(Bucket=BUCKET, Key=f"{run}part-{i}.parquet", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key="orders/day=24/run_id=run-10/part-0.parquet", Body=b"x")
    assert ledger_s3.delete_prefix(s3, BUCKET, run) == 7
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert left == ["orders/day=24/run_id=run-10/part-0.parquet"]
    assert ledger_s3.delete_prefix(s3, BUCKET, run) == 0


def test_read_summary_is_none_before_the_commit_point(s3):
    assert ledger_s3.read_summary(s3, BUCKET, "run-1") is None
    summary = RunSummary("run-1", files=[FileSummary("s3://raw/o/a.csv", "id", "o", RowCounts(2, 2, 0))])
    s3.put_object(Bucket=BUCKET, Key=summary_key("run-1"), Body=summary.to_json().encode())
    assert ledger_s3.read_summary(s3, BUCKET, "run-1") == summary


def test_catalogued_before_is_the_start_of_the_last_successful_crawl(aws):
    glue = aws.client("glue")
    glue.create_database(DatabaseInput={"Name": "raw_db"})
    glue.create_crawler(Name="raw", Role="r", DatabaseName="raw_db",
                        Targets={"S3Targets": [{"Path": "s3://raw/"}]})
    crawler = GlueCrawler(glue, "raw")
    assert crawler.catalogued_before() is None  # never crawled
    assert crawler.start() is CrawlerStart.STARTED
    assert crawler.start() is CrawlerStart.ALREADY_RUNNING
    assert crawler.catalogued_before() is None  # a crawl under way catalogues nothing yet
    local_crawler.finish("raw", succeeded=True)
    first = crawler.catalogued_before()
    assert first is not None
    time.sleep(0.01)
    crawler.start()
    local_crawler.finish("raw", succeeded=False)
    assert crawler.catalogued_before() is None  # the last crawl failed: it vouches for nothing


def _notifier_and_inbox(aws, now=None):
    """An EventBridgeNotifier, and a queue that a rule for its source feeds (what the topic gets)."""
    events, sqs = aws.client("events"), aws.client("sqs")
    aws.client("s3").create_bucket(Bucket="artifacts")
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="notify", EventPattern=json.dumps({"source": ["sluice.test"]}))
    events.put_targets(Rule="notify", Targets=[{"Id": "t", "Arn": arn}])
    kwargs = {"now": now} if now else {}
    notifier = EventBridgeNotifier(events, aws.client("s3"), "artifacts", "sluice.test",
                                   grace=timedelta(seconds=60), **kwargs)
    return notifier, lambda: [json.loads(m["Body"])["detail"] for m in sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])]


REPORT = Report("Sluice Run Finished", "run-1",
                {"message": "Sluice run run-1: SUCCEEDED.", "outcome": "SUCCEEDED"})


def test_a_report_is_sent_once_however_often_it_is_asked(aws):
    notifier, inbox = _notifier_and_inbox(aws)
    assert notifier.send(REPORT) is True
    assert notifier.send(REPORT) is False  # the same run's end, delivered again
    assert inbox() == [REPORT.detail]
    marker = aws.client("s3").get_object(Bucket="artifacts", Key=f"{REPORTS}run-1.json")["Body"].read()
    marker = json.loads(marker)
    assert (marker["state"], marker["detail"]) == ("sent", REPORT.detail)


def test_a_refused_report_is_sent_by_the_retry_as_first_composed(aws, monkeypatch):
    notifier, inbox = _notifier_and_inbox(aws)
    real = notifier.events.put_events
    monkeypatch.setattr(notifier.events, "put_events", lambda **kw: {
        "FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}]})
    with pytest.raises(NotificationFailed, match="InternalFailure: try again"):
        notifier.send(REPORT)
    monkeypatch.setattr(notifier.events, "put_events", real)
    recomposed = Report(REPORT.detail_type, "run-1", {"message": "after settling again: nothing left"})
    assert notifier.send(recomposed) is True
    assert inbox() == [REPORT.detail]  # the counts the first attempt knew


def test_a_claim_whose_sender_died_is_taken_over_after_the_grace(aws):
    clock = {"now": datetime(2026, 11, 25, 10, 0, tzinfo=UTC)}
    notifier, inbox = _notifier_and_inbox(aws, now=lambda: clock["now"])
    notifier._claim(f"{REPORTS}run-1.json", REPORT)  # claimed, then the invocation died
    assert notifier.send(REPORT) is False  # within the grace: its sender may still be sending
    clock["now"] += timedelta(minutes=5)
    assert notifier.send(REPORT) is True and inbox() == [REPORT.detail]
