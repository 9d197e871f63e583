"""Which S3 objects are files to process: table-driven, no AWS."""

from __future__ import annotations

import json

import pytest

from ledger import FileRef, State

from intake import (  # isort: skip  (functions/start_crawler is put on sys.path by conftest)
    BatchIntake, CrawlerRunning, CrawlerStart, Ignore, MalformedMessage, Process, Skip, read_message,
    skip_reason)


@pytest.mark.parametrize(("key", "size", "reason"), [
    ("orders/2026/11/25/a.csv", 10, None),
    ("orders/a b.csv", 10, None),
    ("orders/region=eu/a.json.gz", 10, None),
    ("orders/", 0, "folder marker"),
    ("orders/2026/", 0, "folder marker"),
    ("orders/2026/_SUCCESS", 0, "job marker (_SUCCESS)"),
    ("orders/_temporary/0/part-0000.csv", 10, "temporary output (_temporary/)"),
    ("orders/upload.csv.tmp", 10, "temporary file (.tmp)"),
    ("orders/.DS_Store", 10, "hidden file"),
    ("loose-file.csv", 10, "not inside a dataset folder (expected <dataset>/<file>)"),
    ("orders/empty.csv", 0, "empty object (0 bytes)"),
])
def test_skip_reason(key, size, reason):
    assert skip_reason(key, size) == reason


def _s3_body(*objects: tuple[str, int], event_name: str = "ObjectCreated:Put") -> str:
    return json.dumps({"Records": [
        {"eventSource": "aws:s3", "eventName": event_name,
         "s3": {"bucket": {"name": "raw"}, "object": {"key": key, "size": size, "eTag": "abc"}}}
        for key, size in objects]})


@pytest.mark.parametrize(("encoded", "decoded"), [
    ("orders/daily+report.csv", "orders/daily report.csv"),
    ("orders/a%2Bb.csv", "orders/a+b.csv"),
    ("orders%2Fsub%2Ff.csv", "orders/sub/f.csv"),  # moto encodes '/', AWS does not
    ("orders/%C3%BC.csv", "orders/ü.csv"),
])
def test_keys_are_url_decoded(encoded, decoded):
    [decision] = read_message(_s3_body((encoded, 5)))
    assert decision == Process(FileRef("raw", decoded, "abc", 5))


def test_test_event_and_non_create_events_are_ignored():
    assert read_message(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == [
        Ignore("s3:TestEvent")]
    [decision] = read_message(_s3_body(("orders/a.csv", 5), event_name="ObjectRemoved:Delete"))
    assert isinstance(decision, Ignore)


@pytest.mark.parametrize("body", [
    "not json", "[]", "{}", '{"Records": []}', '{"Records": [{"eventSource": "aws:sqs"}]}',
    '{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {}}]}'])
def test_malformed_bodies_raise(body):
    with pytest.raises(MalformedMessage):
        read_message(body)


class FakeLedger:
    def __init__(self, existing: dict[str, State] | None = None) -> None:
        self.items = dict(existing or {})

    def record_pending(self, ref: FileRef) -> State:
        return self.items.setdefault(ref.file_id, State.PENDING)

    def record_skipped(self, ref: FileRef, reason: str) -> State:
        return self.items.setdefault(ref.file_id, State.SKIPPED)


class FakeCrawler:
    def __init__(self, answer: CrawlerStart) -> None:
        self.answer = answer
        self.starts = 0

    def start(self) -> CrawlerStart:
        self.starts += 1
        return self.answer


def test_one_crawl_per_batch():
    crawler = FakeCrawler(CrawlerStart.STARTED)
    intake = BatchIntake(FakeLedger(), crawler)
    for i in range(5):
        intake.handle_message(_s3_body((f"orders/{i}.csv", 5)))
    assert crawler.starts == 1


def test_running_crawler_fails_every_message_that_needs_a_crawl():
    crawler = FakeCrawler(CrawlerStart.ALREADY_RUNNING)
    ledger = FakeLedger()
    intake = BatchIntake(ledger, crawler)
    for i in range(3):
        with pytest.raises(CrawlerRunning):
            intake.handle_message(_s3_body((f"orders/{i}.csv", 5)))
    intake.handle_message(_s3_body(("orders/_SUCCESS", 0)))  # a marker needs no crawl
    assert crawler.starts == 1
    assert sorted(ledger.items.values()) == [State.PENDING] * 3 + [State.SKIPPED]


def test_a_file_already_done_needs_no_crawl():
    ref = FileRef("raw", "orders/a.csv", "abc", 5)
    crawler = FakeCrawler(CrawlerStart.ALREADY_RUNNING)
    intake = BatchIntake(FakeLedger({ref.file_id: State.DONE}), crawler)
    assert intake.handle_message(_s3_body(("orders/a.csv", 5))) == [Process(ref)]
    assert crawler.starts == 0


def test_skip_decisions_carry_the_reason():
    [decision] = read_message(_s3_body(("orders/x/", 0)))
    assert decision == Skip(FileRef("raw", "orders/x/", "abc", 0), "folder marker")
