"""Adapter: a notification goes out once, as an event on the default bus that the template's
NotifyRule hands to the notification topic.

Once: the same run-ended event may reach the function more than once (EventBridge: "In rare
cases, the same rule can run more than once for a single event"; Lambda retries a failed
asynchronous invocation twice), so each report is claimed first with a conditional write of
runs/_reports/<name>.json (S3 PutObject If-None-Match: *, "Add preconditions to S3 operations with
conditional requests", S3 user guide) and only the invocation that made the claim sends it. A claim
whose sender died before sending (older than `grace`, one function timeout) is taken over with
If-Match on its ETag, so no report is lost either. A send that fails raises: the invocation fails,
Lambda retries it, and after the retries the event rests in the function's DLQ (an alarm).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from run_summary import Report

REPORTS = "runs/_reports/"  # under runs/: StartJobRole writes there; the lifecycle expires it


class NotificationFailed(RuntimeError):
    """PutEvents refused the entry (it answers 200 with FailedEntryCount; "PutEvents", EventBridge
    API reference)."""


class EventBridgeNotifier:
    def __init__(self, events: Any, s3: Any, bucket: str, source: str,
                 grace: timedelta = timedelta(seconds=900),
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.events = events
        self.s3 = s3
        self.bucket = bucket
        self.source = source  # sluice.<Stage>: the source NotifyRule matches, and IAM allows
        self.grace = grace
        self.now = now

    def send(self, report: Report) -> bool:
        """Put the report's event; False when another invocation has sent it, or is sending it.
        A retry sends the report the first attempt composed (a failed run's counts are known only
        to the invocation that settled it)."""
        key = f"{REPORTS}{report.name}.json"
        claimed = self._claim(key, report)
        if claimed is None:
            return False
        answer = self.events.put_events(Entries=[{
            "Source": self.source, "DetailType": claimed.detail_type, "Detail": json.dumps(claimed.detail),
            "Resources": []}])
        if answer.get("FailedEntryCount"):
            entry = answer["Entries"][0]
            self._mark(key, "failed", claimed)  # the retry sends this very report
            raise NotificationFailed(f"PutEvents refused {claimed.detail_type} for {claimed.name}: "
                                     f"{entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
        self._mark(key, "sent", claimed)
        return True

    def _mark(self, key: str, state: str, report: Report, **condition: str) -> None:
        body = json.dumps({"state": state, "at": self.now().isoformat(), "detail_type": report.detail_type,
                           "name": report.name, "detail": report.detail})
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body.encode(), ContentType="application/json",
                           **condition)

    def _claim(self, key: str, report: Report) -> Report | None:
        """The report this invocation is to send, or None when it is not this one's to send."""
        try:
            self._mark(key, "sending", report, IfNoneMatch="*")
            return report
        except ClientError as error:
            if not _lost_race(error):
                raise
        found = self.s3.get_object(Bucket=self.bucket, Key=key)
        claim = json.loads(found["Body"].read())
        stale = datetime.fromisoformat(claim["at"]) <= self.now() - self.grace
        if claim["state"] == "sent" or (claim["state"] == "sending" and not stale):
            return None  # sent already, or another invocation is sending it now
        stored = Report(claim["detail_type"], claim["name"], claim["detail"])
        try:  # its send failed, or its sender died: take the claim over, unless another just did
            self._mark(key, "sending", stored, IfMatch=found["ETag"])
        except ClientError as error:
            if _lost_race(error):
                return None
            raise
        return stored


def _lost_race(error: ClientError) -> bool:
    """412: the precondition failed; 409: a concurrent conditional write to the key is under way
    ("Add preconditions to S3 operations with conditional requests", S3 user guide)."""
    return error.response["Error"]["Code"] in ("PreconditionFailed", "412", "ConditionalRequestConflict",
                                               "409")
