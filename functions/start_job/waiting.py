"""How long the oldest file has waited in PENDING and in CLAIMED, published on every sweep tick
as the custom metric Sluice/OldestWaitingFileAge (dimensions Ledger, State), which the template's
OldestPendingFileAlarm and OldestClaimedFileAlarm watch. A file waits that long only when
something is stuck: no crawl comes, runs keep failing, or a run died holding its files.

    >>> from datetime import datetime, UTC
    >>> class Ledger:
    ...     def by_state(self, state, updated_before=None, page_size=None):
    ...         oldest = {"updated_at": "2026-11-25T09:00:00.000+00:00"}
    ...         return iter([oldest] if state.value == "PENDING" else [])
    >>> waiting_ages(Ledger(), datetime(2026, 11, 25, 9, 10, tzinfo=UTC))
    {'PENDING': 600.0, 'CLAIMED': 0.0}
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

from ledger import State

NAMESPACE = "Sluice"  # StartJobRole may PutMetricData in this namespace only
METRIC = "OldestWaitingFileAge"
WAITING = (State.PENDING, State.CLAIMED)


class StateIndex(Protocol):
    def by_state(self, state: State, updated_before: datetime | None = None,
                 page_size: int | None = None) -> Iterator[dict]: ...


def waiting_ages(ledger: StateIndex, now: datetime) -> dict[str, float]:
    """Seconds since the oldest file of each waiting state entered it (0: none waits). The ByState
    index sorts a state's files by updated_at, so its first item is the oldest."""
    ages = {}
    for state in WAITING:
        oldest = next(ledger.by_state(state, page_size=1), None)
        since = datetime.fromisoformat(oldest["updated_at"]) if oldest else now
        ages[state.value] = max((now - since).total_seconds(), 0.0)
    return ages


def publish(cloudwatch: Any, ledger_name: str, ages: dict[str, float]) -> None:
    cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=[
        {"MetricName": METRIC, "Dimensions": [{"Name": "Ledger", "Value": ledger_name},
                                              {"Name": "State", "Value": state}],
         "Value": age, "Unit": "Seconds"} for state, age in ages.items()])
