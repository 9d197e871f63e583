"""SQS itself: the internal queues the runtime drains (an EventBridge target's, an email
outbox's), the metrics SQS publishes for each queue, and who may send to a queue - S3 delivers a
bucket's notifications to a queue only if the queue's policy lets s3.amazonaws.com send from
that bucket ("Granting permissions to publish event notification messages to a destination", S3
user guide), a rule checked when the notification is configured (sluice.stack.rules) and on each
delivery (see correct_moto). Lambda's poller of a queue is sluice.aws.sqs_event_source.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from sluice.aws import iam_hook
from sluice.aws.account import ACCOUNT_ID
from sluice.aws.emulator import Emulator
from sluice.aws.iam_hook import Enforcer
from sluice.aws.moto_patch import replace, serialise


def drain(sqs: Any, queue_url: str, stop: threading.Event, handle: Callable[[dict], bool]) -> None:
    """Receive the queue's messages until `stop`, each handed to `handle` and deleted when it
    answers True (False: it comes back after the queue's visibility timeout). Long polling: moto
    wakes the call when a message arrives, so an idle queue costs no spinning and a new message
    is picked up at once."""
    while not stop.is_set():
        try:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                           AttributeNames=["All"], WaitTimeSeconds=1).get("Messages", [])
        except ClientError:  # a failed receive: ask again, as an SDK's poller does
            continue
        for message in messages:
            if handle(message):
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


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


def s3_may_send(enforcer: Enforcer | None, bucket: str, queue: str,
                operation: str = "delivery.s3") -> bool:
    """Whether the queue's policy lets S3 deliver this bucket's notifications to `queue` (an ARN):
    s3.amazonaws.com asks sqs:SendMessage with the bucket as aws:SourceArn and its account as
    aws:SourceAccount. Decided (and audited) by `enforcer`; None: nothing is checked."""
    return enforcer is None or enforcer.delivery(
        "s3.amazonaws.com", operation, "sqs:SendMessage", queue,
        {"aws:SourceArn": f"arn:aws:s3:::{bucket}", "aws:SourceAccount": ACCOUNT_ID}).allowed


# --- where moto differs from AWS ------------------------------------------------------------

def correct_moto() -> None:
    """Apply this service's corrections to moto (idempotent; sluice.aws.corrections)."""
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

    lock = threading.RLock()
    serialise(SQSBackend, ("send_message", "send_message_batch", "delete_message", "delete_message_batch",
                           "change_message_visibility", "change_message_visibility_batch", "purge_queue",
                           "get_queue_attributes"), lock)

    def split_long_poll(receive: Any) -> Any:
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

        return receive_message

    replace(SQSBackend, "receive_message", split_long_poll)


def _linear_sqs_scans() -> None:
    """moto recounts a queue (visible, in flight, delayed) on every SendMessage, and tests each
    message's visibility by reading the clock: a 10,000-message backlog made every S3 upload take
    tens of milliseconds. Same answers, one clock read per scan."""
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Queue, SQSBackend

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

    # moto's properties are replaced with properties
    replace(Queue, "messages", lambda _: property(visible_now))
    replace(Queue, "approximate_number_of_messages_not_visible", lambda _: property(in_flight))
    replace(Queue, "approximate_number_of_messages_delayed", lambda _: property(delayed))
    replace(SQSBackend, "is_message_valid_based_on_retention_period", lambda _: within_retention)


def _s3_delivers_as_the_queue_policy_allows() -> None:
    """moto delivers every S3 notification; AWS drops one the queue's policy does not allow
    (the denial is in the audit)."""
    from moto.s3 import notifications

    def as_allowed(original: Any) -> Any:
        def send(account_id: str, event_body: Any, queue_name: str, region_name: str) -> None:
            records = event_body.get("Records") or [{}]
            bucket = records[0].get("s3", {}).get("bucket", {}).get("name") or event_body.get("Bucket", "")
            queue = f"arn:aws:sqs:{region_name}:{account_id}:{queue_name}"
            if s3_may_send(iam_hook.active(), bucket, queue):
                original(account_id, event_body, queue_name, region_name)

        return send

    replace(notifications, "_send_sqs_message", as_allowed)
