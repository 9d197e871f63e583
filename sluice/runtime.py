"""The local runtime: the emulator, template.yaml deployed into it, and the behaviours AWS has
that the emulator lacks, each running in its own threads. IAM is enforced (sluice.aws.iam_hook):
each handler, the crawler and the job act as their roles from the template, every service's
delivery is checked against the resource's policy, and `audit` holds every decision.

    >>> with Runtime() as runtime:                       # doctest: +SKIP
    ...     runtime.ingest(Path("samples/orders/orders-2026-11-23.csv"), "orders/2026-11-23.csv")
    ...     runtime.wait_until_settled(timeout=120)
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from sluice import STATE_DIR, persistence
from sluice.aws.awslambda import as_role, load_handler, load_module
from sluice.aws.emulator import ACCOUNT_ID, REGION, Emulator
from sluice.aws.events import RuleTargetDelivery, rate_seconds
from sluice.aws.glue_crawler import CrawlerRunner
from sluice.aws.glue_jobs import GlueJobRunner, hold_job_runs_in_starting
from sluice.aws.iam import Audit
from sluice.aws.iam_hook import Enforcer
from sluice.aws.sns import EmailOutbox
from sluice.aws.sqs import SqsEventSource
from sluice.faults import Faults
from sluice.query import QuerySetup
from sluice.stack.deploy import Stack, deploy, local_parameters
from sluice.stack.template import ROOT, SamApp
from sluice.status import collect_status
from sluice.timeline import Timeline


class Runtime:
    def __init__(self, port: int | None = None, state_dir: Path = STATE_DIR,
                 timeline: Timeline | None = None, parameters: dict[str, str] | None = None,
                 faults: Faults | None = None, schedule_every: float | None = None,
                 persist: bool = False) -> None:
        self.aws = Emulator(port)
        self.persist = persist  # keep the emulator's state in state_dir/snapshot across restarts
        self.snapshot_dir = state_dir / "snapshot"
        self.schedule_every = schedule_every
        self.faults = faults or Faults()
        self.state_dir = state_dir
        self.outbox_dir = state_dir / "outbox"
        self.timeline = timeline or Timeline()
        self.parameters = parameters or local_parameters()
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self._stack: Stack | None = None
        self.jobs: list[GlueJobRunner] = []
        self.crawlers: list[CrawlerRunner] = []
        self.outboxes: list[EmailOutbox] = []
        self.sources: list[SqsEventSource] = []
        self.audit = Audit()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Runtime:
        began = time.monotonic()
        self.aws.start()
        self.aws.point_process_here()
        hold_job_runs_in_starting()
        self.app = SamApp.load()
        self._stack = stack = deploy(self.aws, self.app, self.parameters)
        if not self.persist:
            shutil.rmtree(self.outbox_dir, ignore_errors=True)  # the outbox holds this session's mail
        os.environ.update(stack.function_environment())
        # Handlers' own JSON logs would drown the timeline; SLUICE_FUNCTION_LOG_LEVEL=INFO shows them.
        os.environ["POWERTOOLS_LOG_LEVEL"] = os.environ.get("SLUICE_FUNCTION_LOG_LEVEL", "WARNING")
        self._seed_reference_data()
        self.faults.install()
        # Installed before any handler makes a client (clients copy the session's hooks).
        self.audit = Audit(stack.principals)
        Enforcer(self.audit, stack.resource_policies).install()
        # (A notification S3 may not deliver was refused by deploy's create-time rules already.)
        handlers = {lid: as_role(load_handler(fn.code_dir, fn.handler, cold=True), stack.principals.get(lid))
                    for lid, fn in stack.functions.items()}
        for mapping in stack.mappings:
            fn = stack.functions[mapping.function]
            self.sources.append(SqsEventSource(self.aws, mapping, fn.name, handlers[fn.logical_id],
                                               self.timeline, self.faults,
                                               stack.principals.get(fn.logical_id)))
        behaviours: list[Any] = [*self.sources]
        for target in stack.rule_targets:
            target_fn = stack.functions.get(target.target)  # None for an SNS target
            behaviours.append(RuleTargetDelivery(self.aws, target, self.timeline, handlers.get(target.target),
                                                 target_fn.name if target_fn else "", self.schedule_every,
                                                 _topic_key(stack, target.target)))
        for props in _of_type(self.app, stack, "AWS::Glue::Crawler"):
            self.crawlers.append(CrawlerRunner(self.aws, props["Name"], self.timeline,
                                               stack.principals.get(props["_logical_id"])))
        for props in _of_type(self.app, stack, "AWS::Glue::Job"):
            self.jobs.append(GlueJobRunner(self.aws, props["Name"], self.timeline,
                                           stack.principals.get(props["_logical_id"])))
        for props in _of_type(self.app, stack, "AWS::SNS::Topic"):
            topic_arn = stack.names[props["_logical_id"]]
            self.outboxes.append(EmailOutbox(self.aws, topic_arn, self.outbox_dir, self.timeline))
        behaviours += [*self.crawlers, *self.jobs, *self.outboxes]
        for behaviour in behaviours:
            self.threads += behaviour.threads(self.stop_event)
        self.threads.append(threading.Thread(target=self._write_audit, args=(self.stop_event,),
                                             daemon=True, name="iam-audit"))
        if self.persist and (self.snapshot_dir / "ledger.json").exists():  # every queue exists by now
            restored = persistence.restore(self.aws, stack.outputs, self.snapshot_dir)
            settled = persistence.settle_interrupted_runs(self.aws, stack.outputs, self._discard_run)
            self.timeline.emit("runtime", f"restored {restored} from {self.snapshot_dir}; "
                                          f"interrupted runs: {settled}")
        self._publish_glue_code()  # after a restore: the code of this checkout is what runs
        for thread in self.threads:
            thread.start()
        self._write_state_file()
        self.timeline.emit("runtime", f"up at {self.aws.endpoint} in {time.monotonic() - began:.1f} s "
                                      f"({len(self.threads)} workers)")
        return self

    @property
    def stack(self) -> Stack:
        """template.yaml as deployed into the emulator: there is one once start() has run."""
        if self._stack is None:
            raise RuntimeError("the runtime is not started: no stack is deployed before start()")
        return self._stack

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=10)
        if self.persist and self._stack is not None:  # nothing deployed: nothing to save
            saved = persistence.save(self.aws, self.stack.outputs, self.snapshot_dir)
            self.timeline.emit("runtime", f"state saved to {self.snapshot_dir}: {saved}")
        for job in self.jobs:
            if job.spark is not None:
                job.spark.stop()
        self._audit_file().write_text(json.dumps(self.audit.to_dict(), indent=1))
        Enforcer.uninstall()
        self.aws.stop()
        (self.state_dir / "runtime.json").unlink(missing_ok=True)

    def __enter__(self) -> Runtime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _discard_run(self, run_id: str) -> int:
        """What StartJobFunction does for a run that failed before its commit point."""
        outputs = load_module(ROOT / "functions" / "start_job" / "outputs.py").CatalogOutputs(
            self.aws.client("glue"), self.aws.client("s3"), self.stack.outputs["ProcessedDatabaseName"],
            self.stack.outputs["ProcessedBucketName"])
        return outputs.discard(run_id)

    def _publish_glue_code(self) -> None:
        """What `make deploy` publishes for the job (tools/publish_glue.py): the entry script and
        the modules zip, in the artifacts bucket the job's role reads them from."""
        tool = load_module(ROOT / "tools" / "publish_glue.py")
        s3, bucket = self.aws.client("s3"), self.stack.outputs["ArtifactsBucketName"]
        if hasattr(tool, "publish_code"):
            tool.publish_code(s3, bucket)
            return
        archive = tool.package(self.state_dir / "glue" / "sluice_glue.zip")
        s3.upload_file(str(tool.SCRIPT), bucket, tool.SCRIPT_KEY)
        s3.upload_file(str(archive), bucket, tool.CODE_KEY)

    def _audit_file(self) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return self.state_dir / "iam.json"

    def _write_audit(self, stop: threading.Event) -> None:
        """For `sluice iam` and `sluice status` in another process: rewritten when it changes."""
        written = -1
        while not stop.wait(1.0):
            if self.audit.version != written:
                written = self.audit.version
                path = self._audit_file()
                path.with_suffix(".tmp").write_text(json.dumps(self.audit.to_dict(), indent=1))
                path.with_suffix(".tmp").replace(path)

    def _seed_reference_data(self) -> None:
        """The lookup table the [local] parameters name lives in the artifacts bucket."""
        bucket = self.stack.outputs["ArtifactsBucketName"]
        for path in sorted((ROOT / "samples" / "reference").glob("*")):
            self.aws.client("s3").upload_file(str(path), bucket, f"reference/{path.name}")

    def _write_state_file(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "runtime.json").write_text(json.dumps(
            {"endpoint": self.aws.endpoint, "pid": os.getpid(), "outputs": self.stack.outputs,
             "outbox": str(self.outbox_dir), "stuck_after_s": self.stuck_after_s,
             "query": QuerySetup.of_stack(self.stack, self.aws.endpoint).to_dict()}, indent=2))

    @property
    def stuck_after_s(self) -> int:
        """A PENDING file older than this should have been claimed by the sweeper."""
        return int(self.parameters.get("SweepAfterSeconds", 900)) + int(
            rate_seconds(self.parameters.get("SweepSchedule", "rate(15 minutes)")))

    # --- using it ----------------------------------------------------------------------------

    def ingest(self, path: Path, key: str) -> None:
        self.aws.client("s3").upload_file(str(path), self.stack.outputs["RawBucketName"], key)
        self.timeline.emit("s3", f"put s3://{self.stack.outputs['RawBucketName']}/{key}")

    def status(self) -> dict[str, Any]:
        return collect_status(self.aws.client, self.aws.resource, self.stack.outputs, self.aws.endpoint,
                              self.outbox_dir, self.stuck_after_s, self.audit.to_dict())

    def wait_until_settled(self, files: int, timeout: float = 300) -> dict[str, Any]:
        """Until `files` ledger items exist, none is PENDING or CLAIMED, no job run is waiting or
        running, and every finished run has had its email written."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            ledger = status["ledger"]
            settled = (sum(ledger.values()) >= files and ledger["PENDING"] == 0
                       and ledger["CLAIMED"] == 0 and status["job_runs"]["active"] == 0
                       and status["emails"] >= status["job_runs"]["finished"] > 0)
            if settled:
                return status
            time.sleep(0.2)
        raise TimeoutError(f"pipeline did not settle within {timeout:.0f} s: {self.status()}")


def _topic_key(stack: Stack, topic_arn: str) -> str | None:
    """The KMS key ARN an SNS topic of the stack is encrypted with (None: not encrypted)."""
    topic = next((p for lid, p in stack.resources.items() if stack.names.get(lid) == topic_arn), {})
    key = topic.get("KmsMasterKeyId")
    if not key or key.startswith("arn:"):
        return key
    return next((stack.arns[lid] for lid, name in stack.names.items() if name == key),
                f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{key}")


def _of_type(app: SamApp, stack: Stack, resource_type: str) -> list[dict]:
    return [{**stack.resources[lid], "_logical_id": lid} for lid, r in app.resources.items()
            if r["Type"] == resource_type and lid in stack.resources]
