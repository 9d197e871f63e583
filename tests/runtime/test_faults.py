"""Each fault the runtime can inject, through the whole pipeline: the final ledger state, every
row written exactly once (rows in = rows out + quarantined + duplicates), the DLQ, and the email.

The runtime here runs with compressed timings (visibility 4 s, 4 receives before the DLQ, crawls
paced 2 s apart, a sweep every 2 s of files pending 3 s) so that retries happen within a test; the
rules are the template's, only the clock is faster. The proportions are the template's defaults'
too: a paced or crawler-running wait spends one receive, and the pacing interval is shorter than
the visibility timeout, so a healthy message spends at most a few of its receives waiting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from sluice.runtime import Runtime
from sluice.status import redrive
from tests.runtime.conftest import (
    FAULT_CLOCK,
    assert_each_row_once,
    emails,
    ledger_items,
    put_orders,
    started_runtime,
    until,
    wait,
    wait_for_email,
)

pytestmark = [pytest.mark.slow, pytest.mark.spark]



@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Iterator[Runtime]:
    with started_runtime(tmp_path_factory.mktemp("sluice-faults"), schedule_every=2, **FAULT_CLOCK) as rt:
        yield rt



def _dlq(rt: Runtime) -> int:
    return rt.status()["queues"]["ingest_dlq"]


def test_crawler_already_running(runtime):
    runtime.faults.arm("crawler-running", 1)
    before = len(emails(runtime))
    expected = put_orders(runtime, "fault_crawler", 3)
    items = wait(runtime, "fault_crawler", 3)
    assert {i["state"] for i in items} == {"DONE"}
    assert runtime.faults.fired["crawler-running"] >= 1
    assert_each_row_once(runtime, "fault_crawler", expected)
    assert _dlq(runtime) == 0
    assert "fault_crawler/part-0.csv" in wait_for_email(runtime, "fault_crawler/part-0.csv", before)


def test_handler_crashes_after_part_of_its_batch(runtime):
    runtime.faults.arm("handler-crash", 1)
    expected = put_orders(runtime, "fault_crash", 4)
    items = wait(runtime, "fault_crash", 4)
    assert runtime.faults.fired["handler-crash"] == 1
    assert len(items) == 4 and {i["state"] for i in items} == {"DONE"}  # one item per file
    assert_each_row_once(runtime, "fault_crash", expected)
    assert _dlq(runtime) == 0


def test_a_message_delivered_twice(runtime):
    runtime.faults.arm("sqs-duplicate", 2)
    expected = put_orders(runtime, "fault_twice", 2)
    items = wait(runtime, "fault_twice", 2)
    assert runtime.faults.fired["sqs-duplicate"] == 2
    assert len(items) == 2 and {i["state"] for i in items} == {"DONE"}
    assert_each_row_once(runtime, "fault_twice", expected)


def test_sweeper_claims_a_file_whose_crawl_never_came_and_redrive_recovers_the_dlq(runtime):
    runtime.faults.arm("crawler-running", 1000)  # every crawl refused: the message ends in the DLQ
    expected = put_orders(runtime, "fault_sweep", 1)
    until(runtime, lambda: _dlq(runtime) == 1, "the refused file's message in the DLQ")
    assert [i["state"] for i in ledger_items(runtime, "fault_sweep")] == ["PENDING"]  # kept, not lost
    runtime.faults.disarm("crawler-running")
    items = wait(runtime, "fault_sweep", 1)  # no new upload: the sweeper re-crawled
    assert [i["state"] for i in items] == ["DONE"]
    assert_each_row_once(runtime, "fault_sweep", expected)
    source = runtime.sources[0]
    handled = source.invocations + source.failed_records
    assert redrive(runtime.aws.client, runtime.aws.resource, runtime.stack.outputs)["messages"] == 1
    until(runtime, lambda: source.invocations + source.failed_records > handled
          and runtime.status()["queues"]["ingest"] == 0,
          "the redriven event handled")  # a duplicate of a DONE file: nothing moves
    assert [i["state"] for i in ledger_items(runtime, "fault_sweep")] == ["DONE"]
    assert_each_row_once(runtime, "fault_sweep", expected)


def test_poison_message_rests_in_the_dlq_and_nothing_else_is_held_up(runtime):
    sqs = runtime.aws.client("sqs")
    sqs.send_message(QueueUrl=runtime.stack.outputs["IngestQueueUrl"], MessageBody="not an S3 event")
    expected = put_orders(runtime, "fault_poison", 1)
    wait(runtime, "fault_poison", 1)
    assert_each_row_once(runtime, "fault_poison", expected)
    until(runtime, lambda: _dlq(runtime) > 0, "the poison message in the DLQ")
    message = sqs.receive_message(QueueUrl=runtime.stack.outputs["IngestDLQUrl"])["Messages"][0]
    assert message["Body"] == "not an S3 event"
    status = json.loads(json.dumps(runtime.status()))
    assert status["queues"]["ingest_dlq"] == 1


# --- a failing run never wedges the pipeline (issue 13, item 4) --------------------------------
