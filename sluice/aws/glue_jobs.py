"""The Glue job runner: runs the very script template.yaml's EtlJob points at, with local Spark.

moto records job runs but runs nothing (and by default reports SUCCEEDED at once). Here runs are
held in STARTING (moto's manual state progression), picked up in order, moved to RUNNING, run
in-process with one SparkSession kept warm between runs, and finished as SUCCEEDED or FAILED,
each end announced as AWS Glue does: a "Glue Job State Change" event. Because runs stay STARTING
or RUNNING while they wait, moto enforces the job's MaxConcurrentRuns as Glue does.

As on Glue, a run executes as the job's role (sluice.aws.iam_hook) and loads its code from S3
with that role (sluice.aws.glue_job_code): the job's ScriptLocation and its --extra-py-files zip.
A run still STARTING or RUNNING past the job's Timeout is settled TIMEOUT by a watchdog, whatever
the runner is doing.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from moto.glue.models import glue_backends
from moto.moto_api import state_manager

from ledger import ACTIVE_JOB_RUN_STATES
from sluice.aws.account import ACCOUNT_ID, REGION
from sluice.aws.emulator import Emulator
from sluice.aws.events import put_event
from sluice.aws.faults import IN_JOB_RUN, JOB_THREAD, InjectedTimeout
from sluice.aws.glue_job_code import JobCode
from sluice.aws.glue_spark import spark_session
from sluice.aws.iam import Principal
from sluice.aws.iam_hook import acting_as, client_as
from sluice.aws.moto_patch import replace, utc
from sluice.timeline import Timeline


def hold_job_runs_in_starting() -> None:
    """Job runs stay where the runner puts them, instead of moto's instant SUCCEEDED."""
    state_manager.set_transition(model_name="glue::job_run",
                                 transition={"progression": "manual", "times": 10**9})


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
        self.code: JobCode | None = None  # read from S3 as the job's role, once the runner runs

    def job_runs(self) -> list[Any]:
        """The job's runs, as the emulator's own objects: the Glue API cannot set a run's state,
        they can (moto's server runs in this process)."""
        return list(glue_backends[ACCOUNT_ID][REGION].jobs[self.job_name].job_runs)

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        return [threading.Thread(target=self._loop, args=(stop,), daemon=True, name=JOB_THREAD),
                threading.Thread(target=self._watch_timeouts, args=(stop,), daemon=True,
                                 name=f"{JOB_THREAD}-timeout")]

    def _loop(self, stop: threading.Event) -> None:
        started = time.monotonic()
        self.spark = spark_session()
        self.code = JobCode(self.glue, client_as(self.role, "s3", self.aws.endpoint), self.job_name)
        self.ready.set()
        self.timeline.emit("job", f"Spark session warm [{time.monotonic() - started:.1f} s]")
        while not stop.is_set():
            waiting = [] if self.paused.is_set() else [
                run for run in self.job_runs() if run.status == "STARTING"]
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
                assert self.code is not None, "a run before the runner started"
                summary = self.code.entry_script().main(argv, spark=self.spark)
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
        for run in self.job_runs():
            limit = int(run.timeout or default) * 60
            with self._lock:
                overdue = (now - utc(run.started_on)).total_seconds() > limit
                if run.status in ACTIVE_JOB_RUN_STATES and overdue:
                    self.timeline.emit("error", f"{self.job_name} run {run.job_run_id[:12]}… TIMEOUT "
                                                f"after {limit // 60} min in {run.status}")
                    self._end(run, "TIMEOUT", f"Job run timed out after {limit // 60} minutes "
                                              f"({run.status.lower()})")
                    settled.append(run.job_run_id)
        return settled




# --- where moto differs from AWS ------------------------------------------------------------

def correct_moto() -> None:
    """Apply this service's corrections to moto (idempotent; sluice.aws.corrections)."""
    _job_runs_newest_first()


def _job_runs_newest_first() -> None:
    """GetJobRuns lists the newest runs first (AWS API reference); moto lists them oldest first,
    so a first page would show none of the runs under way once a job has run 100 times."""
    from moto.glue.models import FakeJob

    def newest_first(original: Any) -> Any:
        def get_job_runs(self: FakeJob) -> list:
            return list(reversed(original(self)))

        return get_job_runs

    replace(FakeJob, "get_job_runs", newest_first)
