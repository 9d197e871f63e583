"""`sluice estimate`: a workload run through the pipeline's own batching rules on a simulated
clock, to count what AWS would bill and time each file from put to email.

The rules are not re-derived here: StartCrawlerFunction's BatchIntake (which message starts a
crawl, which waits for a paced one: functions/start_crawler/intake.py) and StartJobFunction's
RunPlanner (claims into runs under MaxFilesPerRun/MaxBytesPerRun, JobMaxConcurrentRuns, the
sweep: functions/start_job/runs.py) run as they are, against in-memory fakes of the ledger,
the crawler, the job and the manifests. What only AWS decides (how long a crawl or a job start
takes) are the assumptions in sluice/prices.toml; the job's own time follows its size rules
(glue/sluice_glue/sizing.py). The costs are added up in sluice/estimate_report.py.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import math
import statistics
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ledger import CrawlerStart, CrawlerState, FileRef, RunBudget, State
from sluice.stack.template import ROOT, SamApp

# The two functions' decision modules, importable as Lambda imports them (each function's folder
# is its code root).
for _folder in ("start_crawler", "start_job"):
    if str(ROOT / "functions" / _folder) not in sys.path:
        sys.path.append(str(ROOT / "functions" / _folder))

from intake import BatchIntake, CrawlerRunning, CrawlPaced  # noqa: E402  # isort: skip
from runs import ConcurrencyLimitReached, RunPlanner, RunSettings  # noqa: E402  # isort: skip
from sluice_glue.sizing import RunSize  # noqa: E402  # isort: skip

EPOCH = datetime(2026, 1, 5, tzinfo=UTC)
GRANULARITY_SECONDS = {"none": None, "year": 365 * 86400, "month": 30 * 86400, "day": 86400, "hour": 3600}


@dataclass(frozen=True)
class Workload:
    files_per_hour: float
    mean_bytes: int
    datasets: int = 1
    days_kept: int = 30
    gzip: bool = False

    def scaled(self, factor: float) -> Workload:
        return Workload(
            self.files_per_hour * factor, self.mean_bytes, self.datasets, self.days_kept, self.gzip
        )


@dataclass(frozen=True)
class Settings:
    """The template parameters the rules read, from a samconfig.toml environment over the
    template's defaults."""

    batch_size: int
    batching_window_s: int
    visibility_s: int
    crawl_interval_s: int
    max_files: int
    max_bytes: int
    max_attempts: int
    sweep_every_s: int
    job_concurrency: int
    workers: int
    worker_type: str
    granularity: str
    memory_mb: int
    log_retention_days: int
    alarms: int

    @classmethod
    def of(cls, params: dict[str, str], app: SamApp | None = None) -> Settings:
        app = app or SamApp.load()
        value = {
            name: str(params.get(name, spec.get("Default", ""))) for name, spec in app.parameters.items()
        }
        sweep = value["SweepSchedule"].removeprefix("rate(").removesuffix(")").split()
        unit = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
        resources = app.resources
        memory = app.source.get("Globals", {}).get("Function", {}).get("MemorySize", 128)
        return cls(
            int(value["IngestBatchSize"]),
            int(value["IngestBatchingWindowSeconds"]),
            int(value["IngestVisibilityTimeoutSeconds"]),
            int(value["CrawlIntervalSeconds"]),
            int(value["MaxFilesPerRun"]),
            int(value["MaxBytesPerRun"]),
            int(value["MaxAttempts"]),
            int(sweep[0]) * unit[sweep[1]],
            int(value["JobMaxConcurrentRuns"]),
            int(value["GlueNumberOfWorkers"]),
            value["GlueWorkerType"],
            value["PartitionGranularity"],
            int(memory),
            int(value["LogRetentionDays"]),
            sum(1 for r in resources.values() if r.get("Type") == "AWS::CloudWatch::Alarm"),
        )

    @property
    def dpus_per_worker(self) -> int:
        return {"G.1X": 1, "G.2X": 2, "G.4X": 4, "G.8X": 8, "G.025X": 1}.get(self.worker_type, 1)


