"""Which S3 events are files we must process: the pure decision of StartCrawlerFunction.

One SQS message carries one S3 notification (or the s3:TestEvent S3 sends when the notification
is configured). Every object in it is recorded in the ledger, as PENDING or as SKIPPED with the
reason, and the crawler is started at most once per batch.

    >>> [d.reason for d in read_message('{"Service":"Amazon S3","Event":"s3:TestEvent"}')]
    ['s3:TestEvent']
    >>> skip_reason("orders/2026/_SUCCESS", size=0)
    'job marker (_SUCCESS)'
    >>> skip_reason("orders/a%20b.csv", size=10) is None
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Protocol
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event

from ledger import FileRef, State


@dataclass(frozen=True)
class Process:
    """A data file: record PENDING, make sure a crawl covers it."""

    ref: FileRef


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
        decisions.append(Skip(ref, reason) if reason else Process(ref))
    return decisions


class CrawlerStart(Enum):
    STARTED = "started"
    ALREADY_RUNNING = "already running"


class CrawlerRunning(RuntimeError):
    """The crawler was busy, so no crawl is sure to cover this file yet: SQS delivers the message
    again after the visibility timeout, and that delivery starts a later crawl."""


class Ledger(Protocol):
    def record_pending(self, ref: FileRef) -> State: ...
    def record_skipped(self, ref: FileRef, reason: str) -> State: ...


class Crawler(Protocol):
    def start(self) -> CrawlerStart: ...


class BatchIntake:
    """One invocation's worth of messages: every file recorded, the crawler started at most once.

    A crawl started by this batch covers every message in it (the objects exist before their
    events). If the crawler is already running, the messages that need a crawl raise
    CrawlerRunning and are reported as batch item failures; their ledger items stay PENDING.
    """

    def __init__(self, ledger: Ledger, crawler: Crawler) -> None:
        self.ledger = ledger
        self.crawler = crawler
        self.crawl: CrawlerStart | None = None

    def handle_message(self, body: str) -> list[Decision]:
        decisions = read_message(body)
        needs_crawl = False
        for decision in decisions:
            if isinstance(decision, Process):
                # PENDING also when a redelivery finds it still PENDING: it still needs a crawl.
                needs_crawl |= self.ledger.record_pending(decision.ref) is State.PENDING
            elif isinstance(decision, Skip):
                self.ledger.record_skipped(decision.ref, decision.reason)
        if needs_crawl:
            self._ensure_crawl()
        return decisions

    def _ensure_crawl(self) -> None:
        if self.crawl is None:
            self.crawl = self.crawler.start()
        if self.crawl is CrawlerStart.ALREADY_RUNNING:
            raise CrawlerRunning("crawler already running; message will be delivered again")
