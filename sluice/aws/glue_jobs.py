"""The Glue job runner: runs the very script template.yaml's EtlJob points at, with local Spark.

moto records job runs but runs nothing (and by default reports SUCCEEDED at once). Here runs are
held in STARTING (moto's manual state progression), picked up in order, moved to RUNNING, run
in-process with one SparkSession kept warm between runs, and finished as SUCCEEDED or FAILED,
each end announced as AWS Glue does: a "Glue Job State Change" event. Because runs stay STARTING
or RUNNING while they wait, moto enforces the job's MaxConcurrentRuns as Glue does.

As on Glue, a run executes as the job's role (sluice.aws.iam_hook) and loads its code from S3
with that role: the job's ScriptLocation and its --extra-py-files zip. A run still STARTING or
RUNNING past the job's Timeout is settled TIMEOUT by a watchdog, whatever the runner is doing.
"""

from __future__ import annotations

import ast
import hashlib
import os
import sys
import tempfile
import threading
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from moto.glue.models import glue_backends
from moto.moto_api import state_manager

from ledger import ACTIVE_JOB_RUN_STATES
from sluice.aws.emulator import ACCOUNT_ID, REGION, Emulator
from sluice.aws.events import put_event
from sluice.aws.iam import Principal
from sluice.aws.iam_hook import acting_as, client_as
from sluice.faults import IN_JOB_RUN, JOB_THREAD, InjectedTimeout
from sluice.timeline import Timeline

# What Glue 5.0 provides itself; any other module the entry script imports must come from
# --extra-py-files ("Using Python libraries with AWS Glue", Glue developer guide).
GLUE_PROVIDED = {"pyspark", "awsglue", "py4j", "boto3", "botocore", "pyarrow", "pandas", "numpy"}


def hold_job_runs_in_starting() -> None:
    """Job runs stay where the runner puts them, instead of moto's instant SUCCEEDED."""
    state_manager.set_transition(model_name="glue::job_run",
                                 transition={"progression": "manual", "times": 10**9})


def _moto_job_runs(job_name: str) -> list[Any]:
    # The Glue API cannot set a run's state; the emulator's own objects can (same process).
    return glue_backends[ACCOUNT_ID][REGION].jobs[job_name].job_runs


