"""The run summary: what one Glue job run did, file by file. The job writes it next to the run's
manifest (runs/<run_id>/summary.json) as its commit point; StartJobFunction emails it and
finishes a run from it, and the local runtime settles interrupted runs from it.

The JSON shape is a published contract (operators read summary.json, and a summary written by
an older job must still load): `to_json` writes exactly that shape, `from_json` also reads the
older ones (no file_id, no rows_duplicate, no returned or not-held files).

    >>> entry = FileSummary("s3://raw/orders/a.csv", "s3://raw/orders/a.csv#e1", "orders",
    ...                     RowCounts(rows_in=3, rows_out=2, rows_bad=1))
    >>> summary = RunSummary("run-1", files=[entry], quarantine="s3://processed/_quarantine/")
    >>> RunSummary.from_json(summary.to_json()) == summary
    True
    >>> summary.totals
    RowCounts(rows_in=3, rows_out=2, rows_bad=1, rows_duplicate=0)
"""

from __future__ import annotations

import builtins
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ledger.model import RowCounts


@dataclass(frozen=True)
class FileSummary:
    """One manifest file the run processed, with its row counts (`note` when it had no rows)."""

    file: str
    file_id: str
    table: str
    counts: RowCounts
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "file_id": self.file_id, "table": self.table,
                **self.counts.to_dict(), **({"note": self.note} if self.note else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileSummary:
        return cls(file=data["file"], file_id=data.get("file_id", ""), table=data.get("table", ""),
                   counts=RowCounts.from_dict(data), note=data.get("note"))


@dataclass(frozen=True)
class ReturnedFile:
    """A manifest file the run did not process and gave back to the ledger, with the reason."""

    file: str
    reason: str


@dataclass(frozen=True)
class TableSummary:
    """What the run wrote for one catalog table."""

    files: int
    partitions_written: int
    partitions_new: int
    quarantine: str


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    job_run_id: str = ""
    tables: dict[str, TableSummary] = field(default_factory=dict)
    files: list[FileSummary] = field(default_factory=list)
    output_partitions: list[str] = field(default_factory=list)
    returned: list[ReturnedFile] = field(default_factory=list)
    # Manifest files the run did not hold when it began (another run's, or given back): never
    # written by it, left to their holder.
    not_held: list[ReturnedFile] = field(default_factory=list)
    bytes: int = 0
    duration_s: float = 0.0
    quarantine: str = ""
    # The run's record was ABANDONED when its job run began: it did nothing, and wrote no summary.
    fenced_off: bool = False

    @property
    def totals(self) -> RowCounts:
        return sum((f.counts for f in self.files), RowCounts(0, 0, 0))

    @property
    def has_notes(self) -> bool:
        return any(f.note for f in self.files)

    @property
    def outcome(self) -> str:
        """What the run did with its manifest: "processed" (every file), "partly returned" (some
        files went back to the ledger), "returned" (every file went back: nothing was processed,
        even though the job run itself SUCCEEDED), "fenced off" (the run did nothing: its record
        was abandoned) or "empty".

        >>> RunSummary("r", returned=[ReturnedFile("s3://raw/t/a.csv", "table t failed: ...")]).outcome
        'returned'
        """
        if self.fenced_off:
            return "fenced off"
        if self.returned:
            return "partly returned" if self.files else "returned"
        return "processed" if self.files else "empty"

    def to_dict(self) -> dict[str, Any]:
        """The summary.json shape, keys in the order the job has always written them."""
        return {
            "run_id": self.run_id, "job_run_id": self.job_run_id,
            "tables": {name: asdict(table) for name, table in self.tables.items()},
            "files": [f.to_dict() for f in self.files],
            "output_partitions": list(self.output_partitions),
            "returned": [asdict(r) for r in self.returned],
            **({"not_held": [asdict(r) for r in self.not_held]} if self.not_held else {}),
            "totals": {**self.totals.to_dict(), "files": len(self.files), "returned": len(self.returned)},
            "bytes": self.bytes, "duration_s": self.duration_s, "quarantine": self.quarantine,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        """`totals` is not read back: it is always the sum of `files`."""
        return cls(
            run_id=data["run_id"], job_run_id=data.get("job_run_id") or "",
            tables={name: TableSummary(**t) for name, t in data.get("tables", {}).items()},
            files=[FileSummary.from_dict(f) for f in data.get("files", [])],
            output_partitions=list(data.get("output_partitions", [])),
            returned=[ReturnedFile(r["file"], r["reason"]) for r in data.get("returned", [])],
            not_held=[ReturnedFile(r["file"], r["reason"]) for r in data.get("not_held", [])],
            bytes=int(data.get("bytes") or 0), duration_s=float(data.get("duration_s") or 0),
            quarantine=data.get("quarantine", ""))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    @classmethod
    def from_json(cls, text: str | builtins.bytes) -> RunSummary:  # `bytes` is a field here
        return cls.from_dict(json.loads(text))
