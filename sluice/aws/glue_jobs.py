"""The Glue job runner: runs the very script template.yaml's EtlJob points at, with local Spark.

moto records job runs but runs nothing (and by default reports SUCCEEDED at once). Here runs are
held in STARTING (moto's manual state progression), picked up in order, moved to RUNNING, run
in-process with one SparkSession kept warm between runs, and finished as SUCCEEDED or FAILED,
each end announced as AWS Glue does: a "Glue Job State Change" event. Because runs stay STARTING
or RUNNING while they wait, moto enforces the job's MaxConcurrentRuns as Glue does.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from moto.glue.models import glue_backends
from moto.moto_api import state_manager

from sluice.aws.emulator import ACCOUNT_ID, REGION, Emulator
from sluice.aws.events import put_event
from sluice.faults import JOB_THREAD, InjectedTimeout
from sluice.stack.template import ROOT
from sluice.timeline import Timeline

SCRIPT = ROOT / "glue" / "etl_job.py"


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
    def __init__(self, aws: Emulator, job_name: str, timeline: Timeline) -> None:
        self.aws = aws
        self.glue = aws.client("glue")
        self.job_name = job_name
        self.timeline = timeline
        self.spark: Any = None
        self.ready = threading.Event()
        self.finished: dict[str, str] = {}  # job run id -> final state
        self.fail_next: Exception | None = None  # fault injection: the next run raises this
        self._script: ModuleType | None = None

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        return [threading.Thread(target=self._loop, args=(stop,), daemon=True, name=JOB_THREAD)]

    def _loop(self, stop: threading.Event) -> None:
        started = time.monotonic()
        self.spark = spark_session()
        self._script = self._load_script()
        self.ready.set()
        self.timeline.emit("job", f"Spark session warm [{time.monotonic() - started:.1f} s]")
        while not stop.is_set():
            waiting = [run for run in _moto_job_runs(self.job_name) if run.status == "STARTING"]
            if not waiting:
                time.sleep(0.05)
                continue
            self.run(waiting[0])

    def _load_script(self) -> ModuleType:
        spec = importlib.util.spec_from_file_location("sluice_glue_entry", SCRIPT)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["sluice_glue_entry"] = module
        spec.loader.exec_module(module)
        return module

    def run(self, run: Any) -> str:
        run.status = "RUNNING"
        run.started_on = datetime.now(UTC)
        arguments = dict(run.arguments or {})
        argv = [str(SCRIPT), "--JOB_NAME", self.job_name, "--JOB_RUN_ID", run.job_run_id]
        for key, value in arguments.items():
            argv += [key, str(value)]
        self.timeline.emit("job", f"{self.job_name} run {run.job_run_id[:12]}… RUNNING "
                                  f"({arguments.get('--run_id', '?')})")
        began = time.monotonic()
        try:
            if self.fail_next is not None:
                error, self.fail_next = self.fail_next, None
                raise error
            summary = self._script.main(argv, spark=self.spark)
            state, message = "SUCCEEDED", "Job run succeeded"
            detail = ", ".join(f"{k}={v}" for k, v in summary.to_dict()["totals"].items())
        except InjectedTimeout as error:
            state, message, detail = "TIMEOUT", str(error), ""
        except Exception as error:  # the run fails; the pipeline releases its files
            state, message, detail = "FAILED", f"{type(error).__name__}: {error}"[:900], ""
        run.status = state
        run.completed_on = run.modified_on = datetime.now(UTC)
        self.finished[run.job_run_id] = state
        took = time.monotonic() - began
        self.timeline.emit("job" if state == "SUCCEEDED" else "error",
                           f"{self.job_name} run {run.job_run_id[:12]}… {state} [{took:.1f} s] {detail}"
                           + ("" if state == "SUCCEEDED" else f" {message}"))
        put_event(self.aws, "aws.glue", "Glue Job State Change", {
            "jobName": self.job_name, "severity": "INFO" if state == "SUCCEEDED" else "ERROR",
            "state": state, "jobRunId": run.job_run_id, "message": message})
        return state


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
