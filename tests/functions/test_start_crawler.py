"""StartCrawlerFunction against the emulator: every path ends with each file in the ledger."""

from __future__ import annotations

import copy
import json
import sys
from datetime import UTC, datetime, timedelta

import pytest

from tests.functions.conftest import ENV, event

CRAWLER = ENV["StartCrawlerFunction"]["CRAWLER_NAME"]


def _forget_ledger(aws) -> None:
    table = aws.resource("dynamodb").Table(ENV["StartJobFunction"]["LEDGER_TABLE"])
    for item in table.scan()["Items"]:
        table.delete_item(Key={"file_id": item["file_id"]})


def _crawls(aws) -> int:
    from moto.glue.models import glue_backends

    return len(glue_backends["123456789012"]["us-east-1"].crawlers[CRAWLER].crawls)


def _failed_ids(response: dict) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def test_one_put_is_pending_and_starts_the_crawler(start_crawler, ledger_items, stack):
    response = start_crawler(event("sqs-s3-put.json"))
    assert response == {"batchItemFailures": []}
    [item] = ledger_items()
    assert item["state"] == "PENDING"
    assert item["key"] == "orders/2026/11/25/orders-0001.csv"
    assert _crawls(stack) == 1


def test_duplicate_event_is_one_ledger_item(start_crawler, ledger_items, stack):
    start_crawler(event("sqs-s3-put.json"))
    stack.client("glue").stop_crawler(Name=CRAWLER)
    start_crawler(event("sqs-s3-put.json"))  # S3 delivered it twice
    assert len(ledger_items()) == 1


def test_burst_starts_one_crawl_and_records_the_marker_as_skipped(start_crawler, ledger_items, stack):
    response = start_crawler(event("sqs-s3-burst.json"))
    assert response == {"batchItemFailures": []}
    states = sorted((i["state"], i.get("reason", "")) for i in ledger_items())
    assert states.count(("PENDING", "")) == 8
    assert ("SKIPPED", "job marker (_SUCCESS)") in states
    assert _crawls(stack) == 1


def test_s3_test_event_records_nothing(start_crawler, ledger_items, stack):
    assert start_crawler(event("sqs-s3-test-event.json")) == {"batchItemFailures": []}
    assert ledger_items() == []
    assert _crawls(stack) == 0


def test_encoded_keys_are_decoded(start_crawler, ledger_items):
    start_crawler(event("sqs-s3-encoded-keys.json"))
    assert sorted(i["key"] for i in ledger_items()) == sorted([
        "orders/daily report 2026-11-25.csv", "orders/a+b=c.csv", "orders/région/ü-ñ 東京.csv"])


def _stamped_now(evt: dict, ago: timedelta = timedelta(0)) -> dict:
    """The sample event as if its objects had just been uploaded (or `ago`)."""
    evt = copy.deepcopy(evt)
    now = (datetime.now(UTC) - ago).isoformat().replace("+00:00", "Z")
    for record in evt["Records"]:
        body = json.loads(record["body"])
        for s3_record in body.get("Records", []):
            s3_record["eventTime"] = now
        record["body"] = json.dumps(body)
    return evt


def _finish_crawl(succeeded: bool = True) -> None:
    from sluice.aws import glue_crawler as crawler

    crawler.finish(CRAWLER, succeeded=succeeded)


def test_crawler_running_fails_the_records_and_loses_nothing(start_crawler, ledger_items, stack):
    stack.client("glue").start_crawler(Name=CRAWLER)  # someone else's crawl is under way
    burst = _stamped_now(event("sqs-s3-burst.json"))  # uploaded after that crawl began
    response = start_crawler(burst)
    data_ids = [r["messageId"] for r in burst["Records"] if "_SUCCESS" not in r["body"]]
    assert sorted(_failed_ids(response)) == sorted(data_ids)  # SQS delivers them again
    assert sum(i["state"] == "PENDING" for i in ledger_items()) == 8  # the ledger kept them

    _finish_crawl()  # that crawl ends
    assert start_crawler(burst) == {"batchItemFailures": []}  # the redelivery starts a new one
    assert _crawls(stack) == 2
    assert len(ledger_items()) == 9


