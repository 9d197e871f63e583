"""SNS email subscriptions, delivered as .eml files in an outbox folder.

For every topic with email subscribers, an internal queue is subscribed; each message that arrives
is written once per subscriber as a standard RFC 5322 message that any mail program opens: the
message as it was published, and its Subject, or SNS's own when the publisher gave none ("AWS
Notification Message": EventBridge gives none, so every run's email has it). read_outbox() reads
them back, decoded as a mail program would:

    >>> [mail.subject for mail in read_outbox(Path("/no/such/outbox"))]
    []
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path

from sluice.aws.account import queue_arn
from sluice.aws.emulator import Emulator
from sluice.aws.sqs import drain
from sluice.timeline import Timeline

DEFAULT_SUBJECT = "AWS Notification Message"  # SNS's, for a message published without a Subject


class EmailOutbox:
    def __init__(self, aws: Emulator, topic_arn: str, outbox: Path, timeline: Timeline) -> None:
        self.sns = aws.client("sns")
        self.sqs = aws.client("sqs")
        self.topic_arn = topic_arn
        self.outbox = outbox
        self.timeline = timeline
        topic = topic_arn.rsplit(":", 1)[-1]
        self.queue_url = self.sqs.create_queue(QueueName=f"{topic}-email-outbox")["QueueUrl"]
        # Not raw: SNS's JSON envelope carries the Subject (when there is one) beside the Message.
        self.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn(self.queue_url))
        self.display_name = self.sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"].get(
            "DisplayName") or topic
        self.sent = 0

    def recipients(self) -> list[str]:
        subscriptions = self.sns.list_subscriptions_by_topic(TopicArn=self.topic_arn)["Subscriptions"]
        return [s["Endpoint"] for s in subscriptions if s["Protocol"] == "email"]

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        return [threading.Thread(target=drain, args=(self.sqs, self.queue_url, stop, self._mail), daemon=True,
                                 name="sns-email")]

    def _mail(self, message: dict) -> bool:
        """One message of the topic, written once per subscriber."""
        envelope = json.loads(message["Body"])
        for recipient in self.recipients():
            path = self.write(recipient, envelope["Message"], envelope.get("Subject"))
            self.timeline.emit("sns", f"email to {recipient} -> {path}")
        return True

    def write(self, recipient: str, body: str, subject: str | None = None) -> Path:
        now = datetime.now(UTC)
        mail = EmailMessage()
        mail["From"] = f"{self.display_name} <no-reply@sns.amazonaws.com>"
        mail["To"] = recipient
        mail["Date"] = format_datetime(now)
        mail["Subject"] = subject or DEFAULT_SUBJECT
        mail.set_content(body)
        self.outbox.mkdir(parents=True, exist_ok=True)
        self.sent += 1
        path = self.outbox / f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{self.sent:04d}.eml"
        path.write_bytes(bytes(mail))
        return path


@dataclass(frozen=True)
class Email:
    """One message of the outbox, decoded."""

    path: Path
    sender: str
    recipient: str
    date: str
    subject: str
    body: str

    @property
    def text(self) -> str:
        """Subject and body, the part a reader searches."""
        return f"{self.subject}\n{self.body}"


def read_outbox(outbox: Path) -> list[Email]:
    """The outbox's messages, oldest first (their names begin with the time they were written)."""
    if not outbox.is_dir():
        return []
    emails = []
    for path in sorted(outbox.glob("*.eml")):
        mail = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        # A header longer than a line is folded when written ("Subject:\n Sluice run ..."), and
        # its unfolded value keeps the fold's leading space.
        header = {name: str(mail[name] or "").strip() for name in ("From", "To", "Date", "Subject")}
        emails.append(Email(path, header["From"], header["To"], header["Date"], header["Subject"],
                            mail.get_content()))
    return emails
