"""The file ledger shared by StartCrawlerFunction, StartJobFunction, the Glue job and the local
runtime: one DynamoDB item per input file, moved PENDING -> CLAIMED -> DONE (or FAILED/SKIPPED).

The modules that need no boto3 are exported here; the adapters (ledger.table, ledger.s3,
ledger.glue_crawler) are imported by name."""

from ledger.crawl import CrawlerStart, CrawlerState
from ledger.manifest import RunManifest, manifest_key, new_run_id, summary_key
from ledger.model import (
    ACTIVE_JOB_RUN_STATES,
    FINAL_JOB_RUN_STATES,
    FileRef,
    RowCounts,
    RunBudget,
    State,
    state_after_failed_run,
)
from ledger.settle import CountAttempt, settle_ended_run
from ledger.summary import FileSummary, ReturnedFile, RunSummary, TableSummary

__all__ = [
    "ACTIVE_JOB_RUN_STATES", "FINAL_JOB_RUN_STATES", "CountAttempt", "CrawlerStart", "CrawlerState",
    "FileRef", "FileSummary", "ReturnedFile", "RowCounts", "RunBudget", "RunManifest", "RunSummary",
    "State", "TableSummary",
    "manifest_key", "new_run_id", "settle_ended_run", "state_after_failed_run", "summary_key",
]
