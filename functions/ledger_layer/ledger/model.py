"""The file ledger's vocabulary: what a file is, the states it moves through, and the pure rules.

No boto3 here: these types and rules are shared by both Lambda functions, the Glue job and the
local runtime, and are unit-tested in milliseconds.

    >>> ref = FileRef(bucket="raw", key="orders/2026/a.csv", etag="9b2c", size=120)
    >>> ref.file_id
    's3://raw/orders/2026/a.csv#9b2c'
    >>> state_after_failed_run(attempts=1, max_attempts=3)
    (<State.PENDING: 'PENDING'>, 2)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum

# A Glue job run in one of these states holds one of the job's MaxConcurrentRuns slots; every
# other state is final (https://docs.aws.amazon.com/glue/latest/dg/job-run-statuses.html).
ACTIVE_JOB_RUN_STATES = frozenset({"STARTING", "RUNNING", "STOPPING", "WAITING"})
# The rest of the API's JobRunState values (botocore's Glue model): the run is over.
FINAL_JOB_RUN_STATES = frozenset({"SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED", "ERROR", "EXPIRED"})


class State(str, Enum):
    """Where a file is in the pipeline (see docs/guarantees.md, "Exactly once per file")."""

    PENDING = "PENDING"  # recorded, waiting for a run to claim it
    CLAIMED = "CLAIMED"  # owned by exactly one run (run_id)
    DONE = "DONE"  # processed; rows_in/rows_out/rows_bad recorded
    FAILED = "FAILED"  # gave up after max attempts; reason recorded
    SKIPPED = "SKIPPED"  # never processed on purpose (marker, temp, empty); reason recorded


@dataclass(frozen=True)
class FileRef:
    """One input file. Its identity is (bucket, key, ETag): the same bytes uploaded again are the
    same file; new bytes under an old key are a new file."""

    bucket: str
    key: str
    etag: str
    size: int = 0
    version_id: str | None = None

    @property
    def file_id(self) -> str:
        return f"s3://{self.bucket}/{self.key}#{self.etag}"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def to_dict(self) -> dict:
        return {
            "file_id": self.file_id,
            "bucket": self.bucket,
            "key": self.key,
            "etag": self.etag,
            "size": self.size,
            "version_id": self.version_id,
        }

    @classmethod
    def from_dict(cls, data: dict) -> FileRef:
        return cls(
            bucket=data["bucket"],
            key=data["key"],
            etag=data["etag"],
            size=int(data.get("size") or 0),
            version_id=data.get("version_id"),
        )


@dataclass(frozen=True)
class RowCounts:
    """What the job did with one file's rows. rows_in == rows_out + rows_bad + rows_duplicate.

    >>> RowCounts.from_dict({"rows_in": 3, "rows_out": 2, "rows_bad": 1})  # an older summary
    RowCounts(rows_in=3, rows_out=2, rows_bad=1, rows_duplicate=0)
    """

    rows_in: int
    rows_out: int
    rows_bad: int
    rows_duplicate: int = 0

    def __add__(self, other: RowCounts) -> RowCounts:
        return RowCounts(self.rows_in + other.rows_in, self.rows_out + other.rows_out,
                         self.rows_bad + other.rows_bad, self.rows_duplicate + other.rows_duplicate)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RowCounts:
        """From a summary's file entry or a DONE ledger item (extra keys are ignored)."""
        return cls(int(data["rows_in"]), int(data["rows_out"]), int(data["rows_bad"]),
                   int(data.get("rows_duplicate") or 0))


def state_after_failed_run(attempts: int, max_attempts: int) -> tuple[State, int]:
    """A claimed file whose run failed goes back to PENDING, or to FAILED once it has used up
    its attempts. Returns (new state, new attempts).

    >>> state_after_failed_run(attempts=2, max_attempts=3)
    (<State.FAILED: 'FAILED'>, 3)
    """
    attempts += 1
    return (State.FAILED if attempts >= max_attempts else State.PENDING), attempts


@dataclass
class RunBudget:
    """How much one run may take: at most max_files files and max_bytes bytes, except that a single
    file larger than max_bytes still gets a run of its own (otherwise it could never be processed).

    >>> budget = RunBudget(max_files=10, max_bytes=100)
    >>> [budget.take(FileRef("b", k, "e", size=40)) for k in "abc"]
    [True, True, False]
    """

    max_files: int
    max_bytes: int
    files: int = 0
    bytes: int = 0

    def fits(self, ref: FileRef) -> bool:
        if self.files >= self.max_files:
            return False
        return self.files == 0 or self.bytes + ref.size <= self.max_bytes

    def take(self, ref: FileRef) -> bool:
        """Count ref against the budget if it fits; say whether it did."""
        if not self.fits(ref):
            return False
        self.files += 1
        self.bytes += ref.size
        return True

    @property
    def full(self) -> bool:
        return self.files >= self.max_files or self.bytes >= self.max_bytes
