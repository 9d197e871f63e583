"""The raw crawler as both functions see it: whether it is crawling, and what its crawls list.
Pure types; the Glue adapter is ledger.glue_crawler.

    >>> from datetime import datetime
    >>> failed = CrawlerState(running=False, last_started=datetime(2026, 1, 1), last_succeeded=False)
    >>> failed.lists_objects_before is None  # a failed crawl vouches for nothing
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class CrawlerStart(Enum):
    STARTED = "started"
    ALREADY_RUNNING = "already running"


@dataclass(frozen=True)
class CrawlerState:
    running: bool
    running_since: datetime | None = None  # start of the crawl under way, when known
    last_started: datetime | None = None   # start of the last finished crawl
    last_succeeded: bool = False           # ... and whether it succeeded

    @property
    def lists_objects_before(self) -> datetime | None:
        """The crawl under way, or the last one if it succeeded, lists every object created
        before it started."""
        if self.running:
            return self.running_since
        return self.last_started if self.last_succeeded else None
