"""Lambda handlers, imported from their CodeUri and called in-process, unchanged.

Each function's folder goes on sys.path the way Lambda puts it at /var/task, and the ledger layer
the way Lambda puts it at /opt/python. Handler files are all called app.py, so each is loaded
under a module name of its own; the modules beside it (intake.py, runs.py, ...) have distinct
names across functions.

    >>> handler = load_handler(ROOT / "functions/start_crawler", "app.lambda_handler")  # doctest: +SKIP
    >>> handler(event, FakeContext("sluice-dev-start-crawler"))                      # doctest: +SKIP

A handler runs as its function's execution role when wrapped by `as_role` (sluice.aws.iam_hook
then authorises each AWS call it makes, as Lambda's credentials would be).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluice import ROOT
from sluice.aws.account import ACCOUNT_ID, REGION
from sluice.aws.iam import Principal
from sluice.aws.iam_hook import acting_as

LAYER_DIRS = [ROOT / "functions" / "ledger_layer"]


@dataclass
class Function:
    """An AWS::Lambda::Function as deployed (sluice.stack.deploy): where its code is, its handler,
    environment and timeout."""

    logical_id: str
    name: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout: int
    dead_letter_queue: str | None = None  # the URL of its DeadLetterConfig queue (asynchronous events)


@dataclass
class FakeContext:
    """The parts of Lambda's context object that handlers and Powertools read. The remaining
    time counts down from the function's timeout as the invocation runs, as Lambda's does
    (Lambda developer guide, "Lambda context object in Python": get_remaining_time_in_millis)."""

    function_name: str
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    timeout_ms: int = 60_000
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if not self.invoked_function_arn:
            self.invoked_function_arn = (
                f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}")

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.timeout_ms - int((time.monotonic() - self.started) * 1000))


def load_handler(code_dir: Path, handler: str, cold: bool = False) -> Callable[[dict, Any], Any]:
    """Import `module.function` from code_dir, as Lambda would, and return the function.
    `cold` imports it afresh (a new execution environment: no clients cached from an earlier
    runtime, whose emulator may have had another endpoint)."""
    module_name, function_name = handler.rsplit(".", 1)
    for path in [*LAYER_DIRS, code_dir]:
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    unique = f"sluice_fn_{code_dir.name}_{module_name}"
    module = None if cold else sys.modules.get(unique)
    if module is None:
        spec = importlib.util.spec_from_file_location(unique, code_dir / f"{module_name}.py")
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {handler} from {code_dir}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        spec.loader.exec_module(module)
    return getattr(module, function_name)


def record_error(aws: Any, function_name: str) -> None:
    """What Lambda records for an invocation that ended in a function error: Errors +1 in AWS/Lambda,
    dimension FunctionName ("Types of metrics for Lambda functions", Lambda developer guide: "Errors -
    The number of invocations that result in a function error"). A batch whose items are reported
    failed (ReportBatchItemFailures) is not an error. Throttles never happen locally (no quotas)."""
    aws.client("cloudwatch").put_metric_data(Namespace="AWS/Lambda", MetricData=[{
        "MetricName": "Errors", "Dimensions": [{"Name": "FunctionName", "Value": function_name}],
        "Value": 1, "Unit": "Count"}])


def as_role(handler: Callable[[dict, Any], Any], role: Principal | None) -> Callable[[dict, Any], Any]:
    """The handler, its calls made as `role` (None: unchecked, as before)."""
    if role is None:
        return handler

    @functools.wraps(handler)
    def run(event: dict, context: Any) -> Any:
        with acting_as(role):
            return handler(event, context)

    return run


def with_timeout(handler: Callable[[dict, Any], Any], timeout_s: int,
                 overran: Callable[[str, float], None]) -> Callable[[dict, Any], Any]:
    """The handler invoked as Lambda invokes it with the function's Timeout: its context's
    remaining time counts down from it. Lambda stops an invocation at its timeout; a thread
    cannot be stopped, so an invocation that overruns here goes on, and `overran(function,
    seconds)` reports it - on AWS it would have ended there ("Task timed out"), and nothing the
    pipeline promises may depend on it having ended (the run records' fence does not)."""

    @functools.wraps(handler)
    def run(event: dict, context: Any) -> Any:
        timed = FakeContext(context.function_name, context.memory_limit_in_mb, context.aws_request_id,
                            context.invoked_function_arn, timeout_s * 1000)
        try:
            return handler(event, timed)
        finally:
            took = time.monotonic() - timed.started
            if took > timeout_s:
                overran(context.function_name, took)

    return run
