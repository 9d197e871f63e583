"""StartCrawlerFunction: S3 events from IngestQueue -> ledger -> start the raw crawler.

The decisions live in intake.py; this file only wires the event, the adapters and the response.
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import cache

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from intake import BatchIntake

from ledger.glue_crawler import GlueCrawler
from ledger.table import DynamoLedger

logger = Logger()
RETRIES = Config(retries={"mode": "standard", "max_attempts": 6})  # throttling: backoff, then fail


@cache
def _ledger(table: str) -> DynamoLedger:
    return DynamoLedger(boto3.resource("dynamodb", config=RETRIES).Table(table))


@cache
def _crawler(name: str) -> GlueCrawler:
    return GlueCrawler(boto3.client("glue", config=RETRIES), name)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    intake = BatchIntake(_ledger(os.environ["LEDGER_TABLE"]), _crawler(os.environ["CRAWLER_NAME"]),
                         bodies=[record.get("body", "") for record in event.get("Records", [])],
                         interval=timedelta(seconds=int(os.environ.get("CRAWL_INTERVAL_SECONDS", "0"))))

    def handle(record: SQSRecord) -> None:
        logger.append_keys(message_id=record.message_id)
        decisions = intake.handle_message(record.body)
        logger.info("message recorded", extra={"decisions": [repr(d) for d in decisions]})

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=handle, processor=processor,
                                    context=context)
