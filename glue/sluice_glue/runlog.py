"""The job's structured log: one JSON object per line, each with the run id, so a run's lines
are found in CloudWatch (/aws-glue/jobs/output) by `{ $.run_id = "..." }`.

    >>> import io, logging
    >>> stream = io.StringIO()
    >>> log = RunLog("run-1", logging.getLogger("doctest.runlog"))
    >>> log.logger.addHandler(logging.StreamHandler(stream)); log.logger.setLevel(logging.INFO)
    >>> with log.phase("headers", table="orders", files=2): pass
    >>> sorted(json.loads(stream.getvalue()))
    ['event', 'files', 'ms', 'phase', 'run_id', 'spark', 'table']
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LOGGER = logging.getLogger("sluice_glue")


class RunLog:
    """Events and timed phases of one run. `spark=True` marks a phase that runs Spark actions:
    what is left (`driver_ms`) is the driver's own work (AWS calls, planning)."""

    def __init__(self, run_id: str, logger: logging.Logger = LOGGER) -> None:
        self.run_id = run_id
        self.logger = logger
        self.began = time.monotonic()
        self.spark_ms = 0.0
        self.phases: dict[str, float] = {}

    def event(self, event: str, level: int = logging.INFO, **fields: Any) -> None:
        self.logger.log(level, json.dumps({"event": event, "run_id": self.run_id, **fields}, default=str))

    @contextmanager
    def phase(self, name: str, spark: bool = False, **fields: Any) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            ms = (time.monotonic() - start) * 1000
            self.phases[name] = self.phases.get(name, 0.0) + ms
            self.spark_ms += ms if spark else 0.0
            self.event("phase", phase=name, ms=round(ms, 1), spark=spark, **fields)

    @property
    def driver_ms(self) -> float:
        return (time.monotonic() - self.began) * 1000 - self.spark_ms


def log_to_stdout() -> None:
    """JSON lines on stdout at INFO (Glue sends a job's stdout to CloudWatch); only for the
    script run as Glue runs it, so the local runtime's screen stays as it is."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
