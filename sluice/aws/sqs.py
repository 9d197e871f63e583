"""SQS -> Lambda event source mapping, as Lambda runs it: batch size, batching window, up to
MaximumConcurrency concurrent batches, partial batch failures (ReportBatchItemFailures), and
the queue's own visibility timeout and redrive policy for what fails (moto moves a message to the
DLQ after maxReceiveCount receives).

The mapping polls with the function's execution role, as Lambda does: the role must allow
sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes on the queue, or Lambda refuses
the mapping ("Creating and configuring an Amazon SQS event source mapping", Lambda developer
guide, execution role permissions). S3 delivers its notifications to a queue only if the queue's
policy lets s3.amazonaws.com send from that bucket ("Granting permissions to publish event
notification messages to a destination", S3 user guide); see correct_moto."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from sluice.aws import iam_hook
from sluice.aws.awslambda import FakeContext, record_error
from sluice.aws.emulator import ACCOUNT_ID, REGION, Emulator
from sluice.aws.iam import Principal
from sluice.faults import Faults
from sluice.stack.deploy import EventSourceMapping
from sluice.timeline import Timeline

POLL_SECONDS = 0.05
MAPPING_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


class MappingRefused(ValueError):
    """Lambda refuses to create the mapping (InvalidParameterValueException)."""


def queue_arn(url: str) -> str:
    account, name = url.rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{REGION}:{account}:{name}"


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


class QueueMetrics:
    """What SQS publishes to CloudWatch for each queue (AWS/SQS, dimension QueueName): the visible
    and in-flight message counts, sampled every `every` seconds (SQS: every minute; "Available
    CloudWatch metrics for Amazon SQS", SQS developer guide). The alarms on the dead-letter queues
    read ApproximateNumberOfMessagesVisible. (SQS stops emitting for a queue idle for six hours;
    here every queue is sampled always, which the alarms' TreatMissingData ignore makes moot.)"""

    METRICS = {"ApproximateNumberOfMessagesVisible": "ApproximateNumberOfMessages",
               "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible"}

    def __init__(self, aws: Emulator, queue_urls: list[str], every: float = 10.0) -> None:
        self.sqs, self.cloudwatch = aws.client("sqs"), aws.client("cloudwatch")
        self.queue_urls = queue_urls
        self.every = every

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        return [threading.Thread(target=self._loop, args=(stop,), daemon=True, name="sqs-metrics")]

    def _loop(self, stop: threading.Event) -> None:
        while True:
            with contextlib.suppress(ClientError):  # a failed sample: the next one comes
                self.publish()
            if stop.wait(self.every):
                return

    def publish(self) -> None:
        for url in self.queue_urls:
            counts = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(self.METRICS.values()))[
                "Attributes"]
            queue = [{"Name": "QueueName", "Value": url.rsplit("/", 1)[-1]}]
            self.cloudwatch.put_metric_data(Namespace="AWS/SQS", MetricData=[
                {"MetricName": metric, "Dimensions": queue, "Value": float(counts[attribute]),
                 "Unit": "Count"} for metric, attribute in self.METRICS.items()])


# --- where moto differs from AWS ------------------------------------------------------------

def correct_moto() -> None:
    """Apply this service's corrections to moto (idempotent); Emulator.start calls it."""
    _atomic_sqs()
    _linear_sqs_scans()
    _s3_delivers_as_the_queue_policy_allows()


def _atomic_sqs() -> None:
    """SQS hands a message to one receiver at a time; moto's threaded server lets two receivers
    walk and change a queue's message lists at once, which under a burst raises "Set changed size
    during iteration" (or hands one message out twice). Serialise moto's queue operations. A long
    poll is split into lock-free waits and locked zero-wait receives, so one idle poller never
    holds up the others."""
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend, "sluice_atomic", False):
        return
    lock = threading.RLock()
    for name in ("send_message", "send_message_batch", "delete_message", "delete_message_batch",
                 "change_message_visibility", "change_message_visibility_batch", "purge_queue",
                 "get_queue_attributes"):
        original = getattr(SQSBackend, name)

        def locked(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        setattr(SQSBackend, name, locked)

    receive = SQSBackend.receive_message

    def receive_message(self: Any, queue_name: str, count: int, wait_seconds_timeout: int,
                        visibility_timeout: int, message_attribute_names: list[str] | None = None) -> Any:
        deadline = unix_time() + (wait_seconds_timeout or 0)
        while True:
            with lock:
                got = receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            remaining = deadline - unix_time()
            if got or remaining <= 0:
                return got
            self.get_queue(queue_name).wait_for_messages(min(1.0, remaining))

    SQSBackend.receive_message = receive_message
    SQSBackend.sluice_atomic = True  # type: ignore[attr-defined]


def _linear_sqs_scans() -> None:
    """moto recounts a queue (visible, in flight, delayed) on every SendMessage, and tests each
    message's visibility by reading the clock: a 10,000-message backlog made every S3 upload take
    tens of milliseconds. Same answers, one clock read per scan."""
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Queue, SQSBackend

    if getattr(Queue, "sluice_fast", False):
        return

    def visible_now(self: Queue) -> list:
        now = unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and now >= m.delayed_until]

    def in_flight(self: Queue) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if now <= m.visible_at)

    def delayed(self: Queue) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def within_retention(self: SQSBackend, queue_name: str, message: Any) -> bool:
        # moto computed every attribute of the queue (three full scans) for each message received
        queue = self.get_queue(queue_name)
        # moto sets a queue's attributes by name (setattr from the request's attribute names)
        retention = int(queue.message_retention_period)  # type: ignore[attr-defined]
        return retention + message.sent_timestamp / 1000 > unix_time_millis() / 1000

    # These replace moto's properties with properties: the stubs see a method's type on the class.
    Queue.messages = property(visible_now)  # type: ignore[assignment]
    Queue.approximate_number_of_messages_not_visible = property(in_flight)  # type: ignore[assignment]
    Queue.approximate_number_of_messages_delayed = property(delayed)  # type: ignore[assignment]
    SQSBackend.is_message_valid_based_on_retention_period = within_retention
    Queue.sluice_fast = True  # type: ignore[attr-defined]


