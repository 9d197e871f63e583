"""The local runtime: the emulator, template.yaml deployed into it through the deploy's own steps
(sluice.stack.steps: build, deploy, publish, as `make deploy` takes them), and the behaviours AWS
has that the emulator lacks, each running in its own threads. IAM is enforced
(sluice.aws.iam_hook): each handler, the crawler and the job act as their roles from the template,
every service's delivery is checked against the resource's policy, and `audit` holds every decision.

    >>> with Runtime() as runtime:                       # doctest: +SKIP
    ...     runtime.ingest(Path("samples/orders/orders-2026-11-23.csv"), "orders/2026-11-23.csv")
    ...     runtime.wait_until_settled(files=1)["ledger"]["DONE"]
    1
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from ledger.table import DynamoLedger
from sluice import STATE_DIR, persistence
from sluice.aws.account import ACCOUNT_ID, REGION
from sluice.aws.awslambda import as_role, load_handler, with_timeout
from sluice.aws.cloudwatch import AlarmEvaluator
from sluice.aws.corrections import correct_moto
from sluice.aws.emulator import Emulator
from sluice.aws.events import RuleTargetDelivery, rate_seconds
from sluice.aws.faults import Faults
from sluice.aws.glue_crawler import CrawlerRunner
from sluice.aws.glue_jobs import GlueJobRunner, hold_job_runs_in_starting
from sluice.aws.iam_audit import Audit, denial_report
from sluice.aws.iam_hook import Enforcer, client_as
from sluice.aws.sns import EmailOutbox
from sluice.aws.sqs import QueueMetrics
from sluice.aws.sqs_event_source import SqsEventSource
from sluice.query import QuerySetup
from sluice.stack.deploy import deploy
from sluice.stack.model import Stack
from sluice.stack.publish import PUBLISHED_PREFIXES, publish_code
from sluice.stack.resolve import local_parameters
from sluice.stack.steps import Target, deploy_stack
from sluice.stack.template import SamApp
from sluice.status import collect_status
from sluice.timeline import Timeline


class Denied(RuntimeError):
    """AWS would have refused a call or a delivery the pipeline made: `make run` stops at once."""


class LocalSteps:
    """sluice.stack.steps against the emulator: the SAM translation, the local deploy, and the very
    publish `make deploy` ends with (sluice.stack.publish)."""

    def __init__(self, aws: Emulator, parameters: dict[str, str]) -> None:
        self.aws = aws
        self.parameters = parameters
        self.app: SamApp | None = None
        self.stack: Stack | None = None

    def build(self) -> None:
        self.app = SamApp.load()

    def deploy(self, guided: bool) -> Target:
        assert self.app is not None, "build before deploy"
        self.stack = deploy(self.aws, self.app, self.parameters)
        return Target(self.parameters.get("AWS::StackName", "sluice-local"), REGION, self.stack.outputs)

    def publish(self, target: Target) -> list[str]:
        return publish_code(self.aws.client("s3"), target.outputs["ArtifactsBucketName"])


class Runtime:
    def __init__(self, port: int | None = None, state_dir: Path = STATE_DIR,
                 timeline: Timeline | None = None, parameters: dict[str, str] | None = None,
                 faults: Faults | None = None, schedule_every: float | None = None,
                 persist: bool = False, metrics_every: float = 10.0, keep_spark: bool = False) -> None:
        self.aws = Emulator(port)
        # The JVM outlives the runtime when the process starts another (the tests: one JVM per
        # worker process, ~15 s of CPU saved per runtime); `sluice up` stops it with the runtime.
        self.keep_spark = keep_spark
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
        self.deliveries: list[RuleTargetDelivery] = []  # EventBridge rule targets, schedules too
        self.metrics_every = metrics_every  # how often queue metrics are sampled and alarms evaluated
        self.alarms: AlarmEvaluator | None = None
        self.audit = Audit()
        self.overruns: list[tuple[str, float]] = []  # (function, seconds) of invocations past their timeout

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Runtime:
        began = time.monotonic()
        correct_moto()  # where moto differs from AWS, before the emulator serves anything
        self.aws.start()
        self.aws.point_process_here()
        hold_job_runs_in_starting()
        steps = LocalSteps(self.aws, self.parameters)
        deploy_stack(steps)  # as `make deploy` does: build, deploy, publish the job's code
        assert steps.app is not None and steps.stack is not None
        self.app, self._stack = steps.app, steps.stack
        stack = steps.stack
        if not self.persist:
            shutil.rmtree(self.outbox_dir, ignore_errors=True)  # the outbox holds this session's mail
        os.environ.update(stack.function_environment())
        # Handlers' own JSON logs would drown the timeline; SLUICE_FUNCTION_LOG_LEVEL=INFO shows them.
        os.environ["POWERTOOLS_LOG_LEVEL"] = os.environ.get("SLUICE_FUNCTION_LOG_LEVEL", "WARNING")
        self.faults.ledger_table = stack.outputs["LedgerTableName"]
        self.faults.install()
        # Installed before any handler makes a client (clients copy the session's hooks).
        self.audit = Audit(stack.principals)
        Enforcer(self.audit, stack.resource_policies).install()
        # (A notification S3 may not deliver was refused by deploy's create-time rules already.)
        handlers = {lid: with_timeout(as_role(load_handler(fn.code_dir, fn.handler, cold=True),
                                              stack.principals.get(lid)), fn.timeout, self._overran)
                    for lid, fn in stack.functions.items()}
        for mapping in stack.mappings:
            fn = stack.functions[mapping.function]
            self.sources.append(SqsEventSource(self.aws, mapping, fn.name, handlers[fn.logical_id],
                                               self.timeline, self.faults,
                                               stack.principals.get(fn.logical_id)))
        for target in stack.rule_targets:
            target_fn = stack.functions.get(target.target)  # None for an SNS target
            dead_letters = None
            if target_fn and target_fn.dead_letter_queue:  # Lambda sends there as the function's role
                role = stack.principals.get(target_fn.logical_id)
                dead_letters = (client_as(role, "sqs", self.aws.endpoint), target_fn.dead_letter_queue)
            self.deliveries.append(RuleTargetDelivery(
                self.aws, target, self.timeline, handlers.get(target.target),
                target_fn.name if target_fn else "", self.schedule_every, _topic_key(stack, target.target),
                dead_letters))
        behaviours: list[Any] = [*self.sources, *self.deliveries]
        for props in _of_type(self.app, stack, "AWS::Glue::Crawler"):
            self.crawlers.append(CrawlerRunner(self.aws, props["Name"], self.timeline,
                                               stack.principals.get(props["_logical_id"])))
        for props in _of_type(self.app, stack, "AWS::Glue::Job"):
            self.jobs.append(GlueJobRunner(self.aws, props["Name"], self.timeline,
                                           stack.principals.get(props["_logical_id"])))
        for props in _of_type(self.app, stack, "AWS::SNS::Topic"):
            topic_arn = stack.names[props["_logical_id"]]
            self.outboxes.append(EmailOutbox(self.aws, topic_arn, self.outbox_dir, self.timeline))
        queues = [stack.names[lid] for lid in _of_type_ids(self.app, stack, "AWS::SQS::Queue")]
        topics = {stack.names[lid]: key for lid in _of_type_ids(self.app, stack, "AWS::SNS::Topic")
                  if (key := _topic_key(stack, stack.names[lid]))}
        self.alarms = AlarmEvaluator(self.aws, self.timeline, topics, every=self.metrics_every)
        behaviours += [*self.crawlers, *self.jobs, *self.outboxes,
                       QueueMetrics(self.aws, queues, every=self.metrics_every), self.alarms]
        for behaviour in behaviours:
            self.threads += behaviour.threads(self.stop_event)
        self.threads.append(threading.Thread(target=self._write_audit, args=(self.stop_event,),
                                             daemon=True, name="iam-audit"))
        if self.persist and (self.snapshot_dir / "ledger.json").exists():  # every queue exists by now
            # What the publish step put there is the deploy's, not data: this checkout's code runs.
            restored = persistence.restore(self.aws, stack.outputs, self.snapshot_dir, self._published())
            settled = persistence.settle_interrupted_runs(self.aws, stack.outputs)
            self.timeline.emit("runtime", f"restored {restored} from {self.snapshot_dir}; "
                                          f"interrupted runs: {settled}")
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
            saved = persistence.save(self.aws, self.stack.outputs, self.snapshot_dir, self._published())
            self.timeline.emit("runtime", f"state saved to {self.snapshot_dir}: {saved}")
        for job in self.jobs:
            if job.spark is not None and not self.keep_spark:
                job.spark.stop()
        self._audit_file().write_text(json.dumps(self.audit.to_dict(), indent=1))
        Enforcer.uninstall()
        self.aws.stop()
        (self.state_dir / "runtime.json").unlink(missing_ok=True)

    def __enter__(self) -> Runtime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _overran(self, function: str, seconds: float) -> None:
        self.overruns.append((function, round(seconds, 1)))
        self.timeline.emit("error", f"{function}: invocation ran {seconds:.1f} s, past its timeout "
                                    "(on AWS, Lambda would have stopped it there)")

    def _published(self) -> dict[str, tuple[str, ...]]:
        """Bucket -> the key prefixes the deploy's publish step owns there."""
        return {self.stack.outputs["ArtifactsBucketName"]: PUBLISHED_PREFIXES}

    def _audit_file(self) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return self.state_dir / "iam.json"

    def _write_audit(self, stop: threading.Event) -> None:
        """For `sluice iam` and `sluice status` in another process: rewritten when it changes, at
        most once a second and at most 5% of the time (a burst makes tens of thousands of kinds of
        call; writing them all every second took 15% of the runtime's CPU in a 10,000-file burst)."""
        written, pause = -1, 1.0
        while not stop.wait(pause):
            if self.audit.version != written:
                began = time.monotonic()
                written = self.audit.version
                path = self._audit_file()
                path.with_suffix(".tmp").write_text(json.dumps(self.audit.to_dict(), indent=1))
                path.with_suffix(".tmp").replace(path)
                pause = max(1.0, 20 * (time.monotonic() - began))

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

    def progress(self) -> tuple:
        """A fingerprint of what the pipeline has done: it changes whenever a file changes state,
        a job run moves, a crawl, invocation or delivery happens, or an email is written (the
        schedule's ticks excepted: they come whether or not anything moves). Waits use it to tell
        a slow pipeline (a busy machine) from a stopped one."""
        runs = tuple(run.status for job in self.jobs for run in job.job_runs())
        ledger = DynamoLedger(self.aws.resource("dynamodb").Table(self.stack.outputs["LedgerTableName"]))
        emails = len(list(self.outbox_dir.glob("*.eml"))) if self.outbox_dir.exists() else 0
        return (tuple(sorted(ledger.count_by_state().items())), runs, emails,
                sum(c.crawls for c in self.crawlers), sum(s.invocations for s in self.sources),
                sum(d.delivered for d in self.deliveries if not d.target.schedule))

    def wait_until_settled(self, files: int, stall_s: float = 300, cap_s: float = 3600,
                           stop_on_denial: bool = True) -> dict[str, Any]:
        """Until `files` ledger items exist, none is PENDING or CLAIMED, no job run is waiting or
        running, and every finished run has had its email written. Raises Denied as soon as AWS
        would have refused a call or a delivery (a refused call may be retried for minutes before
        anything else shows it). A busy machine only slows the pipeline: this gives up when
        nothing has moved for `stall_s` seconds (see progress), or after `cap_s` in all."""
        began = moved = time.monotonic()
        seen: tuple | None = None
        while True:
            if stop_on_denial:
                self.raise_on_denial()
            status = self.status()
            ledger = status["ledger"]
            settled = (sum(ledger.values()) >= files and ledger["PENDING"] == 0
                       and ledger["CLAIMED"] == 0 and status["job_runs"]["active"] == 0
                       and status["job_runs"]["finished"] > 0 and not status["emails_per_run"]["missing"])
            if settled:
                return status
            now, state = time.monotonic(), self.progress()
            if state != seen:
                seen, moved = state, now
            if now - moved > stall_s or now - began > cap_s:
                why = f"nothing moved for {now - moved:.0f} s" if now - moved > stall_s else \
                    f"still moving after {cap_s:.0f} s"
                raise TimeoutError(f"pipeline did not settle ({why}): {status}")
            time.sleep(0.2)

    def raise_on_denial(self) -> None:
        denied = self.audit.to_dict()["denied"] if self.audit.denied() else []
        if denied:
            raise Denied(f"AWS would deny {len(denied)} call(s) or delivery(ies):\n{denial_report(denied)}")


def _topic_key(stack: Stack, topic_arn: str) -> str | None:
    """The KMS key ARN an SNS topic of the stack is encrypted with (None: not encrypted)."""
    topic = next((p for lid, p in stack.resources.items() if stack.names.get(lid) == topic_arn), {})
    key = topic.get("KmsMasterKeyId")
    if not key or key.startswith("arn:"):
        return key
    return next((stack.arns[lid] for lid, name in stack.names.items() if name == key),
                f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/{key}")


def _of_type_ids(app: SamApp, stack: Stack, resource_type: str) -> list[str]:
    return [lid for lid, r in sorted(app.resources.items())
            if r["Type"] == resource_type and lid in stack.resources]


def _of_type(app: SamApp, stack: Stack, resource_type: str) -> list[dict]:
    return [{**stack.resources[lid], "_logical_id": lid} for lid, r in app.resources.items()
            if r["Type"] == resource_type and lid in stack.resources]
