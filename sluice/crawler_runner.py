"""The Glue crawler's run loop: moto accepts StartCrawler but never crawls. This watches the
crawler, and when a start leaves it RUNNING, announces "Started", crawls for real
(sluice.crawler), puts the crawler back to READY and announces "Succeeded" or "Failed" with the
detail fields AWS sends, on the default event bus, where the template's rules pick them up."""

from __future__ import annotations

import threading
import time

from sluice import crawler
from sluice.emulator import Emulator
from sluice.timeline import Timeline


class CrawlerRunner:
    def __init__(self, aws: Emulator, name: str, timeline: Timeline) -> None:
        self.aws = aws
        self.glue = aws.client("glue")
        self.events = aws.client("events")
        self.name = name
        self.timeline = timeline
        self.crawls = 0
        self.paused = threading.Event()  # fault injection: a crawl that stays under way

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        return [threading.Thread(target=self._loop, args=(stop,), daemon=True, name=f"crawler-{self.name}")]

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if crawler.is_running(self.name) and not self.paused.is_set():
                self.crawl_once()
            else:
                time.sleep(0.05)

    def crawl_once(self) -> None:
        self.crawls += 1
        self._put(crawler.started_event(self.name))
        self.timeline.emit("crawler", f"{self.name} Started (crawl #{self.crawls})")
        try:
            report = crawler.crawl(self.aws, self.name)
        except Exception as error:  # a failed crawl is announced, never raised into the loop
            crawler.finish(self.name, succeeded=False, error=str(error))
            self._put(crawler.failed_event(self.name, str(error)))
            self.timeline.emit("error", f"{self.name} Failed: {error}")
            return
        crawler.finish(self.name, succeeded=True, error=None)
        self._put(crawler.succeeded_event(self.name, report))
        self.timeline.emit("crawler", f"{self.name} Succeeded: {report.tables_created} tables created, "
                                      f"{report.tables_updated} updated, {report.partitions_created} "
                                      f"partitions created [{report.duration:.2f} s]")

    def _put(self, entry: dict) -> None:
        self.events.put_events(Entries=[entry])
