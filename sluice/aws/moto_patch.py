"""How a correction changes moto (the `correct_moto` section at the end of each service's module):
it replaces one of moto's methods once per process, whoever applies it again, and where moto's
threaded server lets two requests race, serialises the methods under one lock. Also what every
correction must know of moto's ways: its datetimes are naive, and mean UTC.

    >>> class Backend:
    ...     def answer(self): return 1
    >>> for _ in range(2):  # applied twice, replaced once
    ...     replace(Backend, "answer", lambda original: lambda self: original(self) + 1)
    >>> Backend().answer()
    2
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

_APPLYING = threading.Lock()  # two emulators starting at once apply a correction once


def replace(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    """`owner.name = make(original)`, unless this correction was applied already. `owner` is a
    class or a module; the mark is kept on `owner` itself, so a subclass's own is not confused
    with its base's."""
    with _APPLYING:
        done = vars(owner).get("sluice_corrected", frozenset())
        if name in done:
            return
        setattr(owner, name, make(getattr(owner, name)))
        # moto's classes take new attributes as any class does; the stubs do not know this one.
        owner.sluice_corrected = done | {name}


def serialise(owner: Any, names: Iterable[str], lock: Any) -> None:
    """Each named method of `owner` runs under `lock`, one call at a time."""

    def locked(original: Any) -> Callable[..., Any]:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(self, *args, **kwargs)

        return call

    for name in names:
        replace(owner, name, locked)


def utc(moment: datetime) -> datetime:
    """A datetime moto made (naive, in UTC) as the aware one it means; an aware one as it is."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
