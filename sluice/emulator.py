"""The embedded AWS emulator: moto's server, in-process, on 127.0.0.1.

Handlers, the Glue job and external tools (`aws --endpoint-url ...`) all talk to it over HTTP,
exactly as they would talk to AWS; boto3 finds it through AWS_ENDPOINT_URL.

    >>> with Emulator() as aws:                       # doctest: +SKIP
    ...     aws.client("s3").list_buckets()["Buckets"]
    []
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import urllib.request
from typing import Any

import boto3
from botocore.config import Config
from moto.moto_api import state_manager
from moto.moto_api._internal.models import moto_api_backend
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account

# Credentials the emulator accepts; set only where nothing else is configured.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def _deliver_transformed_strings() -> None:
    """moto 5.2.5 bug: an input transformer that yields a string (a readable message, as the
    template's notification rules do) crashes delivery to SQS whenever the text contains the
    letters "time" (`"time" in event`, then `event["time"]`). Deliver such strings as they are."""
    from moto.events.models import Rule
    from moto.sqs import sqs_backends

    original = Rule._send_to_sqs_queue
    if getattr(original, "sluice_patched", False):
        return

    def send(self: Rule, resource_id: str, event: Any, group_id: str | None = None) -> None:
        if not isinstance(event, str):
            return original(self, resource_id, event, group_id)
        sqs_backends[self.account_id][self.region_name].send_message(
            queue_name=resource_id, message_body=json.dumps(event), group_id=group_id)

    send.sluice_patched = True  # type: ignore[attr-defined]
    Rule._send_to_sqs_queue = send


def _atomic_dynamodb_writes() -> None:
    """DynamoDB applies a conditional write atomically; moto's threaded server checks the condition
    and writes without a lock, so two concurrent claims of one ledger item could both succeed.
    Serialise moto's item writes, which is what makes the emulator's conditions mean what
    DynamoDB's do."""
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend, "sluice_atomic", False):
        return
    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "get_item",
                 "query", "scan"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, locked)
    DynamoDBBackend.sluice_atomic = True  # type: ignore[attr-defined]


def _atomic_sqs() -> None:
    """SQS hands a message to one receiver at a time; moto's threaded server lets two receivers
    walk and change a queue's message lists at once, which under a burst raises "Set changed size
    during iteration" (or hands one message out twice). Serialise moto's queue operations. A long
    poll is split into lock-free waits and locked zero-wait receives, so one idle poller never
    holds up the others."""
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend, "sluice_atomic", False):
        return
    lock = threading.RLock()
    for name in ("send_message", "send_message_batch", "delete_message", "delete_message_batch",
                 "change_message_visibility", "change_message_visibility_batch", "purge_queue",
                 "get_queue_attributes"):
        original = getattr(SQSBackend, name)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        setattr(SQSBackend, name, locked)

    receive = SQSBackend.receive_message

    def receive_message(self: Any, queue_name: str, count: int, wait_seconds_timeout: int,
                        visibility_timeout: int, message_attribute_names: list[str] | None = None) -> Any:
        deadline = unix_time() + (wait_seconds_timeout or 0)
        while True:
            with lock:
                got = receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            remaining = deadline - unix_time()
            if got or remaining <= 0:
                return got
            self.get_queue(queue_name).wait_for_messages(min(1.0, remaining))

    SQSBackend.receive_message = receive_message
    SQSBackend.sluice_atomic = True  # type: ignore[attr-defined]


def _linear_sqs_scans() -> None:
    """moto recounts a queue (visible, in flight, delayed) on every SendMessage, and tests each
    message's visibility by reading the clock: a 10,000-message backlog made every S3 upload take
    tens of milliseconds. Same answers, one clock read per scan."""
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Queue, SQSBackend

    if getattr(Queue, "sluice_fast", False):
        return

    def visible_now(self: Queue) -> list:
        now = unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and now >= m.delayed_until]

    def in_flight(self: Queue) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if now <= m.visible_at)

    def delayed(self: Queue) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def within_retention(self: SQSBackend, queue_name: str, message: Any) -> bool:
        # moto computed every attribute of the queue (three full scans) for each message received
        retention = int(self.get_queue(queue_name).message_retention_period)
        return retention + message.sent_timestamp / 1000 > unix_time_millis() / 1000

    Queue.messages = property(visible_now)
    Queue.approximate_number_of_messages_not_visible = property(in_flight)
    Queue.approximate_number_of_messages_delayed = property(delayed)
    SQSBackend.is_message_valid_based_on_retention_period = within_retention
    Queue.sluice_fast = True  # type: ignore[attr-defined]