# Spark's start-up WARN lines say nothing about a run: the hostname resolving to a loopback
# address (SPARK_LOCAL_IP answers it) and the missing native-hadoop library (the Java fallback is
# what local Spark always uses). Everything else at WARN or above still shows until the session
# is up; then the level is ERROR, so a failing job's errors still reach the timeline. See
# https://spark.apache.org/docs/3.5.0/configuration.html#environment-variables and
# #configuring-logging (log4j2 properties, passed through the driver's Java options).
LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.nativeloader.name = org.apache.hadoop.util.NativeCodeLoader
logger.nativeloader.level = error
"""


def _log4j2_file() -> Path:
    path = Path(tempfile.gettempdir()) / f"sluice-log4j2-{os.getuid()}.properties"
    if not path.exists() or path.read_text() != LOG4J2:
        path.write_text(LOG4J2)
    return path


def spark_session(app_name: str = "sluice-local") -> Any:
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # read by the JVM the builder launches
    session = (SparkSession.builder.master("local[2]").appName(app_name)
            .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{_log4j2_file()}")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.memory", "2g")
            .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    return session


class GlueJobRunner:
    def __init__(self, aws: Emulator, job_name: str, timeline: Timeline, role: Principal | None = None
                 ) -> None:
        self.aws = aws
        self.glue = aws.client("glue")  # Glue itself: the job definition and its runs' states
        self.job_name = job_name
        self.timeline = timeline
        self.role = role
        self.spark: Any = None
        self.ready = threading.Event()
        self.paused = threading.Event()  # tests: runs wait in STARTING, as when no worker is free
        self.finished: dict[str, str] = {}  # job run id -> final state
        self._lock = threading.Lock()  # a run ends once: by the runner or by the timeout watchdog
        self._code_dir = Path(tempfile.mkdtemp(prefix="sluice-glue-code-"))
        self._script: tuple[str, ModuleType] | None = None  # (digest of its source, module)
        self._s3: Any = None

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        return [threading.Thread(target=self._loop, args=(stop,), daemon=True, name=JOB_THREAD),
                threading.Thread(target=self._watch_timeouts, args=(stop,), daemon=True,
                                 name=f"{JOB_THREAD}-timeout")]

    def _loop(self, stop: threading.Event) -> None:
        started = time.monotonic()
        self.spark = spark_session()
        self._s3 = client_as(self.role, "s3", self.aws.endpoint)
        self.ready.set()
        self.timeline.emit("job", f"Spark session warm [{time.monotonic() - started:.1f} s]")
        while not stop.is_set():
            waiting = [] if self.paused.is_set() else [
                run for run in _moto_job_runs(self.job_name) if run.status == "STARTING"]
            if not waiting:
                time.sleep(0.05)
                continue
            try:
                with acting_as(self.role):
                    self.run(waiting[0])
            except Exception as error:  # the runner serves later runs whatever one run did
                self.timeline.emit("error", f"{self.job_name}: runner error {error!r}; next run")
                with self._lock:
                    if waiting[0].status in ACTIVE_JOB_RUN_STATES:
                        self._end(waiting[0], "FAILED", f"{type(error).__name__}: {error}")

    # --- the job's code, from S3 as the job's role -------------------------------------------

    def _load_script(self) -> ModuleType:
        """The job's ScriptLocation and --extra-py-files, read from S3 with the job's role as Glue
        reads them (a role that cannot read them fails the run with AccessDenied)."""
        job = self.glue.get_job(JobName=self.job_name)["Job"]
        extra = [u for u in job.get("DefaultArguments", {}).get("--extra-py-files", "").split(",") if u]
        archives = [self._download(uri) for uri in extra]
        for path in archives:
            if str(path) not in sys.path:
                sys.path.append(str(path))  # as Glue puts them on the driver's PYTHONPATH
        location = job["Command"]["ScriptLocation"]
        source = self._download(location).read_bytes()
        digest = hashlib.sha256(source).hexdigest()
        if self._script and self._script[0] == digest:
            return self._script[1]
        _require_packaged(source, location, archives)
        module = ModuleType("sluice_glue_entry")
        module.__file__ = location
        sys.modules["sluice_glue_entry"] = module
        exec(compile(source, location, "exec"), module.__dict__)  # the job's own script, as Glue runs it
        self._script = (digest, module)
        return module

    def _download(self, uri: str) -> Path:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        target = self._code_dir / bucket / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return target

    # --- one run -----------------------------------------------------------------------------

    def run(self, run: Any) -> str:
        run.status = "RUNNING"
        run.started_on = datetime.now(UTC)
        arguments = dict(run.arguments or {})
        # Local Spark has no GlueContext and no s3:// file system: the job stages its S3 I/O.
        arguments.setdefault("--storage", "local")
        argv = ["etl_job.py", "--JOB_NAME", self.job_name, "--JOB_RUN_ID", run.job_run_id]
        for key, value in arguments.items():
            argv += [key, str(value)]
        self.timeline.emit("job", f"{self.job_name} run {run.job_run_id[:12]}… RUNNING "
                                  f"({arguments.get('--run_id', '?')})")
        began = time.monotonic()
        try:
            token = IN_JOB_RUN.set(True)
            try:
                summary = self._load_script().main(argv, spark=self.spark)
            finally:
                IN_JOB_RUN.reset(token)
            state, message = "SUCCEEDED", "Job run succeeded"
            totals = summary.to_dict()["totals"]
            detail = ("fenced off: its run was abandoned and its files given back; nothing done"
                      if summary.fenced_off else ", ".join(f"{k}={v}" for k, v in totals.items()))
        except InjectedTimeout as error:
            state, message, detail = "TIMEOUT", str(error), ""
        except Exception as error:  # the run fails; the pipeline releases its files
            state, message, detail = "FAILED", f"{type(error).__name__}: {error}"[:900], ""
        with self._lock:
            if run.status != "RUNNING":  # the watchdog settled it meanwhile (TIMEOUT)
                self.timeline.emit("error", f"{self.job_name} run {run.job_run_id[:12]}… ended "
                                            f"{state} after it was settled {run.status}; ignored")
                return run.status
            took = time.monotonic() - began
            self.timeline.emit("job" if state == "SUCCEEDED" else "error",
                               f"{self.job_name} run {run.job_run_id[:12]}… {state} [{took:.1f} s] {detail}"
                               + ("" if state == "SUCCEEDED" else f" {message}"))
            self._end(run, state, message)
        return state

    def _end(self, run: Any, state: str, message: str) -> None:
        run.status = state
        run.completed_on = run.modified_on = datetime.now(UTC)
        if state != "SUCCEEDED":
            run.error_message = message
        self.finished[run.job_run_id] = state
        for attempt in range(3):  # a failed PutEvents must not leave the run unannounced
            try:
                put_event(self.aws, "aws.glue", "Glue Job State Change", {
                    "jobName": self.job_name, "severity": "INFO" if state == "SUCCEEDED" else "ERROR",
                    "state": state, "jobRunId": run.job_run_id, "message": message})
                return
            except Exception as error:
                self.timeline.emit("error", f"{self.job_name}: announcing {state} failed "
                                            f"(attempt {attempt + 1}): {error!r}")
                time.sleep(0.2 * (attempt + 1))

    # --- TIMEOUT ----------------------------------------------------------------------------

    def _watch_timeouts(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            try:
                self.settle_timeouts()
            except Exception as error:  # the watchdog outlives a failed check
                self.timeline.emit("error", f"{self.job_name}: timeout check failed: {error!r}")

    def settle_timeouts(self) -> list[str]:
        """Runs STARTING or RUNNING longer than their timeout (the run's, else the job's, in
        minutes) end TIMEOUT, announced as Glue announces it (Glue API, JobRun.Timeout: "the
        maximum time that a job run can consume resources before it is terminated and enters
        TIMEOUT status")."""
        default = int(self.glue.get_job(JobName=self.job_name)["Job"].get("Timeout") or 2880)
        now, settled = datetime.now(UTC), []
        for run in list(_moto_job_runs(self.job_name)):
            limit = int(run.timeout or default) * 60
            with self._lock:
                overdue = (now - _aware(run.started_on)).total_seconds() > limit
                if run.status in ACTIVE_JOB_RUN_STATES and overdue:
                    self.timeline.emit("error", f"{self.job_name} run {run.job_run_id[:12]}… TIMEOUT "
                                                f"after {limit // 60} min in {run.status}")
                    self._end(run, "TIMEOUT", f"Job run timed out after {limit // 60} minutes "
                                              f"({run.status.lower()})")
                    settled.append(run.job_run_id)
        return settled


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # moto's are naive UTC


def _require_packaged(source: bytes, location: str, archives: list[Path]) -> None:
    """Every module the entry script imports is Python's, Glue's own, or in --extra-py-files:
    otherwise the run fails on Glue with ModuleNotFoundError, and so it fails here."""
    names: set[str] = set()
    for archive in archives:
        with zipfile.ZipFile(archive) as zipped:
            names |= {n.split("/", 1)[0].removesuffix(".py") for n in zipped.namelist()}
    for node in ast.walk(ast.parse(source)):
        imported = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        for top in (name.split(".", 1)[0] for name in imported):
            if top and top not in sys.stdlib_module_names and top not in GLUE_PROVIDED | names:
                raise ModuleNotFoundError(f"No module named '{top}' ({location} imports it; it is "
                                          f"neither in --extra-py-files nor provided by Glue)")


# --- where moto differs from AWS ------------------------------------------------------------

def correct_moto() -> None:
    """Apply this service's corrections to moto (idempotent); Emulator.start calls it."""
    _job_runs_newest_first()


def _job_runs_newest_first() -> None:
    """GetJobRuns lists the newest runs first (AWS API reference); moto lists them oldest first,
    so a first page would show none of the runs under way once a job has run 100 times."""
    from moto.glue.models import FakeJob

    original = FakeJob.get_job_runs
    if getattr(original, "sluice_patched", False):
        return

    def get_job_runs(self: FakeJob) -> list:
        return list(reversed(original(self)))

    get_job_runs.sluice_patched = True  # type: ignore[attr-defined]
    FakeJob.get_job_runs = get_job_runs
