"""In-memory stand-ins for StartJobFunction's ports (runs.py), each keeping the rule its real
adapter keeps: the ledger's and the run records' transitions are conditional on the current
state, as DynamoDB's conditional writes make them (tests/integration checks the real ones).
`FakeJobRun` plays the Glue job's side of the protocol: the fence, the claim check, the write,
DONE - and records every file it wrote, so a test can say "every row once"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ledger import CrawlerStart, FileRef, RowCounts, RunBudget, RunManifest, State
from ledger.run_record import RunRecord, RunState

from runs import ConcurrencyLimitReached, JobRunState  # isort: skip

CREATED = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # when the fake ledger's files were created
CRAWLED = CREATED + timedelta(minutes=1)  # a crawl that began after: it catalogued them


class Clock:
    """The time every fake and the planner read; a test moves it."""

    def __init__(self, at: datetime = CRAWLED) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


class FakeLedger:
    def __init__(self, n: int, size: int = 10, now: Callable[[], datetime] = lambda: CRAWLED) -> None:
        self.refs = [FileRef("raw", f"d/{i}.csv", "e", size) for i in range(n)]
        self.items = {ref.file_id: {**ref.to_dict(), "state": "PENDING"} for ref in self.refs}
        self.now = now
        self.released: list[str] = []  # run ids whose claims were given back
        self.failed: dict[str, tuple[int, str]] = {}  # run id -> (max attempts, reason) of fail_run
        self.done: dict[str, RowCounts] = {}

    @property
    def pending(self) -> list[FileRef]:
        return [r for r in self.refs if self.items[r.file_id]["state"] == "PENDING"]

    @property
    def claims(self) -> dict[str, list[FileRef]]:
        out: dict[str, list[FileRef]] = {}
        for ref in self.refs:
            item = self.items[ref.file_id]
            if item["state"] == "CLAIMED":
                out.setdefault(item["run_id"], []).append(ref)
        return out

    def claim_pending(self, run_id, budget: RunBudget, created_before=None, stop=None):
        taken: list[FileRef] = []
        if created_before is None or created_before <= CREATED:
            return taken
        for ref in self.pending:
            if (stop and stop()) or not budget.take(ref):
                break
            self.items[ref.file_id].update(state="CLAIMED", run_id=run_id, updated_at=self.now())
            taken.append(ref)
            if budget.full:
                break
        return taken

    def _holds(self, run_id: str, file_id: str, *states: str) -> bool:
        item = self.items[file_id]
        return item.get("run_id") == run_id and item["state"] in states

    def release_claim(self, run_id, refs):
        released = 0
        for ref in refs:
            if self._holds(run_id, ref.file_id, "CLAIMED"):
                self.items[ref.file_id].update(state="PENDING", updated_at=self.now())
                self.items[ref.file_id].pop("run_id")
                released += 1
        if released:
            self.released.append(run_id)
        return released

    def fail_run(self, run_id, max_attempts, reason):
        self.failed[run_id] = (max_attempts, reason)
        moved = 0
        for file_id, item in self.items.items():
            if self._holds(run_id, file_id, "CLAIMED"):
                item.update(state="PENDING", attempts=item.get("attempts", 0) + 1)
                item.pop("run_id")
                moved += 1
        return {State.PENDING: moved}

    def by_run(self, run_id):
        return iter([dict(i) for i in self.items.values() if i.get("run_id") == run_id])

    def by_state(self, state, updated_before=None, page_size=None):
        if state is State.PENDING and updated_before is not None and updated_before > CREATED:
            return iter([ref.to_dict() for ref in self.pending])
        if state is State.CLAIMED:
            return iter([dict(i) for i in self.items.values()
                         if i["state"] == "CLAIMED" and i["updated_at"] < updated_before])
        return iter([])

    def mark_done(self, run_id, file_id, counts):
        if not self._holds(run_id, file_id, "CLAIMED", "DONE"):
            return False
        self.items[file_id]["state"] = "DONE"
        self.done[file_id] = counts
        return True

    def held_by(self, run_id, refs):
        held = [r for r in refs if self._holds(run_id, r.file_id, "CLAIMED", "DONE")]
        return held, [r for r in refs if r not in held]


class FakeRuns:
    """Run records with the conditional transitions of ledger.run_table.DynamoRunRecords."""

    def __init__(self, now: Callable[[], datetime] = lambda: CRAWLED) -> None:
        self.records: dict[str, RunRecord] = {}
        self.now = now

    def _move(self, run_id, old, new, job_run_id=None):
        record = self.records.get(run_id)
        if record is None or record.state not in old:
            return False
        self.records[run_id] = RunRecord(run_id, new, record.opened_at, self.now(),
                                         job_run_id or record.job_run_id)
        return True

    def open(self, run_id):
        assert run_id not in self.records
        self.records[run_id] = RunRecord(run_id, RunState.OPEN, self.now(), self.now())
        return True

    def starting(self, run_id):
        return self._move(run_id, (RunState.OPEN,), RunState.STARTING)

    def started(self, run_id, job_run_id):
        return self._move(run_id, (RunState.STARTING,), RunState.STARTED, job_run_id)

    def begin(self, run_id, job_run_id):
        record = self.records.get(run_id)
        if record is None or not (record.state is RunState.STARTING or (
                record.state in (RunState.STARTED, RunState.RUNNING) and record.job_run_id == job_run_id)):
            return False
        return self._move(run_id, (record.state,), RunState.RUNNING, job_run_id)

    def abandon(self, run_id, expected):
        if expected is None:
            if run_id in self.records:
                return False
            self.records[run_id] = RunRecord(run_id, RunState.ABANDONED, self.now(), self.now())
            return True
        return self._move(run_id, (expected,), RunState.ABANDONED)

    def drop(self, run_id):
        if run_id in self.records and self.records[run_id].state is RunState.OPEN:
            del self.records[run_id]
            return True
        return False

    def get(self, run_id):
        return self.records.get(run_id)


class FakeManifests:
    def __init__(self) -> None:
        self.written: dict[str, RunManifest] = {}
        self.summaries: dict = {}
        self.on_write: Callable[[RunManifest], None] | None = None  # a test's interleaving point

    def write(self, manifest):
        if self.on_write:
            self.on_write(manifest)
        self.written[manifest.run_id] = manifest
        return f"s3://artifacts/runs/{manifest.run_id}/manifest.json"

    def delete(self, run_id):
        self.written.pop(run_id, None)  # S3's DeleteObject: a missing key is no error

    def exists(self, run_id):
        return run_id in self.written

    def summary_uri(self, run_id):
        return f"s3://artifacts/runs/{run_id}/summary.json"

    def read_summary(self, run_id):
        return self.summaries.get(run_id)


class FakeCrawler:
    def __init__(self, catalogued_before=CRAWLED, running: bool = False) -> None:
        self.before = catalogued_before
        self.running = running
        self.starts = 0

    def catalogued_before(self):
        return self.before

    def start(self):
        self.starts += 1
        return CrawlerStart.ALREADY_RUNNING if self.running else CrawlerStart.STARTED


class FakeNotifier:
    """Sends a report once per name, as EventBridgeNotifier does."""

    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list = []
        self.error = error

    def send(self, report):
        if self.error:
            raise self.error
        if any(r.name == report.name for r in self.sent):
            return False
        self.sent.append(report)
        return True


class FakeOutputs:
    def __init__(self) -> None:
        self.discarded: list[str] = []
        self.finished: list[str] = []

    def discard(self, run_id, recorded=True):
        self.discarded.append(run_id)
        return 1

    def finish(self, run_id):
        self.finished.append(run_id)
        return 1


class FakeJobs:
    """Glue's StartJobRun and its job runs. `before_create` runs inside StartJobRun, before the
    job run exists (a slow or retried call); `answer_lost` makes the call raise after creating
    the run (the caller never learns its id); `unlisted` job runs are missing from GetJobRuns."""

    def __init__(self, slots: int = 100, error: Exception | None = None,
                 advertised_slots: int | None = None) -> None:
        self.slots = slots  # what StartJobRun enforces
        self.advertised_slots = advertised_slots  # what has_capacity sees (None: always room)
        self.error = error
        self.started: dict[str, str] = {}  # job run id -> run id
        self.states: dict[str, JobRunState] = {}  # job run id -> its state, when a test sets one
        self.before_create: Callable[[str], None] | None = None
        self.answer_lost = False
        self.created_twice = False  # the answer was lost and the SDK's retry created a second run
        self.unlisted: set[str] = set()

    def has_capacity(self):
        return self.advertised_slots is None or len(self.started) < self.advertised_slots

    def start(self, run_id, manifest_uri):
        if self.error:
            raise self.error
        if len(self.started) >= self.slots:
            raise ConcurrencyLimitReached("limit")
        if self.before_create:
            self.before_create(run_id)
        if self.created_twice:
            self.started[f"jr_{len(self.started)}"] = run_id
        job_run_id = f"jr_{len(self.started)}"
        self.started[job_run_id] = run_id
        if self.answer_lost:
            raise TimeoutError("Read timeout on endpoint URL (the run was created all the same)")
        return job_run_id

    def run_id_of(self, job_run_id):
        return self.started.get(job_run_id)

    def holding(self, run_ids):
        return {run_id: job_run_id for job_run_id, run_id in self.started.items()
                if run_id in run_ids and job_run_id not in self.unlisted}

    def state_of(self, job_run_id):
        return self.states.get(job_run_id)


class FakeJobRun:
    """The Glue job's side of a run, as glue/sluice_glue/job.py plays it: the fence
    (runs.begin), the claim check (ledger.held_by), the rows written, DONE per file."""

    def __init__(self, ledger: FakeLedger, runs: FakeRuns, manifests: FakeManifests) -> None:
        self.ledger, self.runs, self.manifests = ledger, runs, manifests
        self.written: Counter[str] = Counter()  # file id -> how many runs wrote its rows

    def run(self, job_run_id: str, run_id: str) -> str:
        if not self.runs.begin(run_id, job_run_id):
            return "fenced off"
        held, _ = self.ledger.held_by(run_id, self.manifests.written[run_id].files)
        for ref in held:
            self.written[ref.file_id] += 1
            assert self.ledger.mark_done(run_id, ref.file_id, RowCounts(1, 1, 0))
        return f"{len(held)} written"