def s3_may_send(bucket: str, queue: str, operation: str = "delivery.s3") -> bool:
    """Whether the queue's policy lets S3 deliver this bucket's notifications (always, when no
    enforcer is installed)."""
    enforcer = iam_hook.active()
    return enforcer is None or enforcer.delivery(
        "s3.amazonaws.com", operation, "sqs:SendMessage", queue,
        {"aws:SourceArn": f"arn:aws:s3:::{bucket}", "aws:SourceAccount": ACCOUNT_ID}).allowed


def refused_notification_destinations(s3: Any, buckets: list[str]) -> list[str]:
    """Each bucket's queue destinations that S3 may not write to: S3 refuses such a notification
    configuration ("Unable to validate the following destination configurations")."""
    refused = []
    for bucket in buckets:
        config = s3.get_bucket_notification_configuration(Bucket=bucket)
        for queue in config.get("QueueConfigurations", []):
            if not s3_may_send(bucket, queue["QueueArn"], "s3.PutBucketNotificationConfiguration"):
                refused.append(f"s3://{bucket} -> {queue['QueueArn']}: the queue policy does not "
                               f"allow s3.amazonaws.com sqs:SendMessage from this bucket")
    return refused


def _s3_delivers_as_the_queue_policy_allows() -> None:
    """moto delivers every S3 notification; AWS drops one the queue's policy does not allow
    (the denial is in the audit)."""
    from moto.s3 import notifications

    original = notifications._send_sqs_message
    if getattr(original, "sluice_patched", False):
        return

    def send(account_id: str, event_body: Any, queue_name: str, region_name: str) -> None:
        records = event_body.get("Records") or [{}]
        bucket = records[0].get("s3", {}).get("bucket", {}).get("name") or event_body.get("Bucket", "")
        if s3_may_send(bucket, f"arn:aws:sqs:{region_name}:{account_id}:{queue_name}"):
            original(account_id, event_body, queue_name, region_name)

    send.sluice_patched = True  # type: ignore[attr-defined]
    notifications._send_sqs_message = send
