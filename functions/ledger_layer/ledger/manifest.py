"""The run manifest: the exact files one Glue job run processes, written by StartJobFunction to
the artifacts bucket and read by the job (`--manifest_uri`). The run summary sits next to it.

    >>> m = RunManifest(run_id="run-1", created_at="2026-01-01T00:00:00Z", files=[])
    >>> RunManifest.from_json(m.to_json()) == m
    True
    >>> manifest_key("run-1"), summary_key("run-1")
    ('runs/run-1/manifest.json', 'runs/run-1/summary.json')
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ledger.model import FileRef


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: run-20261125T101500Z-3f9a1c2e."""
    now = now or datetime.now(UTC)
    return f"run-{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


def manifest_key(run_id: str) -> str:
    return f"runs/{run_id}/manifest.json"


def summary_key(run_id: str) -> str:
    return f"runs/{run_id}/summary.json"


@dataclass(frozen=True)
class RunManifest:
    run_id: str
    created_at: str
    files: list[FileRef] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(ref.size for ref in self.files)

    def to_json(self) -> str:
        return json.dumps(
            {"run_id": self.run_id, "created_at": self.created_at,
             "file_count": len(self.files), "total_bytes": self.total_bytes,
             "files": [ref.to_dict() for ref in self.files]},
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> RunManifest:
        data = json.loads(text)
        return cls(run_id=data["run_id"], created_at=data["created_at"],
                   files=[FileRef.from_dict(f) for f in data["files"]])
