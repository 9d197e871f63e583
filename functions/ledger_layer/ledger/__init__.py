"""The file ledger shared by StartCrawlerFunction, StartJobFunction, the Glue job and the local
runtime: one DynamoDB item per input file, moved PENDING -> CLAIMED -> DONE (or FAILED/SKIPPED)."""

from ledger.manifest import RunManifest, manifest_key, new_run_id, summary_key
from ledger.model import FileRef, RowCounts, RunBudget, State, state_after_failed_run

__all__ = [
    "FileRef", "RowCounts", "RunBudget", "RunManifest", "State",
    "manifest_key", "new_run_id", "state_after_failed_run", "summary_key",
]
