"""Shared by the end-to-end tests: put files, wait for the ledger, read emails and output."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ledger.table import DynamoLedger
from sluice.aws.sns import read_outbox
from sluice.runtime import Runtime
from sluice.stack.resolve import local_parameters
from sluice.timeline import Timeline

# A test waits for crawl pacing and message redelivery like a user does, only on a shorter clock:
# crawls at most every 2 s while files are in flight, and a message a busy crawler turned away comes
# back after 4 s (both within what the template and Lambda accept: visibility >= function timeout,
# here 3 s, which is also StartJobFunction's claim grace).
PACED = {"CrawlIntervalSeconds": "2", "IngestVisibilityTimeoutSeconds": "4", "FunctionTimeoutSeconds": "3"}
# The fault modules' clock: also 4 receives before the DLQ and a sweep of files pending 3 s.
FAULT_CLOCK = {**PACED, "IngestMaxReceiveCount": "4", "SweepAfterSeconds": "3"}


@contextmanager
def started_runtime(state: Path, schedule_every: float | None = None, persist: bool = False,
                    denials_expected: bool = False, **parameters: str) -> Iterator[Runtime]:
    """The one way the end-to-end tests start a runtime: quiet, samconfig's [local] parameters with
    `parameters` on top (PACED by default), and Spark up before the first test runs. The worker
    process keeps one JVM for all its runtimes and the Glue tests (spark_session's getOrCreate)."""
    with Runtime(state_dir=state, timeline=Timeline(quiet=True), schedule_every=schedule_every,
                 parameters={**local_parameters(), **PACED, **parameters}, persist=persist,
                 keep_spark=True) as rt:
        for job in rt.jobs:
            assert job.ready.wait(timeout=CAP_S), "Spark did not start"
        yield rt
        # IAM is enforced: no call or delivery was denied that a test did not ask for
        assert denials_expected or rt.audit.denied() == [], rt.audit.denied()


def orders_csv(n: int, start: int = 0, day: str = "2026-11-24") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["order_id", "customer_id", "country", "amount", "currency", "event_time"])
    for i in range(start, start + n):
        writer.writerow([f"o-{i:06d}", f"c-{i % 50:04d}", "DE", f"{i % 90 + 1}.50", "EUR",
                         f"{day}T{i % 24:02d}:15:00Z"])
    return out.getvalue().encode()


def ledger_of(rt: Runtime) -> DynamoLedger:
    return DynamoLedger(rt.aws.resource("dynamodb").Table(rt.stack.outputs["LedgerTableName"]))


def ledger_items(rt: Runtime, dataset: str) -> list[dict]:
    return [i for i in ledger_of(rt).files() if i["key"].startswith(f"{dataset}/")]


# A busy machine slows the pipeline; it does not stop it. So a wait fails only when nothing in the
# pipeline has moved for STALL_S (Runtime.progress: no file changed state, no job run, crawl,
# invocation, delivery or email), or after CAP_S in all - never because the machine was slow.
STALL_S = 300
CAP_S = 1800


def until(rt: Runtime, check: Callable[[], Any], what: str, stall: float = STALL_S,
          cap: float = CAP_S) -> Any:
    """check()'s first truthy answer, asked every 0.2 s while the pipeline moves; on failure the
    message says what was awaited, for how long, and the pipeline's state."""
    began = moved = time.monotonic()
    seen = rt.progress()
    while True:
        if found := check():
            return found
        now, state = time.monotonic(), rt.progress()
        if state != seen:
            seen, moved = state, now
        if now - moved > stall or now - began > cap:
            why = f"nothing moved for {now - moved:.0f} s" if now - moved > stall else f"{cap:.0f} s in all"
            raise AssertionError(f"{what}: not reached ({why}); ledger {rt.status()['ledger']}, "
                                 f"job runs {rt.status()['job_runs']['by_state']}")
        time.sleep(0.2)


def wait(rt: Runtime, dataset: str, files: int, states=("DONE", "SKIPPED", "FAILED")) -> list[dict]:
    """The dataset's ledger items, once `files` of them exist and every one is in `states`."""
    def settled() -> list[dict] | None:
        items = ledger_items(rt, dataset)
        return items if len(items) >= files and all(i["state"] in states for i in items) else None

    try:
        return until(rt, settled, f"{dataset}: {files} files in {states}")
    except AssertionError as error:
        states_now = [(i["key"], i["state"]) for i in ledger_items(rt, dataset)]
        raise AssertionError(f"{error}; {states_now}") from None


def emails(rt: Runtime) -> list[str]:
    """Subject and body of each .eml, decoded as a mail program would."""
    return [mail.text for mail in read_outbox(rt.outbox_dir)]


def wait_for_email(rt: Runtime, containing: str, before: int) -> str:
    """The newest email after the first `before` that contains `containing`."""
    def fresh() -> str | None:
        found = [e for e in emails(rt)[before:] if containing in e]
        return found[-1] if found else None

    return until(rt, fresh, f"an email containing {containing!r} (after {before})")


def processed_keys(rt: Runtime, dataset: str) -> list[str]:
    s3 = rt.aws.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=rt.stack.outputs["ProcessedBucketName"], Prefix=f"{dataset}/")
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def put(rt: Runtime, key: str, body: bytes) -> None:
    rt.aws.client("s3").put_object(Bucket=rt.stack.outputs["RawBucketName"], Key=key, Body=body)


def output_ids(rt: Runtime, table: str) -> list[str]:
    """order_id of every row in the processed table's objects (not only registered partitions)."""
    s3 = rt.aws.client("s3")
    bucket = rt.stack.outputs["ProcessedBucketName"]
    ids: list[str] = []
    for key in processed_keys(rt, table):
        if key.endswith(".parquet"):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            ids += pq.read_table(io.BytesIO(body), columns=["order_id"]).column(0).to_pylist()
    return ids


def quarantined(rt: Runtime, table: str) -> list[str]:
    """Quarantine records (JSON lines) for the table."""
    s3 = rt.aws.client("s3")
    bucket = rt.stack.outputs["ProcessedBucketName"]
    lines: list[str] = []
    for key in processed_keys(rt, f"_quarantine/{table}"):
        lines += [x for x in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines() if x]
    return lines


def quarantined_rows(rt: Runtime, table: str) -> list[dict]:
    """Quarantined rows (not the file-level records of empty or unreadable files, which carry no
    record)."""
    return [r for r in map(json.loads, quarantined(rt, table)) if r.get("record") is not None]


def assert_each_row_once(rt: Runtime, table: str, expected_ids: set[str]) -> None:
    """No duplicate rows, no missing rows, and the ledger's counts add up."""
    ids = output_ids(rt, table)
    assert len(ids) == len(set(ids)), "a row was written twice"
    assert set(ids) == expected_ids, f"missing: {sorted(expected_ids - set(ids))[:5]}"
    items = ledger_items(rt, table)
    assert sum(int(i.get("rows_in", 0)) for i in items) == (
        len(ids) + len(quarantined_rows(rt, table)) + sum(int(i.get("rows_duplicate", 0)) for i in items))


def eventually(rt: Runtime, check: Callable[[], Any], what: str = "the condition") -> Any:
    """check()'s first truthy answer (see `until`)."""
    return until(rt, check, what)


def put_orders(rt: Runtime, table: str, files: int, rows: int = 10) -> set[str]:
    """`files` CSV files of orders under table/; the order ids they hold."""
    for f in range(files):
        put(rt, f"{table}/part-{f}.csv", orders_csv(rows, start=f * rows))
    return {f"o-{i:06d}" for i in range(files * rows)}
