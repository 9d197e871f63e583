"""Adapter: the raw crawler through the Glue API, shared by StartCrawlerFunction (is a crawl
covering this file? start one) and StartJobFunction (what has been catalogued? the sweep's crawl).

Throttling is retried by the boto3 client each function builds (standard retry mode); what is
still failing after that raises.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from ledger.crawl import CrawlerStart, CrawlerState

RUNNING = [{"FieldName": "STATE", "FilterOperator": "EQ", "FieldValue": "RUNNING"}]


class GlueCrawler:
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

    def catalogued_before(self) -> datetime | None:
        """When the last finished crawl began, if it succeeded: every object created before then
        is in the catalog. A crawl under way catalogues nothing until it ends, and GetCrawler's
        LastCrawl is the last finished one (https://docs.aws.amazon.com/glue/latest/webapi/API_LastCrawlInfo.html)."""
        last = self.glue.get_crawler(Name=self.name)["Crawler"].get("LastCrawl", {})
        return last.get("StartTime") if last.get("Status") == "SUCCEEDED" else None

    def start(self) -> CrawlerStart:
        try:
            self.glue.start_crawler(Name=self.name)
        except ClientError as error:
            if error.response["Error"]["Code"] == "CrawlerRunningException":
                return CrawlerStart.ALREADY_RUNNING
            raise
        return CrawlerStart.STARTED
