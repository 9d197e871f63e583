"""The pipeline `sluice up` runs, seen from another process (`sluice status`, `ingest`, `iam`,
`query`...): the state file it writes while it is up (.sluice/runtime.json: its endpoint, pid,
stack outputs, outbox and what a query needs), clients of its emulator, and the IAM audit it
last wrote (.sluice/iam.json).
"""

from __future__ import annotations

import json
from typing import Any

from sluice import STATE_DIR
from sluice.aws import account

NOT_RUNNING = "No running pipeline: start one with `sluice up` (or `make run`)."


def read_state() -> dict[str, Any] | None:
    """What the running pipeline wrote about itself (None: no pipeline is up)."""
    path = STATE_DIR / "runtime.json"
    return json.loads(path.read_text()) if path.exists() else None


def running() -> dict[str, Any]:
    """The running pipeline's state; without one, the command stops with NOT_RUNNING."""
    state = read_state()
    if state is None:
        raise SystemExit(NOT_RUNNING)
    return state


def clients(state: dict[str, Any]) -> tuple[Any, Any]:
    """`client(service)` and `resource(service)` of the pipeline's emulator, with its credentials."""
    session = account.fake_session()
    return (lambda service: account.client(service, state["endpoint"], session),
            lambda service: account.resource(service, state["endpoint"], session))


def audit() -> dict[str, Any]:
    """The running pipeline's IAM audit, as it last wrote it (Audit.to_dict())."""
    path = STATE_DIR / "iam.json"
    return json.loads(path.read_text()) if path.exists() else {}
