"""Adapter: the raw crawler through the Glue API."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from intake import CrawlerStart, CrawlerState

RUNNING = [{"FieldName": "STATE", "FilterOperator": "EQ", "FieldValue": "RUNNING"}]


class GlueCrawler:
    """Throttling is retried by the boto3 client (standard retry mode, see app.py); what is still
    failing after that raises, and the record is reported as a batch item failure."""

    def __init__(self, glue: Any, name: str) -> None:
        self.glue = glue
        self.name = name

    def state(self) -> CrawlerState:
        """READY: when the last crawl started and whether it succeeded (GetCrawler's LastCrawl).
        RUNNING or STOPPING: when the crawl under way started (ListCrawls, which alone names it)."""
        crawler = self.glue.get_crawler(Name=self.name)["Crawler"]
        if crawler["State"] == "READY":
            last = crawler.get("LastCrawl", {})
            return CrawlerState(running=False, last_started=last.get("StartTime"),
                                last_succeeded=last.get("Status") == "SUCCEEDED")
        crawls = self.glue.list_crawls(CrawlerName=self.name, Filters=RUNNING).get("Crawls", [])
        return CrawlerState(running=True, running_since=max((c["StartTime"] for c in crawls), default=None))

    def start(self) -> CrawlerStart:
        try:
            self.glue.start_crawler(Name=self.name)
        except ClientError as error:
            if error.response["Error"]["Code"] == "CrawlerRunningException":
                return CrawlerStart.ALREADY_RUNNING
            raise
        return CrawlerStart.STARTED
