"""Which S3 events are files we must process: the pure decision of StartCrawlerFunction.

One SQS message carries one S3 notification (or the s3:TestEvent S3 sends when the notification
is configured). Every object in it is recorded in the ledger, as PENDING or as SKIPPED with the
reason, and the crawler is started at most once per batch. Under load, crawls are paced: see
BatchIntake.

    >>> [d.reason for d in read_message('{"Service":"Amazon S3","Event":"s3:TestEvent"}')]
    ['s3:TestEvent']
    >>> skip_reason("orders/2026/_SUCCESS", size=0)
    'job marker (_SUCCESS)'
    >>> skip_reason("orders/a%20b.csv", size=10) is None
    True
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event

from ledger import CrawlerStart, CrawlerState, FileRef, State


@dataclass(frozen=True)
class Process:
    """A data file: record PENDING, make sure a crawl covers it."""

    ref: FileRef
    created: datetime | None = field(default=None, compare=False)  # the event's eventTime


@dataclass(frozen=True)
class Skip:
    """An object that is not data: record SKIPPED with the reason, never crawl it."""

    ref: FileRef
    reason: str


@dataclass(frozen=True)
class Ignore:
    """Not an object at all (the s3:TestEvent, a non-create event): nothing to record."""

    reason: str


Decision = Process | Skip | Ignore


class MalformedMessage(ValueError):
    """The message body is not an S3 notification. Only this record fails (and after
    maxReceiveCount deliveries it rests in the DLQ, where `sluice redrive` can return it)."""


def skip_reason(key: str, size: int) -> str | None:
    """Why an object is not a data file, or None if it is one. `key` is already decoded."""
    name = key.rsplit("/", 1)[-1]
    if key.endswith("/"):
        return "folder marker"
    if name == "_SUCCESS":
        return "job marker (_SUCCESS)"
    if "_temporary/" in key or key.startswith("_temporary"):
        return "temporary output (_temporary/)"
    if name.endswith(".tmp"):
        return "temporary file (.tmp)"
    if name.startswith("."):
        return "hidden file"
    if "/" not in key:
        return "not inside a dataset folder (expected <dataset>/<file>)"
    if size == 0:
        return "empty object (0 bytes)"
    return None


def read_message(body: str) -> list[Decision]:
    """Decide, for every object in one SQS message body, what the pipeline does with it."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError) as error:
        raise MalformedMessage(f"body is not JSON: {error}") from error
    if not isinstance(data, dict):
        raise MalformedMessage("body is not a JSON object")
    if data.get("Event") == "s3:TestEvent":
        return [Ignore("s3:TestEvent")]
    if not isinstance(data.get("Records"), list) or not data["Records"]:
        raise MalformedMessage("body has no S3 'Records'")
    decisions: list[Decision] = []
    for record in S3Event(data).records:
        try:
            if record.event_source != "aws:s3":
                raise MalformedMessage(f"record from {record.event_source!r}, not aws:s3")
            if not record.event_name.startswith("ObjectCreated:"):
                decisions.append(Ignore(f"not an object-created event: {record.event_name}"))
                continue
            obj = record.s3.get_object
            ref = FileRef(
                bucket=record.s3.bucket.name,
                key=unquote_plus(obj.key),  # S3 URL-encodes keys; '+' is a space
                etag=obj.etag.strip('"'),
                size=int(obj.get("size") or 0),
                version_id=obj.version_id,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise MalformedMessage(f"S3 record is missing {error}") from error
        reason = skip_reason(ref.key, ref.size)
        decisions.append(Skip(ref, reason) if reason else Process(ref, _event_time(record.event_time)))
    return decisions


def _file_ids(bodies: list[str]) -> set[str]:
    ids: set[str] = set()
    for body in bodies:
        try:
            ids |= {d.ref.file_id for d in read_message(body) if isinstance(d, Process)}
        except MalformedMessage:
            continue  # that record fails on its own when its turn comes
    return ids


def _event_time(text: str | None) -> datetime | None:
    """S3's eventTime ("2026-11-25T09:15:02.123Z"); None when absent or unreadable, which only
    means the file cannot count as covered by a crawl already under way."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


class CrawlerRunning(RuntimeError):
    """The crawler was busy with a crawl that may not see this file, so no crawl is sure to cover
    it yet: SQS delivers the message again after the visibility timeout, and that delivery is
    covered by (or starts) a later crawl."""


class CrawlPaced(RuntimeError):
    """The pipeline is busy and the last crawl started less than the crawl interval ago: the
    message comes back after the visibility timeout and is covered by the next, paced crawl."""


class Ledger(Protocol):
    def record_pending(self, ref: FileRef, created: datetime | None = None) -> State: ...
    def record_skipped(self, ref: FileRef, reason: str) -> State: ...
    def in_flight_besides(self, file_ids: set[str]) -> bool: ...


class Crawler(Protocol):
    def state(self) -> CrawlerState: ...
    def start(self) -> CrawlerStart: ...


# How much later than a file's event a running crawl must have started to be sure to list it
# (S3 listing is strongly consistent; this absorbs the clocks of two services).
COVER_MARGIN = timedelta(seconds=2)


class BatchIntake:
    """One invocation's worth of messages: every file recorded, the crawler started at most once.

    A crawl started by this batch covers every message in it (the objects exist before their
    events). A crawl already under way, or a finished one that succeeded, covers a file if it
    started after the file was created; otherwise the message raises CrawlerRunning and SQS brings
    it back later (its ledger item stays PENDING, and a redelivery is harmless).

    Pacing: a crawl lists every raw object and is billed per run, so during a burst starting one
    per batch would crawl back to back. When other files are already in flight (PENDING or
    CLAIMED) and the last crawl started less than `interval` ago, the message raises CrawlPaced
    instead and waits for the next crawl. A file arriving at a quiet pipeline is crawled at once.
    """

    def __init__(self, ledger: Ledger, crawler: Crawler, bodies: list[str] | None = None,
                 interval: timedelta = timedelta(0),
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.ledger = ledger
        self.crawler = crawler
        self.interval = interval
        self.now = now
        self.batch = _file_ids(bodies or [])  # a redelivered batch's own files do not make it busy
        self.state: CrawlerState | None = None  # read once per batch, when a file first needs it
        self.crawl: CrawlerStart | CrawlPaced | None = None

    def handle_message(self, body: str) -> list[Decision]:
        decisions = read_message(body)
        waiting: list[Process] = []
        for decision in decisions:
            if isinstance(decision, Process):
                # PENDING also when a redelivery finds it still PENDING: it still needs a crawl.
                if self.ledger.record_pending(decision.ref, decision.created) is State.PENDING:
                    waiting.append(decision)
                self.batch.add(decision.ref.file_id)
            elif isinstance(decision, Skip):
                self.ledger.record_skipped(decision.ref, decision.reason)
        if waiting:
            self._ensure_crawl(waiting)
        return decisions

    def _ensure_crawl(self, files: list[Process]) -> None:
        if self.crawl is CrawlerStart.STARTED:
            return  # this batch's own crawl lists every file in it
        if self.state is None:
            self.state = self.crawler.state()
        if self._covered(files):
            return
        if self.crawl is None:
            self.crawl = self._start_or_pace(self.state)
            if self.crawl is CrawlerStart.STARTED:
                return
        if isinstance(self.crawl, CrawlPaced):
            raise self.crawl
        raise CrawlerRunning("crawler already running; message will be delivered again")

    def _start_or_pace(self, state: CrawlerState) -> CrawlerStart | CrawlPaced:
        if state.running:
            return CrawlerStart.ALREADY_RUNNING
        since_last = self.now() - state.last_started if state.last_started else None
        if since_last is not None and since_last < self.interval and \
                self.ledger.in_flight_besides(self.batch):
            return CrawlPaced(f"pipeline busy; last crawl started {since_last.total_seconds():.0f} s "
                              f"ago (interval {self.interval.total_seconds():.0f} s)")
        started = self.crawler.start()
        if started is CrawlerStart.ALREADY_RUNNING:  # another batch started one just now
            self.state = CrawlerState(running=True)  # its start is unknown: it covers nothing sure
        return started

    def _covered(self, files: list[Process]) -> bool:
        since = self.state.lists_objects_before if self.state else None
        return since is not None and all(
            f.created is not None and f.created + COVER_MARGIN <= since for f in files)
