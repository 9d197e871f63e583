"""The live timeline: one line per event as it flows through the pipeline, with timings.

A line is never wrapped, whatever the width of the terminal or the absence of one (a log file,
CI), so an S3 URI or an id stays whole and can be copied or searched.

    >>> describe_result({"runs": [{"run_id": "r-1", "job_run_id": "jr_0123456789abcdef",
    ...                            "manifest_uri": "s3://a/runs/r-1/manifest.json",
    ...                            "files": 3, "bytes": 2048}]})
    'started 1 run: r-1 (3 files, 2.0 KiB) as job run jr_012345678…'
    >>> describe_result({"released": {"PENDING": 2, "FAILED": 1}})
    "released the run's files: 2 PENDING, 1 FAILED"
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

STYLES = {"s3": "cyan", "sqs": "blue", "lambda": "magenta", "crawler": "yellow", "events": "white",
          "job": "green", "sns": "bright_green", "error": "bold red", "runtime": "dim"}


def unwrapped_console() -> Console:
    """A console that does not wrap printed text: without a terminal, rich would assume 80 columns
    and cut long lines in two."""
    return Console(highlight=False, soft_wrap=True)


class Timeline:
    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self.console = console or unwrapped_console()
        self.quiet = quiet
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def emit(self, step: str, message: str) -> None:
        if self.quiet:
            return
        elapsed = time.monotonic() - self.started
        style = STYLES.get(step, "white")
        with self._lock:  # the message is text, not markup: "[...]" in an error stays as it is
            self.console.print(f"[dim]{elapsed:7.2f}s[/] [{style}]{step:>8}[/] {escape(message)}")


def describe_result(result: Any) -> str:
    """What a StartJobFunction result says, in words: the runs it started (id, files, size, job
    run), the files it released, a sweep, why it ignored the event, and the email it sent. Anything
    else is shown whole as JSON."""
    if isinstance(result, dict) and len(result) > 1 and isinstance(result.get("email"), dict):
        rest = {k: v for k, v in result.items() if k != "email"}
        return f"{describe_result(rest)}; {describe_result({'email': result['email']})}"
    if not isinstance(result, dict) or len(result) != 1:
        return json.dumps(result, default=str)
    [(kind, value)] = result.items()
    if kind == "email" and isinstance(value, dict):
        sent = "emailed" if value.get("sent") else "already emailed"
        return f"{sent} {value.get('about')}: {value.get('outcome')}"
    if kind == "runs" and isinstance(value, list):
        if not value:
            return "no run started (nothing to claim, or no free slot)"
        runs = "; ".join(f"{r.get('run_id')} ({_count(r.get('files', 0), 'file')}, "
                         f"{_size(r.get('bytes', 0))}) as job run {str(r.get('job_run_id', '?'))[:12]}…"
                         for r in value)
        return f"started {_count(len(value), 'run')}: {runs}"
    if kind == "released" and isinstance(value, dict):
        moved = ", ".join(f"{n} {state}" for state, n in value.items() if n) or "none"
        return f"released the run's files: {moved}"
    if kind == "sweep":
        return f"sweep: {value}"
    if kind == "ignored":
        return f"ignored: {value}"
    return json.dumps(result, default=str)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"