@dataclass
class Counts:
    """What one simulated window did: the billable units before prices."""

    seconds: float = 0.0
    files: int = 0
    crawls: int = 0
    crawl_seconds: float = 0.0
    runs: int = 0
    run_seconds: list[float] = field(default_factory=list)
    run_files: list[int] = field(default_factory=list)
    ingest_invocations: int = 0
    ingest_receives: int = 0  # message deliveries, redeliveries included
    job_invocations: int = 0
    partitions: int = 0
    output_files: int = 0
    latencies: list[float] = field(default_factory=list)

    def latency(self, q: float) -> float:
        if not self.latencies:
            return math.nan
        return (
            statistics.quantiles(self.latencies, n=100, method="inclusive")[int(q) - 1]
            if len(self.latencies) > 1
            else self.latencies[0]
        )


class Simulation:
    """The ingest queue, both functions' rules, the crawler and the job on one clock."""

    def __init__(self, workload: Workload, settings: Settings, assumptions: dict) -> None:
        self.w, self.s, self.a = workload, settings, assumptions
        self.t = 0.0
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = itertools.count()
        self.counts = Counts()
        self.visible: deque[tuple[float, str, float]] = deque()  # (visible at, body, put at)
        self.put_at: dict[str, float] = {}
        self.ledger = _Ledger(self)
        self.crawler = _Crawler(self)
        self.jobs = _Jobs(self)
        self.flush_at: float | None = None
        settings_ = RunSettings(settings.max_files, settings.max_bytes, settings.max_attempts)
        self.planner = RunPlanner(
            self.ledger,
            _Runs(),
            _Manifests(),
            self.jobs,
            _Outputs(),
            self.crawler,
            _Notifier(),
            settings_,
            now=self.now,
        )

    def now(self) -> datetime:
        return EPOCH + timedelta(seconds=self.t)

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.events, (when, next(self.seq), action))

    def run(self, seconds: float) -> Counts:
        every = 3600 / self.w.files_per_hour
        for n in range(int(seconds / every)):
            self.at(n * every, functools.partial(self._put, n))
        for n in range(1, int(seconds / self.s.sweep_every_s) + 1):
            self.at(n * self.s.sweep_every_s, self._sweep)
        while self.events:
            when, _, action = heapq.heappop(self.events)
            self.t = when
            action()
        self.counts.seconds = seconds
        return self.counts

    # --- S3 -> SQS -> StartCrawlerFunction (intake.BatchIntake) ---------------------------------

    def _put(self, n: int) -> None:
        key = f"dataset{n % self.w.datasets}/file-{n:08d}.csv" + (".gz" if self.w.gzip else "")
        body = json.dumps(
            {
                "Records": [
                    {
                        "eventSource": "aws:s3",
                        "eventName": "ObjectCreated:Put",
                        "eventTime": self.now().isoformat(),
                        "s3": {
                            "bucket": {"name": "raw"},
                            "object": {"key": key, "size": self.w.mean_bytes, "eTag": f"e{n}"},
                        },
                    }
                ]
            }
        )
        self.put_at[f"s3://raw/{key}#e{n}"] = self.t
        self.counts.files += 1
        self._deliver((self.t, body, self.t))

    def _deliver(self, message: tuple[float, str, float]) -> None:
        self.visible.append(message)
        if len(self.visible) >= self.s.batch_size:
            self._batch()
        elif self.flush_at is None:  # the batching window runs from the first message waiting
            self.flush_at = self.t + self.s.batching_window_s
            self.at(self.flush_at, self._batch)

    def _batch(self) -> None:
        self.flush_at = None
        while self.visible:
            batch = [self.visible.popleft() for _ in range(min(self.s.batch_size, len(self.visible)))]
            self.counts.ingest_invocations += 1
            self.counts.ingest_receives += len(batch)
            intake = BatchIntake(
                self.ledger,
                self.crawler,
                [body for _, body, _ in batch],
                interval=timedelta(seconds=self.s.crawl_interval_s),
                now=self.now,
            )
            for message in batch:
                try:
                    intake.handle_message(message[1])
                except (CrawlPaced, CrawlerRunning):  # back after the visibility timeout
                    self.at(self.t + self.s.visibility_s, functools.partial(self._deliver, message))
            if len(self.visible) < self.s.batch_size:
                break
        if self.visible and self.flush_at is None:
            self.flush_at = self.t + self.s.batching_window_s
            self.at(self.flush_at, self._batch)

    # --- the crawler's Succeeded, a run's end, the sweep -> StartJobFunction (runs.RunPlanner) ---

    def crawl_succeeded(self) -> None:
        self.counts.job_invocations += 1
        self.planner.start_runs()

    def run_ended(self, run_id: str, refs: list[FileRef]) -> None:
        emailed = self.t + self.a["event_to_email_seconds"]
        for ref in refs:
            self.counts.latencies.append(emailed - self.put_at[ref.file_id])
            self.ledger.claimed.discard(ref.file_id)
            self.ledger.done.add(ref.file_id)
        self.counts.job_invocations += 1
        self.planner.start_runs()

    def _sweep(self) -> None:
        self.counts.job_invocations += 1
        self.planner.sweep()

    # --- the job's time and output, by its size rules ----------------------------------------

    def job_seconds(self, refs: list[FileRef]) -> float:
        a, s = self.a, self.s
        cores = max(1, s.workers - 1) * a["executor_cores_per_worker"] * s.dpus_per_worker
        datasets = {ref.key.split("/", 1)[0] for ref in refs}
        spark = sum(
            self._table_seconds([r for r in refs if r.key.startswith(f"{d}/")], cores) for d in datasets
        )
        return (
            a["job_start_seconds"] + a["job_fixed_seconds"] + len(refs) * a["job_ms_per_file"] / 1000 + spark
        )

    def _table_seconds(self, refs: list[FileRef], cores: int) -> float:
        from sluice_glue.sizing import input_bytes

        size = RunSize.of(input_bytes(refs), cores)
        span = GRANULARITY_SECONDS[self.s.granularity]
        put = [self.put_at[r.file_id] for r in refs]
        partitions = 1 if span is None else len({int(t // span) for t in put})
        self.counts.partitions += partitions
        self.counts.output_files += partitions * (1 if size.small else min(size.tasks, len(refs)))
        work = size.input_bytes / 2**20 / (self.a["spark_mb_per_core_second"] * min(cores, size.tasks))
        return self.a["spark_seconds_per_table"] + work


class _Ledger:
    """The ledger's rules that matter to batching: PENDING by creation, claims oldest first."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.pending: dict[str, tuple[datetime, FileRef]] = {}  # insertion order = creation order
        self.claims: dict[str, list[FileRef]] = {}
        self.claimed: set[str] = set()
        self.done: set[str] = set()

    def record_pending(self, ref: FileRef, created: datetime | None = None) -> State:
        """As DynamoLedger.record_pending: a redelivered event leaves the item as it is."""
        if ref.file_id in self.done:
            return State.DONE
        if ref.file_id in self.claimed:
            return State.CLAIMED
        self.pending.setdefault(ref.file_id, (created or self.sim.now(), ref))
        return State.PENDING

    def record_skipped(self, ref: FileRef, reason: str) -> State:
        return State.SKIPPED

    def in_flight_besides(self, file_ids: set[str]) -> bool:
        # More PENDING files than the batch's own means another one is in flight.
        return bool(self.claimed) or any(
            f not in file_ids for f in itertools.islice(self.pending, len(file_ids) + 1)
        )

    def claim_pending(
        self,
        run_id: str,
        budget: RunBudget,
        created_before: datetime | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> list[FileRef]:
        taken: list[FileRef] = []
        for created, ref in self.pending.values():
            if (created_before is not None and created >= created_before) or not budget.take(ref):
                break
            taken.append(ref)
        for ref in taken:
            del self.pending[ref.file_id]
            self.claimed.add(ref.file_id)
        self.claims[run_id] = taken
        return taken

    def release_claim(self, run_id: str, refs: list[FileRef]) -> int:
        for ref in refs:
            self.pending[ref.file_id] = (self.sim.now(), ref)
            self.claimed.discard(ref.file_id)
        self.claims.pop(run_id, None)
        return len(refs)

    def by_state(
        self, state: State, updated_before: datetime | None = None, page_size: int | None = None
    ) -> Iterator[dict]:
        if state is State.PENDING:
            return (
                {**ref.to_dict(), "run_id": None}
                for created, ref in self.pending.values()
                if updated_before is None or created < updated_before
            )
        return iter([])

    def fail_run(self, run_id: str, max_attempts: int, reason: str, only: set[str] | None = None) -> dict:
        return {}

    def by_run(self, run_id: str) -> Iterator[dict]:
        return iter([])


class _Crawler:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.running_since: datetime | None = None
        self.last_started: datetime | None = None

    def state(self) -> CrawlerState:
        return CrawlerState(
            self.running_since is not None,
            self.running_since,
            self.last_started,
            last_succeeded=self.last_started is not None,
        )

    def catalogued_before(self) -> datetime | None:
        return self.last_started

    def start(self) -> CrawlerStart:
        if self.running_since is not None:
            return CrawlerStart.ALREADY_RUNNING
        self.running_since = self.sim.now()
        self.sim.counts.crawls += 1
        took = self.sim.a["crawl_seconds"]
        self.sim.counts.crawl_seconds += took
        self.sim.at(self.sim.t + took, self._finish)
        return CrawlerStart.STARTED

    def _finish(self) -> None:
        self.last_started, self.running_since = self.running_since, None
        self.sim.crawl_succeeded()


class _Jobs:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.active: set[str] = set()

    def has_capacity(self) -> bool:
        return len(self.active) < self.sim.s.job_concurrency

    def start(self, run_id: str, manifest_uri: str) -> str:
        if not self.has_capacity():
            raise ConcurrencyLimitReached(run_id)
        refs = self.sim.ledger.claims[run_id]
        took = self.sim.job_seconds(refs)
        self.active.add(run_id)
        self.sim.counts.runs += 1
        self.sim.counts.run_seconds.append(took)
        self.sim.counts.run_files.append(len(refs))
        self.sim.at(self.sim.t + took, lambda: self._end(run_id, refs))
        return f"jr_{run_id}"

    def _end(self, run_id: str, refs: list[FileRef]) -> None:
        self.active.discard(run_id)
        self.sim.ledger.claims.pop(run_id, None)
        self.sim.run_ended(run_id, refs)

    def run_id_of(self, job_run_id: str) -> str | None:
        return job_run_id.removeprefix("jr_")

    def holding(self, run_ids: set[str]) -> dict[str, str]:
        return {run_id: f"jr_{run_id}" for run_id in run_ids & self.active}

    def state_of(self, job_run_id: str) -> None:
        return None  # runs end through run_ended here: no end event is ever lost


class _Runs:
    """The run records (ledger.run_table): no sweep races a claimer in the simulation, so every
    move succeeds; what they cost is counted in the DynamoDB line (writes per run)."""

    def open(self, run_id: str) -> bool:
        return True

    def starting(self, run_id: str) -> bool:
        return True

    def started(self, run_id: str, job_run_id: str) -> bool:
        return True

    def abandon(self, run_id: str, expected: object) -> bool:
        return True

    def drop(self, run_id: str) -> bool:
        return True

    def get(self, run_id: str) -> None:
        return None


class _Manifests:
    def write(self, manifest) -> str:
        return f"s3://artifacts/runs/{manifest.run_id}/manifest.json"

    def delete(self, run_id: str) -> None:
        pass

    def read_summary(self, run_id: str) -> None:
        return None

    def exists(self, run_id: str) -> bool:
        return True

    def summary_uri(self, run_id: str) -> str:
        return f"s3://artifacts/runs/{run_id}/summary.json"


class _Outputs:
    def discard(self, run_id: str, recorded: bool = True) -> int:
        return 0

    def finish(self, run_id: str) -> int:
        return 0


class _Notifier:
    def send(self, subject: str, text: str) -> None:
        pass


def simulated_seconds(workload: Workload, settings: Settings, files: int = 20_000) -> float:
    """Long enough to hold `files` files and six crawl intervals, at least half an hour and at
    most a week: a month is this window scaled."""
    return min(
        7 * 86400.0, max(1800.0, 6 * settings.crawl_interval_s, files / workload.files_per_hour * 3600)
    )


def simulate(workload: Workload, settings: Settings, assumptions: dict) -> Counts:
    return Simulation(workload, settings, assumptions).run(simulated_seconds(workload, settings))
