"""The ledger in DynamoDB: one item per input file, moved between states with conditional writes.

Every transition is a conditional update on the item's current state (and run), so two Lambda
invocations, a Glue job and a sweeper can race without ever both owning a file.

    >>> ledger = DynamoLedger(boto3.resource("dynamodb").Table("sluice-ledger"))  # doctest: +SKIP
    >>> ledger.record_pending(FileRef("raw", "orders/a.csv", "9b2c", 120))       # doctest: +SKIP
    <State.PENDING: 'PENDING'>
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from ledger.model import FileRef, RowCounts, RunBudget, State, state_after_failed_run
from ledger.summary import ReturnedFile

BY_STATE_INDEX = "ByState"  # state (HASH), updated_at (RANGE): find PENDING oldest first
BY_RUN_INDEX = "ByRun"  # run_id (HASH): a run's files; sparse, only items that hold a run


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _condition_failed(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class DynamoLedger:
    """Adapter over a boto3 DynamoDB Table resource (see template.yaml, FileLedger)."""

    def __init__(self, table: Any, now: Callable[[], datetime] = utc_now) -> None:
        self.table = table
        self.now = now

    # --- intake (StartCrawlerFunction) -------------------------------------------------------

    def record_pending(self, ref: FileRef, created: datetime | None = None) -> State:
        """Record a new file as PENDING; `created` is its S3 event time (default: now), which
        decides the crawl that catalogues it. A duplicate event is a no-op: the existing item's
        state is returned unchanged."""
        stamp = _iso(self.now())
        item = {**ref.to_dict(), "state": State.PENDING.value, "attempts": 0,
                "created_at": _iso(created) if created else stamp, "received_at": stamp, "updated_at": stamp}
        return self._put_if_new(item)

    def record_skipped(self, ref: FileRef, reason: str) -> State:
        """Record a file that will never be processed, with the reason (never silently lost)."""
        stamp = _iso(self.now())
        item = {**ref.to_dict(), "state": State.SKIPPED.value, "reason": reason, "attempts": 0,
                "received_at": stamp, "updated_at": stamp}
        return self._put_if_new(item)

    def _put_if_new(self, item: dict) -> State:
        item = {k: v for k, v in item.items() if v is not None}
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(file_id)")
            return State(item["state"])
        except ClientError as error:
            if not _condition_failed(error):
                raise
        existing = self.get(item["file_id"])
        return State(existing["state"]) if existing else State(item["state"])

    def in_flight_besides(self, file_ids: set[str]) -> bool:
        """Is any file other than these PENDING or CLAIMED? (Is the pipeline busy?)"""
        for state in (State.PENDING, State.CLAIMED):
            page = self.table.query(
                IndexName=BY_STATE_INDEX, KeyConditionExpression="#s = :state",
                ExpressionAttributeNames={"#s": "state"}, ExpressionAttributeValues={":state": state.value},
                ProjectionExpression="file_id", Limit=len(file_ids) + 1)
            if any(item["file_id"] not in file_ids for item in page.get("Items", [])):
                return True
        return False

    def get(self, file_id: str) -> dict | None:
        return self.table.get_item(Key={"file_id": file_id}, ConsistentRead=True).get("Item")

    def items(self, file_ids: list[str]) -> dict[str, dict]:
        """The current items of these files, read consistently, 100 keys per BatchGetItem (its
        limit); keys DynamoDB leaves unprocessed are asked again (DynamoDB API reference,
        BatchGetItem: UnprocessedKeys). Files without an item are absent from the answer."""
        found: dict[str, dict] = {}
        name = self.table.name
        client = self.table.meta.client
        for start in range(0, len(file_ids), 100):
            request: dict[str, Any] = {name: {"Keys": [{"file_id": f} for f in file_ids[start:start + 100]],
                                              "ConsistentRead": True}}
            for attempt in range(10):
                page = client.batch_get_item(RequestItems=request)
                found.update({item["file_id"]: item for item in page["Responses"].get(name, [])})
                request = page.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)  # throttled: back off, as the API reference advises
            else:
                raise RuntimeError(f"BatchGetItem left keys unprocessed after 10 attempts: {request}")
        return found

    # --- runs (StartJobFunction) -------------------------------------------------------------

    def claim_pending(self, run_id: str, budget: RunBudget, created_before: datetime | None = None,
                      stop: Callable[[], bool] | None = None) -> list[FileRef]:
        """Move PENDING files into run_id, oldest first, until the budget is full or `stop()`
        says time is up; with `created_before`, only files created before it. A file another
        claimer took first fails its condition and is simply passed over."""
        claimed: list[FileRef] = []
        pages = min(budget.max_files, 100)  # read what is needed, not every pending item at once
        for item in self.by_state(State.PENDING, page_size=pages, created_before=created_before):
            ref = FileRef.from_dict(item)
            if not budget.fits(ref) or (stop is not None and stop()):
                break
            if self._move(ref.file_id, State.PENDING, State.CLAIMED, run_id=run_id):
                budget.take(ref)
                claimed.append(ref)
            if budget.full:
                break
        return claimed

    def release_claim(self, run_id: str, refs: list[FileRef]) -> int:
        """Give a run's files back (the job never started, or the runtime was stopped under it):
        PENDING again, attempts unchanged. Returns how many were still the run's to give back."""
        released = 0
        for ref in refs:
            released += self._update(
                ref.file_id,
                "SET #s = :pending, updated_at = :now REMOVE run_id",
                "#s = :claimed AND run_id = :run",
                {":pending": State.PENDING.value, ":claimed": State.CLAIMED.value, ":run": run_id},
            )
        return released

    def fail_run(self, run_id: str, max_attempts: int, reason: str,
                 only: set[str] | None = None) -> dict[State, int]:
        """A run failed, timed out or was stopped: each of its still-claimed files (or just the
        file ids in `only`) goes back to PENDING with attempts+1, or to FAILED with the reason
        once attempts reach max_attempts. Returns how many files went to each state."""
        moved = {State.PENDING: 0, State.FAILED: 0}
        for item in self.by_run(run_id):
            if item["state"] != State.CLAIMED.value or (only is not None and item["file_id"] not in only):
                continue
            new_state, attempts = state_after_failed_run(int(item.get("attempts", 0)), max_attempts)
            done = self._update(
                item["file_id"],
                "SET #s = :new, attempts = :attempts, reason = :reason, last_run_id = :run, "
                "updated_at = :now REMOVE run_id",
                "#s = :claimed AND run_id = :run",
                {":new": new_state.value, ":attempts": attempts, ":reason": reason,
                 ":claimed": State.CLAIMED.value, ":run": run_id},
            )
            moved[new_state] += int(done)
        return moved

    def retry_failed(self) -> int:
        """Give every FAILED file a fresh start (PENDING, attempts 0; the last reason is kept as
        previous_reason): what `sluice redrive` does once the cause is fixed. Returns how many."""
        retried = 0
        for item in list(self.by_state(State.FAILED)):
            retried += int(self._update(
                item["file_id"], "SET #s = :pending, attempts = :zero, previous_reason = reason, "
                "updated_at = :now REMOVE reason", "#s = :failed",
                {":pending": State.PENDING.value, ":zero": 0, ":failed": State.FAILED.value}))
        return retried

    # --- the Glue job ------------------------------------------------------------------------

    def mark_done(self, run_id: str, file_id: str, counts: RowCounts) -> bool:
        """Mark one of run_id's files DONE with its row counts. Idempotent for the same run (a
        retried attempt of the run overwrites its own counts); refuses files the run does not own."""
        return self._update(
            file_id,
            "SET #s = :done, rows_in = :rin, rows_out = :rout, rows_bad = :rbad, "
            "rows_duplicate = :rdup, updated_at = :now",
            "run_id = :run AND (#s = :claimed OR #s = :done)",
            {":done": State.DONE.value, ":claimed": State.CLAIMED.value, ":run": run_id,
             ":rin": counts.rows_in, ":rout": counts.rows_out, ":rbad": counts.rows_bad,
             ":rdup": counts.rows_duplicate},
        )

    def held_by(self, run_id: str, refs: list[FileRef]) -> tuple[list[FileRef], list[ReturnedFile]]:
        """Which of a run's manifest files it holds when it begins: CLAIMED by it, or DONE by it
        in an earlier attempt of the same run (read consistently). The others are left out of
        the run with the reason and never written by it: whoever holds them writes them. Behind
        the run record's fence this finds nothing, short of a fault; it is the last line that
        keeps a row from being written twice."""
        items = self.items([ref.file_id for ref in refs])
        held: list[FileRef] = []
        not_held: list[ReturnedFile] = []
        for ref in refs:
            item = items.get(ref.file_id)
            ours = item is not None and item.get("run_id") == run_id
            if ours and item is not None and item["state"] in (State.CLAIMED, State.DONE):
                held.append(ref)
                continue
            where = "no ledger item" if item is None else item["state"] + (
                f" by {item['run_id']}" if item.get("run_id") else "")
            not_held.append(ReturnedFile(ref.uri, f"not held by this run when it began ({where}): left "
                                                  "to its holder"))
        return held, not_held

    # --- reading -----------------------------------------------------------------------------

    def by_state(self, state: State, updated_before: datetime | None = None,
                 page_size: int | None = None, created_before: datetime | None = None) -> Iterator[dict]:
        """Items in a state, oldest first (eventually consistent: re-check before acting)."""
        condition = "#s = :state"
        values: dict[str, Any] = {":state": state.value}
        options: dict[str, Any] = {"Limit": page_size} if page_size else {}
        if updated_before is not None:
            condition += " AND updated_at < :before"
            values[":before"] = _iso(updated_before)
        if created_before is not None:  # items recorded before created_at existed count as created
            options["FilterExpression"] = "attribute_not_exists(created_at) OR created_at <= :created"
            values[":created"] = _iso(created_before)
        yield from self._query(IndexName=BY_STATE_INDEX, KeyConditionExpression=condition,
                               ExpressionAttributeNames={"#s": "state"},
                               ExpressionAttributeValues=values, **options)

    def by_run(self, run_id: str) -> Iterator[dict]:
        yield from self._query(IndexName=BY_RUN_INDEX, KeyConditionExpression="run_id = :run",
                               ExpressionAttributeValues={":run": run_id})

    def files(self, **scan: Any) -> Iterator[dict]:
        """Every file item (run records left out), by a consistent Scan: for reports and tests,
        not for the pipeline's own decisions. `scan`: a ProjectionExpression and its names."""
        names = {**scan.pop("ExpressionAttributeNames", {}), "#key": "key"}
        kwargs = {"ConsistentRead": True, **scan, "FilterExpression": "attribute_exists(#key)",
                  "ExpressionAttributeNames": names}
        while True:
            page = self.table.scan(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def count_by_state(self) -> dict[str, int]:
        counts = {}
        for state in State:
            total, start = 0, None
            while True:
                kwargs: dict[str, Any] = dict(
                    IndexName=BY_STATE_INDEX, Select="COUNT", KeyConditionExpression="#s = :state",
                    ExpressionAttributeNames={"#s": "state"},
                    ExpressionAttributeValues={":state": state.value})
                if start:
                    kwargs["ExclusiveStartKey"] = start
                page = self.table.query(**kwargs)
                total += page["Count"]
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
            counts[state.value] = total
        return counts

    # --- plumbing ----------------------------------------------------------------------------

    def _query(self, **kwargs: Any) -> Iterator[dict]:
        while True:
            page = self.table.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _move(self, file_id: str, old: State, new: State, run_id: str) -> bool:
        return self._update(
            file_id,
            "SET #s = :new, run_id = :run, updated_at = :now",
            "#s = :old",
            {":new": new.value, ":old": old.value, ":run": run_id},
        )

    def _update(self, file_id: str, update: str, condition: str, values: dict[str, Any]) -> bool:
        """One conditional update; False when the condition did not hold (someone else won)."""
        values = {**values, ":now": _iso(self.now())}
        try:
            self.table.update_item(
                Key={"file_id": file_id},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues=values,
            )
            return True
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise
