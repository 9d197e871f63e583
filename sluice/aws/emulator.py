"""The embedded AWS emulator: moto's server, in-process, on 127.0.0.1.

Handlers, the Glue job and external tools (`aws --endpoint-url ...`) all talk to it over HTTP,
exactly as they would talk to AWS; boto3 finds it through AWS_ENDPOINT_URL.

    >>> with Emulator() as aws:                       # doctest: +SKIP
    ...     aws.client("s3").list_buckets()["Buckets"]
    []
"""

from __future__ import annotations

import logging
import os
import socket
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


def _route_without_listing_moto() -> None:
    """moto's server lists its own package directory (os.listdir, ~200 stat calls) to route every
    request; the answer never changes while it runs."""
    import functools

    from moto import backends

    if not getattr(backends.list_of_moto_modules, "sluice_cached", False):
        cached = functools.cache(lambda listing=backends.list_of_moto_modules: tuple(listing()))
        cached.sluice_cached = True  # type: ignore[attr-defined]
        backends.list_of_moto_modules = cached


def _untracked_models() -> None:
    """moto's BaseModel appends every instance it creates to a list on its class, for moto's web
    dashboard, and never lets go: every copy of a DynamoDB item a write makes, every SQS message
    ever sent. A burst grew the runtime by ~0.1 MB per file (2.3 GB after 10,000 files). The
    runtime has no use for the dashboard, so instances are no longer recorded there (the ones
    recorded before go with moto_api_backend.reset(), which Emulator.start calls next)."""
    from moto.core.common_models import BaseModel

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    BaseModel.__new__ = staticmethod(new)


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
        self._session: Any = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
        self._clients: dict[str, Any] = {}

    def start(self) -> Emulator:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        # Each emulated service keeps its corrections to moto beside it (one module per service).
        from sluice.aws import cloudwatch, dynamodb, events, glue_catalog, glue_crawler, glue_jobs, sqs

        for service in (cloudwatch, dynamodb, events, glue_catalog, glue_crawler, glue_jobs, sqs):
            service.correct_moto()
        _route_without_listing_moto()
        _untracked_models()
        # moto keeps its state in this process's memory, shared by every server it starts: a
        # runtime starts from an empty AWS, even after another one in the same process.
        moto_api_backend.reset()
        # A crawl ends when the runtime's crawler finishes it (sluice.aws.glue_crawler.finish); in moto,
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
