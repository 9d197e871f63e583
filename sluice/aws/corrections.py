"""Where moto differs from AWS, corrected: every emulated service's corrections, applied by whoever
starts an emulator (the runtime, the tests' emulator, the benchmarks) before it serves a request.

Each correction lives in its service's module, in the `correct_moto` section at its end, with its
reason; this module only knows which services have some. A correction replaces moto's own code,
process-wide and once (sluice.aws.moto_patch), so applying them again is harmless.

    >>> correct_moto()                                   # doctest: +SKIP
    >>> with Emulator() as aws: ...                      # doctest: +SKIP
"""

from __future__ import annotations

from sluice.aws import cloudwatch, dynamodb, events, glue_catalog, glue_crawler, glue_jobs, sqs

SERVICES = (cloudwatch, dynamodb, events, glue_catalog, glue_crawler, glue_jobs, sqs)


def correct_moto() -> None:
    """Apply every service's corrections (idempotent)."""
    for service in SERVICES:
        service.correct_moto()
