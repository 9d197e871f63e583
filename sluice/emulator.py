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
        # moto keeps its state in this process's memory, shared by every server it starts: a
        # runtime starts from an empty AWS, even after another one in the same process.
        moto_api_backend.reset()
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
