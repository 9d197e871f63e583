"""DynamoDB: the ledger's table lives in moto; this is where moto's DynamoDB is made to behave as
AWS's does."""

from __future__ import annotations

import threading
from typing import Any

# --- where moto differs from AWS ------------------------------------------------------------

def correct_moto() -> None:
    """Apply this service's corrections to moto (idempotent); Emulator.start calls it."""
    _atomic_dynamodb_writes()


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
