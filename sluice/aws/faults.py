"""Fault injection for the local runtime: each fault is off until armed, and fires N times.

    sluice up --fault crawler-running=3 --fault job-throttled=2
    runtime.faults.arm("handler-crash")          # on a running runtime (tests)

AWS errors are injected at botocore's HTTP layer (a `before-send` hook on the default session,
which the handlers' and the job's clients are created from), so botocore's own retries and the
handlers' own error handling run exactly as they would against AWS. The job's faults fire on the
calls of a job run, which the job runner marks (IN_JOB_RUN, sluice.aws.glue_jobs); the SQS ones
are switches the event source mapping reads (handler-crash, sqs-duplicate:
sluice.aws.sqs_event_source).

Tests that hold one client (a handler's cached one) inject on it alone, the same way:

    faults = ClientFaults()
    calls = faults.fail(glue, "StartCrawler", "ThrottlingException", times=2)   # calls["failed"]
    faults.clear()
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse, HTTPHeaders

from sluice.aws.account import ACCOUNT_ID, REGION

FAULTS = {
    "crawler-running": "StartCrawler answers CrawlerRunningException",
    "job-concurrency": "StartJobRun answers ConcurrentRunsExceededException",
    "job-throttled": "StartJobRun answers ThrottlingException (botocore retries it)",
    "job-start-outlasts-grace": "StartJobRun reaches Glue only after the sweep has fenced its run off "
                                "(a call retried or throttled past the claim grace)",
    "job-start-answer-lost": "StartJobRun creates the job run, but its answer is lost (HTTP 500): "
                             "botocore retries and Glue creates a second job run for the same run",
    "handler-crash": "StartCrawlerFunction handles half of its batch, then crashes",
    "sqs-duplicate": "the ingest queue delivers a message a second time",
    "job-fails": "the Glue job fails just after it has begun its run (an executor lost; "
                 "`arm(..., message=...)` sets the error)",
    "job-fails-after-write": "the Glue job fails after writing and registering output, before its "
                             "commit point",
    "job-timeout-after-commit": "the Glue job times out after its commit point, before registering its "
                                "partitions and marking its files DONE",
}

# operation -> (fault, error code, HTTP status)
_API_FAULTS = {
    "glue.StartCrawler": [("crawler-running", "CrawlerRunningException", 400)],
    "glue.StartJobRun": [("job-concurrency", "ConcurrentRunsExceededException", 400),
                         ("job-throttled", "ThrottlingException", 400)],
}
JOB_THREAD = "glue-jobs"
# Set by the job runner around a run: the job's calls, from its own thread or the threads it starts
# (which carry its context), are the ones the job faults apply to.
IN_JOB_RUN: ContextVar[bool] = ContextVar("sluice_in_job_run", default=False)


class InjectedTimeout(Exception):
    """Raised inside a job run; the job runner reports the run as TIMEOUT."""


class Faults:
    def __init__(self, armed: dict[str, int] | None = None) -> None:
        self._armed: Counter[str] = Counter()
        self.fired: Counter[str] = Counter()
        self.messages: dict[str, str] = {}  # fault -> the error message it raises, where it takes one
        self.ledger_table = ""  # the runtime sets it: job-start-outlasts-grace watches run records there
        self.outlasted: list[str] = []  # what each job-start-outlasts-grace saw: the record's last state
        self._lock = threading.Lock()
        for name, times in (armed or {}).items():
            self.arm(name, times)

    @classmethod
    def parse(cls, specs: list[str]) -> Faults:
        """`["crawler-running=3", "handler-crash"]` -> armed faults (a bare name means once)."""
        armed: dict[str, int] = {}
        for spec in specs:
            name, _, times = spec.partition("=")
            armed[name] = int(times or 1)
        return cls(armed)

    def arm(self, name: str, times: int = 1, message: str | None = None) -> None:
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            self._armed[name] += times
            if message is not None:
                self.messages[name] = message

    def disarm(self, name: str) -> None:
        with self._lock:
            self._armed.pop(name, None)

    def take(self, name: str) -> bool:
        """True (and one fewer left) if the fault is armed: the caller makes it happen now."""
        with self._lock:
            if self._armed[name] <= 0:
                return False
            self._armed[name] -= 1
            self.fired[name] += 1
            return True

    def armed(self) -> dict[str, int]:
        with self._lock:
            return {name: n for name, n in self._armed.items() if n > 0}

    # --- AWS API errors --------------------------------------------------------------------

    def install(self) -> None:
        """Make these the process's faults. The hook goes on the default boto3 session before
        any handler has made its clients (clients copy the session's hooks when created)."""
        global _active
        _active = self
        # A before-send handler that returns an AWSResponse answers the request unsent (botocore,
        # "Botocore Events": https://docs.aws.amazon.com/botocore/latest/topics/events.html); the
        # type stubs declare handlers as returning None.
        boto3._get_default_session().events.register(
            "before-send", _before_send, unique_id="sluice-faults")  # type: ignore[arg-type]

    def before_send(self, request: Any, event_name: str) -> AWSResponse | None:
        operation = event_name.removeprefix("before-send.")
        for fault, code, status in _API_FAULTS.get(operation, []):
            if self.take(fault):
                return _error(request.url, code, status)
        if operation == "glue.StartJobRun":
            return self._start_job_run_fault(request)
        if IN_JOB_RUN.get():
            return self._job_fault(request, operation)
        return None

    def _start_job_run_fault(self, request: Any) -> AWSResponse | None:
        """The two StartJobRun faults that used to write rows twice (issue 22). They act on the
        emulator's own objects (moto's backends, in this process), not through a client, so they
        are nobody's calls: no principal's grants are used for them."""
        body = json.loads(request.body.decode() if isinstance(request.body, bytes) else request.body)
        if self.take("job-start-outlasts-grace"):
            self.outlasted.append(_wait_until_abandoned(self.ledger_table, body["Arguments"]["--run_id"]))
            return None  # now it reaches Glue: the job run is created, and meets the fence
        if self.take("job-start-answer-lost"):
            from moto.glue.models import glue_backends

            glue_backends[ACCOUNT_ID][REGION].start_job_run(
                body["JobName"], body.get("Arguments"), None, None, None, None, None, None, None, None)
            return _error(request.url, "InternalServiceException", 500)  # botocore retries a 500
        return None

    def _job_fault(self, request: Any, operation: str) -> AWSResponse | None:
        manifest = operation == "s3.GetObject" and request.url.endswith("/manifest.json")
        if manifest and self.take("job-fails"):  # the job reads its manifest right after its fence
            raise RuntimeError(self.messages.get("job-fails", "injected: executor lost"))
        summary = operation == "s3.PutObject" and request.url.endswith("/summary.json")
        if summary and self.take("job-fails-after-write"):
            return _error(request.url, "AccessDenied", 403, xml=True)
        # Right after its summary the job lists its output records to register its partitions:
        # the run is committed, nothing of it is registered or DONE yet.
        registering = operation == "s3.ListObjectsV2" and "outputs" in request.url
        if registering and self.take("job-timeout-after-commit"):
            raise InjectedTimeout("job run timed out (injected) after its commit point, before its "
                                  "partitions were registered and its files marked DONE")
        return None


_active: Faults | None = None


def _wait_until_abandoned(table: str, run_id: str, cap_s: float = 180) -> str:
    """Hold the call until the run's record is ABANDONED (a sweep fenced the run off), as a call
    retried past the claim grace is held; at most cap_s. Returns the record's state then."""
    from moto.dynamodb.models import dynamodb_backends

    deadline = time.monotonic() + cap_s
    state = "missing"
    while time.monotonic() < deadline:
        item = dynamodb_backends[ACCOUNT_ID][REGION].get_item(table, {"file_id": {"S": f"run#{run_id}"}})
        state = item.attrs["run_state"].value if item is not None else "missing"
        if state == "ABANDONED":
            break
        time.sleep(0.1)
    return state


def _before_send(request: Any, event_name: str, **_: object) -> AWSResponse | None:
    return _active.before_send(request, event_name) if _active else None


class ClientFaults:
    """AWS errors on chosen operations of chosen clients, until clear()."""

    def __init__(self) -> None:
        self._hooks: list[tuple[Any, str, str]] = []

    def fail(self, client: Any, operation: str, code: str, times: int, after: int = 0,
             status: int = 400) -> dict[str, int]:
        """The calls after the first `after` answer `code`, `times` times; later calls go through.
        Returns the live counts {"failed": n, "total": n} of the operation's calls."""
        calls = {"failed": 0, "total": 0}

        def before_send(request: Any, **_: object) -> AWSResponse | None:
            calls["total"] += 1
            if calls["total"] <= after or calls["failed"] >= times:
                return None
            calls["failed"] += 1
            return _error(request.url, code, status)

        event_name = f"before-send.{client.meta.service_model.service_id.hyphenize()}.{operation}"
        unique_id = f"sluice-fault-{operation}-{len(self._hooks)}"
        client.meta.events.register(event_name, before_send, unique_id=unique_id)
        self._hooks.append((client, event_name, unique_id))
        return calls

    def clear(self) -> None:
        for client, event_name, unique_id in self._hooks:
            client.meta.events.unregister(event_name, unique_id=unique_id)
        self._hooks.clear()


def _error(url: str, code: str, status: int, xml: bool = False) -> AWSResponse:
    """An error response as the service would send it (S3 speaks XML, the others JSON)."""
    body = (f"<Error><Code>{code}</Code><Message>injected {code}</Message></Error>".encode() if xml
            else json.dumps({"__type": code, "message": f"injected {code}"}).encode())
    headers = HTTPHeaders.from_dict({"x-amzn-query-error": f"{code};Sender"})
    return AWSResponse(url, status, headers, _Body(body))


class _Body:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self.body
