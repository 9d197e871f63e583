"""The live timeline: one line per event as it flows through the pipeline, with timings."""

from __future__ import annotations

import threading
import time

from rich.console import Console

STYLES = {"s3": "cyan", "sqs": "blue", "lambda": "magenta", "crawler": "yellow", "events": "white",
          "job": "green", "sns": "bright_green", "error": "bold red", "runtime": "dim"}


class Timeline:
    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self.console = console or Console(highlight=False)
        self.quiet = quiet
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def emit(self, step: str, message: str) -> None:
        if self.quiet:
            return
        elapsed = time.monotonic() - self.started
        style = STYLES.get(step, "white")
        with self._lock:
            self.console.print(f"[dim]{elapsed:7.2f}s[/] [{style}]{step:>8}[/] {message}")