def _route_without_listing_moto() -> None:
    """moto's server lists its own package directory (os.listdir, ~200 stat calls) to route every
    request; the answer never changes while it runs."""
    import functools

    from moto import backends

    if not getattr(backends.list_of_moto_modules, "sluice_cached", False):
        cached = functools.cache(lambda listing=backends.list_of_moto_modules: tuple(listing()))
        cached.sluice_cached = True  # type: ignore[attr-defined]
        backends.list_of_moto_modules = cached


def _last_crawl_as_aws_reports_it() -> None:
    """GetCrawler's LastCrawl is the last finished crawl, its Status SUCCEEDED, CANCELLED or
    FAILED; moto shows the newest crawl there, even one still running, with its ListCrawls state
    (COMPLETED, STOPPED), which a handler reading the API would misread."""
    from moto.glue.models import FakeCrawler

    original = FakeCrawler.as_dict
    if getattr(original, "sluice_patched", False):
        return
    words = {"COMPLETED": "SUCCEEDED", "STOPPED": "CANCELLED"}

    def as_dict(self: FakeCrawler) -> dict:
        data = original(self)
        data.pop("LastCrawl", None)
        finished = [c for c in self.crawls if c.status not in ("RUNNING", "STOPPING")]
        if finished:
            last = finished[-1]
            data["LastCrawl"] = {"StartTime": last.start_time, "Status": words.get(last.status, last.status),
                                 "LogGroup": last.log_group, "LogStream": last.log_stream,
                                 "MessagePrefix": last.message_prefix}
        return data

    as_dict.sluice_patched = True  # type: ignore[attr-defined]
    FakeCrawler.as_dict = as_dict


def _job_runs_newest_first() -> None:
    """GetJobRuns lists the newest runs first (AWS API reference); moto lists them oldest first,
    so a first page would show none of the runs under way once a job has run 100 times."""
    from moto.glue.models import FakeJob

    original = FakeJob.get_job_runs
    if getattr(original, "sluice_patched", False):
        return

    def get_job_runs(self: FakeJob) -> list:
        return list(reversed(original(self)))

    get_job_runs.sluice_patched = True  # type: ignore[attr-defined]
    FakeJob.get_job_runs = get_job_runs


def _untracked_models() -> None:
    """moto's BaseModel appends every instance it creates to a list on its class, for moto's web
    dashboard, and never lets go: every copy of a DynamoDB item a write makes, every SQS message
    ever sent. A burst grew the runtime by ~0.1 MB per file (2.3 GB after 10,000 files). The
    runtime has no use for the dashboard, so instances are no longer recorded there (the ones
    recorded before go with moto_api_backend.reset(), which Emulator.start calls next)."""
    from moto.core.common_models import BaseModel

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    BaseModel.__new__ = staticmethod(new)  # type: ignore[method-assign]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Emulator:
    """A moto server on 127.0.0.1:port, with boto3 clients pointed at it."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
        self._clients: dict[str, Any] = {}

    def start(self) -> Emulator:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        _deliver_transformed_strings()
        _atomic_dynamodb_writes()
        _atomic_sqs()
        _linear_sqs_scans()
        _route_without_listing_moto()
        _last_crawl_as_aws_reports_it()
        _job_runs_newest_first()
        _untracked_models()
        # moto keeps its state in this process's memory, shared by every server it starts: a
        # runtime starts from an empty AWS, even after another one in the same process.
        moto_api_backend.reset()
        # A crawl ends when the runtime's crawler finishes it (sluice.crawler.finish); in moto,
        # merely listing a crawl (ListCrawls) would end it.
        state_manager.set_transition(model_name="glue::crawl",
                                     transition={"progression": "manual", "times": 10**9})
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def environment(self) -> dict[str, str]:
        """What a process (a handler, the Glue job, the aws CLI) needs to reach this emulator."""
        return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": REGION}

    def point_process_here(self) -> None:
        """Make every boto3 client created from now on in this process use the emulator."""
        os.environ.update(self.environment())

    def reset(self) -> None:
        """Forget every resource (moto's reset API): a clean account for the next test."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).read()

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(
                service, endpoint_url=self.endpoint,
                config=Config(retries={"mode": "standard", "max_attempts": 3}))
        return self._clients[service]

    def resource(self, service: str) -> Any:
        return self._session.resource(service, endpoint_url=self.endpoint)