def test_a_crawl_that_began_after_the_uploads_covers_them(start_crawler, ledger_items, stack):
    stack.client("glue").start_crawler(Name=CRAWLER)  # began after the sample's eventTime
    assert start_crawler(event("sqs-s3-burst.json")) == {"batchItemFailures": []}
    assert _crawls(stack) == 1  # no second crawl: the running one lists these objects
    assert sum(i["state"] == "PENDING" for i in ledger_items()) == 8


def test_a_busy_pipeline_waits_for_the_paced_crawl(start_crawler, ledger_items, stack):
    start_crawler(_stamped_now(event("sqs-s3-put.json")))  # a first file: crawled at once
    _finish_crawl()
    burst = _stamped_now(event("sqs-s3-burst.json"))  # more, while the first is still in flight
    response = start_crawler(burst)
    data_ids = [r["messageId"] for r in burst["Records"] if "_SUCCESS" not in r["body"]]
    assert sorted(_failed_ids(response)) == sorted(data_ids)  # back after the visibility timeout
    assert _crawls(stack) == 1  # CRAWL_INTERVAL_SECONDS (300 s in events/env.json) not over
    assert sum(i["state"] == "PENDING" for i in ledger_items()) == 9


@pytest.mark.parametrize("succeeded", [True, False])
def test_a_finished_crawl_covers_files_created_before_it_only_if_it_succeeded(
        succeeded, start_crawler, ledger_items, stack):
    start_crawler(_stamped_now(event("sqs-s3-put.json")))  # crawled at once, still in flight
    _finish_crawl(succeeded)
    # created before that crawl began (a paced delivery coming back, say)
    burst = _stamped_now(event("sqs-s3-burst.json"), ago=timedelta(seconds=10))
    response = start_crawler(burst)
    data_ids = [r["messageId"] for r in burst["Records"] if "_SUCCESS" not in r["body"]]
    assert sorted(_failed_ids(response)) == ([] if succeeded else sorted(data_ids))
    assert _crawls(stack) == 1
    assert sum(i["state"] == "PENDING" for i in ledger_items()) == 9


def test_throttling_is_retried_then_succeeds(start_crawler, ledger_items, stack, aws_errors):
    app = sys.modules["sluice_fn_start_crawler_app"]
    calls = aws_errors.fail(app._crawler(CRAWLER).glue, "StartCrawler", "ThrottlingException", times=2)
    assert start_crawler(event("sqs-s3-put.json")) == {"batchItemFailures": []}
    assert calls == {"failed": 2, "total": 3}
    assert _crawls(stack) == 1


def test_throttling_that_never_ends_fails_the_record_but_keeps_the_file(
        start_crawler, ledger_items, stack, aws_errors):
    app = sys.modules["sluice_fn_start_crawler_app"]
    aws_errors.fail(app._crawler(CRAWLER).glue, "StartCrawler", "ThrottlingException", times=100)
    put = event("sqs-s3-put.json")
    assert _failed_ids(start_crawler(put)) == [put["Records"][0]["messageId"]]
    assert [i["state"] for i in ledger_items()] == ["PENDING"]


def test_malformed_body_fails_only_that_record(start_crawler, ledger_items):
    batch = event("sqs-s3-burst.json")
    poison = copy.deepcopy(batch["Records"][0])
    poison["messageId"] = "poison-0001"
    poison["body"] = "this is not an S3 event {"
    not_s3 = copy.deepcopy(batch["Records"][0])
    not_s3["messageId"] = "poison-0002"
    not_s3["body"] = json.dumps({"hello": "world"})
    batch["Records"][3:3] = [poison, not_s3]
    response = start_crawler(batch)
    assert sorted(_failed_ids(response)) == ["poison-0001", "poison-0002"]
    assert len(ledger_items()) == 9  # the eight files and the marker around them all recorded


def test_every_sqs_sample_event_is_accepted(start_crawler, events_dir, stack):
    for path in sorted(events_dir.glob("sqs-*.json")):
        _finish_crawl()
        _forget_ledger(stack)  # each sample meets a quiet pipeline, as when it was recorded
        response = start_crawler(json.loads(path.read_text()))
        assert response == {"batchItemFailures": []}, path.name
