"""Adapter: start the raw crawler through the Glue API."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from intake import CrawlerStart


class GlueCrawler:
    """Throttling is retried by the boto3 client (standard retry mode, see app.py); what is still
    failing after that raises, and the record is reported as a batch item failure."""

    def __init__(self, glue: Any, name: str) -> None:
        self.glue = glue
        self.name = name

    def start(self) -> CrawlerStart:
        try:
            self.glue.start_crawler(Name=self.name)
        except ClientError as error:
            if error.response["Error"]["Code"] == "CrawlerRunningException":
                return CrawlerStart.ALREADY_RUNNING
            raise
        return CrawlerStart.STARTED
