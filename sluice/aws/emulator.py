"""The embedded AWS emulator: moto's server, in-process, on 127.0.0.1.

Handlers, the Glue job and external tools (`aws --endpoint-url ...`) all talk to it over HTTP,
exactly as they would talk to AWS; boto3 finds it through AWS_ENDPOINT_URL. This module knows no
emulated service: where moto differs from AWS, each service's module corrects it, and whoever
starts an emulator applies those corrections first (sluice.aws.corrections); only moto's own
server-wide costs are corrected here.

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

from moto.moto_api._internal.models import moto_api_backend
from moto.server import ThreadedMotoServer

from sluice.aws import account
from sluice.aws.account import FAKE_CREDENTIALS, REGION
from sluice.aws.moto_patch import replace


def _route_without_listing_moto() -> None:
    """moto's server lists its own package directory (os.listdir, ~200 stat calls) to route every
    request; the answer never changes while it runs."""
    import functools

    from moto import backends

    replace(backends, "list_of_moto_modules", lambda listing: functools.cache(lambda: tuple(listing())))


def _untracked_models() -> None:
    """moto's BaseModel appends every instance it creates to a list on its class, for moto's web
    dashboard, and never lets go: every copy of a DynamoDB item a write makes, every SQS message
    ever sent. A burst grew the runtime by ~0.1 MB per file (2.3 GB after 10,000 files). The
    runtime has no use for the dashboard, so instances are no longer recorded there (the ones
    recorded before go with moto_api_backend.reset(), which Emulator.start calls next)."""
    from moto.core.common_models import BaseModel

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    replace(BaseModel, "__new__", lambda _: staticmethod(new))


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
        self._session = account.fake_session()  # none of the runtime's hooks: the emulator's own calls
        self._clients: dict[str, Any] = {}

    def start(self) -> Emulator:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        _route_without_listing_moto()
        _untracked_models()
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
        """The emulator's own client of `service` (one per service, shared; no principal's)."""
        if service not in self._clients:
            self._clients[service] = account.client(service, self.endpoint, self._session)
        return self._clients[service]

    def resource(self, service: str) -> Any:
        return account.resource(service, self.endpoint, self._session)
