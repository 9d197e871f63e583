"""Which S3 objects are files to process: table-driven, no AWS."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ledger import CrawlerStart, CrawlerState, FileRef, State

from intake import (  # isort: skip  (functions/start_crawler is put on sys.path by conftest)
    BatchIntake, CrawlerRunning, CrawlPaced, Ignore, MalformedMessage, Process, Skip, read_message,
    skip_reason)

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


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


def _s3_body(*objects: tuple[str, int], event_name: str = "ObjectCreated:Put",
             at: datetime = NOW) -> str:
    return json.dumps({"Records": [
        {"eventSource": "aws:s3", "eventName": event_name, "eventTime": at.isoformat().replace("+00:00", "Z"),
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

    def record_pending(self, ref: FileRef, created=None) -> State:
        return self.items.setdefault(ref.file_id, State.PENDING)

    def record_skipped(self, ref: FileRef, reason: str) -> State:
        return self.items.setdefault(ref.file_id, State.SKIPPED)

    def in_flight_besides(self, file_ids: set[str]) -> bool:
        return any(state in (State.PENDING, State.CLAIMED) and file_id not in file_ids
                   for file_id, state in self.items.items())


class FakeCrawler:
    def __init__(self, state: CrawlerState | None = None,
                 answer: CrawlerStart = CrawlerStart.STARTED) -> None:
        self.current = state or CrawlerState(running=False)
        self.answer = answer
        self.starts = 0

    def state(self) -> CrawlerState:
        return self.current

    def start(self) -> CrawlerStart:
        self.starts += 1
        return self.answer


def _intake(ledger: FakeLedger, crawler: FakeCrawler, interval: float = 0) -> BatchIntake:
    return BatchIntake(ledger, crawler, interval=timedelta(seconds=interval), now=lambda: NOW)


def test_event_time_is_read():
    [decision] = read_message(_s3_body(("orders/a.csv", 5)))
    assert decision.created == NOW


def test_one_crawl_per_batch():
    crawler = FakeCrawler()
    intake = _intake(FakeLedger(), crawler)
    for i in range(5):
        intake.handle_message(_s3_body((f"orders/{i}.csv", 5)))
    assert crawler.starts == 1


def test_a_crawl_that_started_before_the_file_fails_every_message_that_needs_a_crawl():
    crawler = FakeCrawler(CrawlerState(running=True, running_since=NOW - timedelta(seconds=30)))
    ledger = FakeLedger()
    intake = _intake(ledger, crawler)
    for i in range(3):
        with pytest.raises(CrawlerRunning):
            intake.handle_message(_s3_body((f"orders/{i}.csv", 5), at=NOW - timedelta(seconds=10)))
    intake.handle_message(_s3_body(("orders/_SUCCESS", 0)))  # a marker needs no crawl
    assert crawler.starts == 0
    assert sorted(ledger.items.values()) == [State.PENDING] * 3 + [State.SKIPPED]


def test_a_crawl_that_started_after_the_file_covers_it():
    crawler = FakeCrawler(CrawlerState(running=True, running_since=NOW - timedelta(seconds=5)))
    intake = _intake(FakeLedger(), crawler)
    intake.handle_message(_s3_body(("orders/old.csv", 5), at=NOW - timedelta(seconds=60)))  # covered
    with pytest.raises(CrawlerRunning):  # within the margin of the crawl's start: not sure
        intake.handle_message(_s3_body(("orders/edge.csv", 5), at=NOW - timedelta(seconds=6)))
    assert crawler.starts == 0


def test_a_running_crawl_of_unknown_start_covers_nothing():
    crawler = FakeCrawler(answer=CrawlerStart.ALREADY_RUNNING)  # READY, then another batch won the start
    intake = _intake(FakeLedger(), crawler)
    with pytest.raises(CrawlerRunning):
        intake.handle_message(_s3_body(("orders/a.csv", 5), at=NOW - timedelta(hours=1)))


def test_a_busy_pipeline_paces_crawls_and_a_quiet_one_crawls_at_once():
    recent = CrawlerState(running=False, last_started=NOW - timedelta(seconds=10))
    busy = FakeLedger({"raw/orders/earlier.csv#x": State.CLAIMED})
    crawler = FakeCrawler(recent)
    with pytest.raises(CrawlPaced, match="interval 60 s"):
        _intake(busy, crawler, interval=60).handle_message(_s3_body(("orders/a.csv", 5)))
    assert crawler.starts == 0
    assert set(busy.items.values()) == {State.PENDING, State.CLAIMED}  # recorded all the same

    _intake(FakeLedger(), crawler, interval=60).handle_message(_s3_body(("orders/b.csv", 5)))
    assert crawler.starts == 1  # nothing else in flight: no reason to wait

    long_ago = FakeCrawler(CrawlerState(running=False, last_started=NOW - timedelta(seconds=61)))
    _intake(busy, long_ago, interval=60).handle_message(_s3_body(("orders/c.csv", 5)))
    assert long_ago.starts == 1  # the interval has passed


@pytest.mark.parametrize(("succeeded", "covered"), [(True, True), (False, False)])
def test_a_finished_crawl_covers_older_files_only_if_it_succeeded(succeeded, covered):
    # A message paced once comes back after a crawl listed its file: it must not wait again
    # (each wait is one more receive, and maxReceiveCount ends in the DLQ).
    crawler = FakeCrawler(CrawlerState(running=False, last_started=NOW - timedelta(seconds=10),
                                       last_succeeded=succeeded))
    busy = FakeLedger({"raw/orders/earlier.csv#x": State.PENDING})
    intake = _intake(busy, crawler, interval=60)
    if covered:
        intake.handle_message(_s3_body(("orders/a.csv", 5), at=NOW - timedelta(seconds=30)))
    else:
        with pytest.raises(CrawlPaced):
            intake.handle_message(_s3_body(("orders/a.csv", 5), at=NOW - timedelta(seconds=30)))
    with pytest.raises(CrawlPaced):  # created after that crawl began: it waits for the next
        intake.handle_message(_s3_body(("orders/new.csv", 5), at=NOW - timedelta(seconds=9)))
    assert crawler.starts == 0


def test_files_of_the_same_batch_do_not_make_it_busy():
    crawler = FakeCrawler(CrawlerState(running=False, last_started=NOW - timedelta(seconds=1)))
    bodies = [_s3_body(("orders/a.csv", 5)), _s3_body(("orders/b.csv", 5)), "not json"]
    ledger = FakeLedger()
    with pytest.raises(CrawlerRunning):  # b: recorded, then delivered again with a
        BatchIntake(ledger, FakeCrawler(answer=CrawlerStart.ALREADY_RUNNING), bodies=bodies[:2]
                    ).handle_message(_s3_body(("orders/b.csv", 5)))
    intake = BatchIntake(ledger, crawler, bodies=bodies, interval=timedelta(seconds=60), now=lambda: NOW)
    for body in bodies[:2]:
        intake.handle_message(body)
    assert crawler.starts == 1


def test_a_file_already_done_needs_no_crawl():
    ref = FileRef("raw", "orders/a.csv", "abc", 5)
    crawler = FakeCrawler(answer=CrawlerStart.ALREADY_RUNNING)
    intake = _intake(FakeLedger({ref.file_id: State.DONE}), crawler)
    assert intake.handle_message(_s3_body(("orders/a.csv", 5))) == [Process(ref)]
    assert crawler.starts == 0


def test_skip_decisions_carry_the_reason():
    [decision] = read_message(_s3_body(("orders/x/", 0)))
    assert decision == Skip(FileRef("raw", "orders/x/", "abc", 0), "folder marker")
