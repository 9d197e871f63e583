"""The Glue crawler: moto accepts StartCrawler but never crawls. The runner watches the crawler,
and when a start leaves it RUNNING, announces "Started", crawls for real (sluice.aws.glue_crawl),
puts the crawler back to READY and announces "Succeeded" or "Failed" with the detail fields AWS
sends, on the default event bus, where the template's rules pick them up. The crawl's S3 reads
and catalog writes are made as the crawler's role.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

from moto.glue.models import glue_backends

from sluice.aws.account import ACCOUNT_ID, REGION
from sluice.aws.emulator import Emulator
from sluice.aws.glue_crawl import CrawlReport, crawl
from sluice.aws.iam import Principal
from sluice.aws.iam_hook import client_as
from sluice.aws.moto_patch import replace
from sluice.timeline import Timeline

LOG_LINK = "https://console.aws.amazon.com/cloudwatch/home?region={r}#logEventViewer:group=/aws-glue/crawlers;stream={n}"


# --- crawler state and the events AWS emits --------------------------------------------------

def is_running(crawler_name: str) -> bool:
    """Read from moto's model in this process: a GetCrawler over HTTP every 50 ms would compete
    with the job for the interpreter."""
    return glue_backends[ACCOUNT_ID][REGION].crawlers[crawler_name].status == "RUNNING"


def finish(crawler_name: str, succeeded: bool) -> None:
    """Put the crawler back to READY with its LastCrawl outcome (the API cannot; moto's model can,
    and moto's server runs in this process)."""
    crawler = glue_backends[ACCOUNT_ID][REGION].crawlers[crawler_name]
    if crawler.crawls and crawler.crawls[-1].status == "RUNNING":
        last = crawler.crawls[-1]
        last.status = "COMPLETED" if succeeded else "FAILED"
        last.end_time = datetime.now(UTC)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(detail: dict) -> dict:
    return {"Source": "aws.glue", "DetailType": "Glue Crawler State Change",
            "Detail": json.dumps(detail), "Resources": []}


def started_event(crawler_name: str) -> dict:
    return _entry({"accountId": ACCOUNT_ID, "crawlerName": crawler_name, "startTime": _now(),
                   "state": "Started", "message": "Crawler Started"})


def succeeded_event(crawler_name: str, report: CrawlReport) -> dict:
    return _entry({
        "tablesCreated": str(report.tables_created), "warningMessage": "; ".join(report.warnings) or "N/A",
        "partitionsUpdated": str(report.partitions_updated), "tablesUpdated": str(report.tables_updated),
        "message": "Crawler Succeeded", "partitionsDeleted": str(report.partitions_deleted),
        "accountId": ACCOUNT_ID, "runningTime (sec)": str(round(report.duration)),
        "tablesDeleted": str(report.tables_deleted), "crawlerName": crawler_name,
        "completionDate": _now(), "state": "Succeeded",
        "partitionsCreated": str(report.partitions_created),
        "cloudWatchLogLink": LOG_LINK.format(r=REGION, n=crawler_name)})


def failed_event(crawler_name: str, error: str) -> dict:
    return _entry({"crawlerName": crawler_name, "errorMessage": error, "accountId": ACCOUNT_ID,
                   "cloudWatchLogLink": LOG_LINK.format(r=REGION, n=crawler_name), "state": "Failed",
                   "message": "Crawler Failed"})


# --- the run loop ---------------------------------------------------------------------------------

class CrawlerRunner:
    """One crawler's run loop (see the module's docstring)."""

    def __init__(self, aws: Emulator, name: str, timeline: Timeline, role: Principal | None = None) -> None:
        self.aws = aws
        self.events = aws.client("events")
        # The crawl's S3 reads and catalog writes are the crawler's role's (None: unchecked).
        self.as_role = (client_as(role, "glue", aws.endpoint), client_as(role, "s3", aws.endpoint)) \
            if role else (None, None)
        self.name = name
        self.timeline = timeline
        self.crawls = 0
        self.paused = threading.Event()  # fault injection: a crawl that stays under way

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        return [threading.Thread(target=self._loop, args=(stop,), daemon=True, name=f"crawler-{self.name}")]

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if is_running(self.name) and not self.paused.is_set():
                self.crawl_once()
            else:
                time.sleep(0.05)

    def crawl_once(self) -> None:
        self.crawls += 1
        self._put(started_event(self.name))
        self.timeline.emit("crawler", f"{self.name} Started (crawl #{self.crawls})")
        try:
            report = crawl(self.aws, self.name, *self.as_role)
        except Exception as error:  # a failed crawl is announced, never raised into the loop
            finish(self.name, succeeded=False)
            self._put(failed_event(self.name, str(error)))
            self.timeline.emit("error", f"{self.name} Failed: {error}")
            return
        finish(self.name, succeeded=True)
        self._put(succeeded_event(self.name, report))
        self.timeline.emit("crawler", f"{self.name} Succeeded: {report.tables_created} tables created, "
                                      f"{report.tables_updated} updated, {report.partitions_created} "
                                      f"partitions created [{report.duration:.2f} s]")

    def _put(self, entry: dict) -> None:
        self.events.put_events(Entries=[entry])


# --- where moto differs from AWS ------------------------------------------------------------

def correct_moto() -> None:
    """Apply this service's corrections to moto (idempotent; sluice.aws.corrections)."""
    _crawls_end_when_the_crawler_finishes()
    _last_crawl_as_aws_reports_it()


def _crawls_end_when_the_crawler_finishes() -> None:
    """A crawl ends when the runtime's crawler finishes it (`finish`); in moto, merely listing a
    crawl (ListCrawls) would end it (moto's state progression, held here until told)."""
    from moto.moto_api import state_manager

    state_manager.set_transition(model_name="glue::crawl",
                                 transition={"progression": "manual", "times": 10**9})


def _last_crawl_as_aws_reports_it() -> None:
    """GetCrawler's LastCrawl is the last finished crawl, its Status SUCCEEDED, CANCELLED or
    FAILED; moto shows the newest crawl there, even one still running, with its ListCrawls state
    (COMPLETED, STOPPED), which a handler reading the API would misread."""
    from moto.glue.models import FakeCrawler

    words: dict[str | None, str | None] = {"COMPLETED": "SUCCEEDED", "STOPPED": "CANCELLED"}

    def last_finished(original: Any) -> Any:
        def as_dict(self: FakeCrawler) -> dict:
            data = original(self)
            data.pop("LastCrawl", None)
            finished = [c for c in self.crawls if c.status not in ("RUNNING", "STOPPING")]
            if finished:
                last = finished[-1]
                data["LastCrawl"] = {"StartTime": last.start_time,
                                     "Status": words.get(last.status, last.status),
                                     "LogGroup": last.log_group, "LogStream": last.log_stream,
                                     "MessagePrefix": last.message_prefix}
            return data

        return as_dict

    replace(FakeCrawler, "as_dict", last_finished)
