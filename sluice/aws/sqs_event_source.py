"""Lambda's SQS event source mapping, as Lambda runs it: batch size, batching window, up to
MaximumConcurrency concurrent batches, partial batch failures (ReportBatchItemFailures), and the
queue's own visibility timeout and redrive policy for what fails (moto moves a message to the DLQ
after maxReceiveCount receives).

The mapping polls with the function's execution role, as Lambda does: the role must allow
sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes on the queue, or Lambda refuses
the mapping ("Creating and configuring an Amazon SQS event source mapping", Lambda developer
guide, execution role permissions).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from sluice.aws import iam_hook
from sluice.aws.account import REGION, queue_arn
from sluice.aws.awslambda import FakeContext, record_error
from sluice.aws.emulator import Emulator
from sluice.aws.faults import Faults
from sluice.aws.iam import Principal
from sluice.timeline import Timeline

POLL_SECONDS = 0.05
MAPPING_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


@dataclass
class EventSourceMapping:
    """An AWS::Lambda::EventSourceMapping from an SQS queue, as deployed (sluice.stack.deploy)."""

    function: str  # logical id
    queue_url: str
    batch_size: int
    batching_window: int
    max_concurrency: int
    report_batch_item_failures: bool


class MappingRefused(ValueError):
    """Lambda refuses to create the mapping (InvalidParameterValueException)."""


class SqsEventSource:
    def __init__(self, aws: Emulator, mapping: EventSourceMapping, function_name: str,
                 handler: Callable[[dict, Any], dict], timeline: Timeline, faults: Faults,
                 role: Principal | None = None) -> None:
        enforcer = iam_hook.active()
        if role is not None and enforcer is not None:
            for action in MAPPING_ACTIONS:
                if not enforcer.check(role, "lambda.CreateEventSourceMapping", action,
                                      queue_arn(mapping.queue_url), {}).allowed:
                    raise MappingRefused(
                        f"{function_name}: the provided execution role {role.name} does not have "
                        f"permissions to call {action.split(':')[1]} on SQS ({mapping.queue_url})")
        self.sqs = iam_hook.client_as(role, "sqs", aws.endpoint) if role else aws.client("sqs")
        self.aws = aws
        self.mapping = mapping
        self.function_name = function_name
        self.handler = handler
        self.timeline = timeline
        self.faults = faults
        self.queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=mapping.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.invocations = 0
        self.failed_records = 0

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        return [threading.Thread(target=self._worker, args=(stop,), daemon=True,
                                 name=f"sqs-{self.function_name}-{i}")
                for i in range(self.mapping.max_concurrency)]

    def _worker(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                batch = self._gather(stop)
            except ClientError as error:  # the poller outlives a failed receive, as Lambda's does
                self.timeline.emit("error", f"{self.function_name}: receive failed: {error}")
                time.sleep(0.5)
                continue
            if batch:
                self._invoke(batch)

    def _gather(self, stop: threading.Event) -> list[dict]:
        """Wait for a first message, then gather until the batch is full or the window closes."""
        batch: list[dict] = []
        deadline = None
        while not stop.is_set():
            want = min(10, self.mapping.batch_size - len(batch))
            # An empty batch waits in a long poll (woken by the next message); a started batch
            # only tops up until its window closes.
            got = self.sqs.receive_message(QueueUrl=self.mapping.queue_url, MaxNumberOfMessages=want,
                                           AttributeNames=["All"], WaitTimeSeconds=0 if batch else 1
                                           ).get("Messages", [])
            batch.extend(got)
            if batch and deadline is None:
                deadline = time.monotonic() + self.mapping.batching_window
            if len(batch) >= self.mapping.batch_size or (deadline and time.monotonic() >= deadline):
                return batch
            if not got and batch:
                time.sleep(POLL_SECONDS)
        return batch

    def _crash_after_half(self, batch: list[dict]) -> None:
        """The function dies having handled part of its batch: what it did stays done, and the
        whole batch comes back after the visibility timeout, as on Lambda."""
        half = batch[:max(1, len(batch) // 2)]
        self.handler({"Records": [self._record(m) for m in half]}, FakeContext(self.function_name))
        raise RuntimeError(f"injected crash after {len(half)} of {len(batch)} records")

    def _record(self, message: dict) -> dict:
        return {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"], "attributes": message.get("Attributes", {}),
                "messageAttributes": {}, "md5OfBody": message["MD5OfBody"], "eventSource": "aws:sqs",
                "eventSourceARN": self.queue_arn, "awsRegion": REGION}

    def _invoke(self, batch: list[dict]) -> None:
        self.invocations += 1
        started = time.monotonic()
        try:
            if self.faults.take("handler-crash"):
                self._crash_after_half(batch)
            response = self.handler({"Records": [self._record(m) for m in batch]},
                                    FakeContext(self.function_name)) or {}
            if self.faults.take("sqs-duplicate"):  # at-least-once: the same message once more
                self.timeline.emit("sqs", f"{self.function_name}: message delivered twice (injected)")
                self.handler({"Records": [self._record(batch[0])]}, FakeContext(self.function_name))
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            if not self.mapping.report_batch_item_failures and failed:
                failed = {m["MessageId"] for m in batch}
        except Exception as error:  # the whole batch returns to the queue, as on Lambda
            record_error(self.aws, self.function_name)
            self.timeline.emit("error", f"{self.function_name} raised {error!r}; batch retried")
            failed = {m["MessageId"] for m in batch}
        self.failed_records += len(failed)
        done = [m for m in batch if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(QueueUrl=self.mapping.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(done[start:start + 10])])
        took = (time.monotonic() - started) * 1000
        note = f", {len(failed)} reported failed (retried after the visibility timeout)" if failed else ""
        self.timeline.emit("lambda", f"{self.function_name}: batch of {len(batch)}{note} [{took:.0f} ms]")
