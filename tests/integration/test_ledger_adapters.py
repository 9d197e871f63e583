"""The adapters the ledger layer and StartJobFunction share, against the emulator: deleting a
prefix in chunks, reading a run summary, the crawler's catalogued-before, the summary email."""

from __future__ import annotations

import json
import time

import pytest

from ledger import RowCounts, RunSummary, summary_key
from ledger import s3 as ledger_s3
from ledger.crawl import CrawlerStart
from ledger.glue_crawler import GlueCrawler
from ledger.summary import FileSummary
from sluice.aws import glue_crawler as local_crawler

from notifier import SnsNotifier  # isort: skip  (functions/start_job is on sys.path)

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


def test_the_summary_email_reaches_the_topic(aws):
    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic = sns.create_topic(Name="notifications")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    queue_arn = attributes["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    SnsNotifier(sns, topic).send("Sluice run run-1: 1 files", "the text")
    [message] = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    body = json.loads(message["Body"])
    assert (body["Subject"], body["Message"]) == ("Sluice run run-1: 1 files", "the text")
