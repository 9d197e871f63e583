"""The bad-input corpus, generated here (no binaries in the repo), through the whole pipeline.

Every entry has one stated outcome, asserted on the ledger, the output and the email:
  processed    DONE, every row written or quarantined with a reason (rows in = out + bad + dup)
  quarantined  DONE with rows_bad > 0 or a file-level quarantine note, named in the run email
  skipped      SKIPPED with the reason in the ledger (never crawled, never claimed)
  failed       FAILED after MaxAttempts with the reason (the file alone; other files go on)
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator

import pytest

from sluice.runtime import Runtime
from tests.runtime.conftest import (
    assert_each_row_once,
    emails,
    ledger_items,
    ledger_of,
    orders_csv,
    put,
    quarantined,
    started_runtime,
    until,
    wait,
)

pytestmark = [pytest.mark.slow, pytest.mark.spark]

HEADER = b"order_id,customer_id,country,amount,currency,event_time\n"
STAMP = "2026-11-24T10:00:00Z"
ROW = "o-{n:06d},c-0001,DE,9.50,EUR," + STAMP + "\n"


def _rows(start: int, n: int) -> bytes:
    return "".join(ROW.format(n=i) for i in range(start, start + n)).encode()


# key -> (body, outcome, detail)
CORPUS: dict[str, tuple[bytes, str, object]] = {
    "corpus/good.csv": (HEADER + _rows(0, 5), "processed", 5),
    "corpus/ragged.csv": (HEADER + _rows(10, 2) + b"o-000012,c-1,DE,1.00,EUR,2026-11-24T10:00:00Z,extra\n"
                          + b"o-000013,c-1,DE\n", "quarantined", None),
    "corpus/bad-quoting.csv": (HEADER + _rows(20, 1) + b'o-000021,"c-1,DE,1.00,EUR,2026-11-24T10:00:00Z\n'
                               + _rows(22, 1), "quarantined", None),
    "corpus/header-only.csv": (HEADER, "quarantined", "no data rows"),
    "corpus/truncated.csv.gz": (gzip.compress(HEADER + _rows(30, 50))[:40], "quarantined", "no data rows"),
    "corpus/long-line.csv": (HEADER + f"o-000040,c-{'x' * 2_000_000},DE,1.00,EUR,{STAMP}\n".encode(),
                             "processed", 1),
    "corpus/invalid-utf8.csv": (HEADER + b"o-000050,c-\xff\xfe,DE,1.00,EUR,2026-11-24T10:00:00Z\n",
                                "processed", 1),
    "corpus/with space.csv": (HEADER + _rows(60, 2), "processed", 2),
    "corpus/plus+sign.csv": (HEADER + _rows(70, 2), "processed", 2),
    "corpus/100%.csv": (HEADER + _rows(80, 2), "processed", 2),
    "corpus/ünïcode-日本.csv": (HEADER + _rows(90, 2), "processed", 2),
    "corpus/_SUCCESS": (b"", "skipped", "job marker (_SUCCESS)"),
    "corpus/sub/": (b"", "skipped", "folder marker"),
    "corpus/empty.csv": (b"", "skipped", "empty object (0 bytes)"),
    "corpus/.hidden.csv": (HEADER + _rows(95, 1), "skipped", "hidden file"),
    "loose.csv": (HEADER + _rows(96, 1), "skipped",
                  "not inside a dataset folder (expected <dataset>/<file>)"),
    "garbage/blob.csv": (random.Random(7).randbytes(4096), "failed", "no catalog table"),
}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Iterator[Runtime]:
    # A file that cannot be read fails quickly.
    with started_runtime(tmp_path_factory.mktemp("sluice-corpus"), schedule_every=2,
                         SweepAfterSeconds="3", MaxAttempts="2") as rt:
        yield rt


def _settled(rt: Runtime) -> dict[str, dict]:
    """Every corpus key in the ledger in a final state."""
    def settled() -> dict[str, dict] | None:
        items = {i["key"]: i for i in ledger_of(rt).files()}
        final = all(items.get(k, {}).get("state") in ("DONE", "SKIPPED", "FAILED") for k in CORPUS)
        return items if final else None

    return until(rt, settled, "every corpus file in a final state")


def test_each_corpus_entry_has_its_stated_outcome(runtime):
    before = len(emails(runtime))
    for key, (body, _, _) in CORPUS.items():
        put(runtime, key, body)
    items = _settled(runtime)
    # A run's email follows its DONE marks (the job run's end, then EventBridge, then SNS).
    named = [k for k, (_, outcome, _) in CORPUS.items() if outcome in ("processed", "quarantined")]

    def every_file_emailed() -> str | None:
        mail = "\n".join(emails(runtime)[before:])
        return mail if all(k in mail for k in named) else None

    mail = until(runtime, every_file_emailed, "every processed or quarantined file named in a run email")
    reasons = [json.loads(line)["reason"] for line in quarantined(runtime, "corpus")]
    for key, (_, outcome, detail) in CORPUS.items():
        item = items[key]
        if outcome == "processed":
            assert (item["state"], int(item["rows_out"]), int(item["rows_bad"])) == ("DONE", detail, 0), key
            assert key in mail, key
        elif outcome == "quarantined":
            assert item["state"] == "DONE", key
            counts = [int(item[c]) for c in ("rows_in", "rows_out", "rows_bad", "rows_duplicate")]
            assert counts[0] == sum(counts[1:]), key
            assert int(item["rows_bad"]) > 0 or detail == "no data rows", key
            assert key in mail, key
        elif outcome == "skipped":
            assert (item["state"], item["reason"]) == ("SKIPPED", detail), key
        else:
            assert item["state"] == "FAILED" and detail in item["reason"], key
    assert "malformed record" in reasons  # too many and too few fields alike
    assert any("no data rows" in r for r in reasons)
    written = {f"o-{n:06d}" for n in [*range(0, 5), 10, 11, 20, 40, 50, *range(60, 62), *range(70, 72),
                                       *range(80, 82), *range(90, 92)]}
    expected_bad = {key for key, (_, o, _) in CORPUS.items() if o == "quarantined"}
    assert expected_bad <= set(items)
    assert_each_row_once(runtime, "corpus", written | _quoting_survivors(runtime))
    assert runtime.status()["queues"]["ingest_dlq"] == 0


def _quoting_survivors(rt: Runtime) -> set[str]:
    """An unterminated quote swallows the lines after it into one field; whatever Spark still
    parsed as a good row from that file is expected in the output, the rest in the quarantine."""
    item = next(i for i in ledger_items(rt, "corpus") if i["key"] == "corpus/bad-quoting.csv")
    return {"o-000020"} if int(item["rows_out"]) == 1 else {"o-000020", "o-000022"}


def test_same_key_twice_same_bytes_is_one_file_new_bytes_are_a_new_file(runtime):
    put(runtime, "versions/orders.csv", orders_csv(3, start=500))
    wait(runtime, "versions", 1)
    put(runtime, "versions/orders.csv", orders_csv(3, start=500))  # same bytes again
    put(runtime, "versions/orders.csv", orders_csv(3, start=600))  # a new version, new rows
    items = wait(runtime, "versions", 2)
    assert len(items) == 2 and {i["state"] for i in items} == {"DONE"}
    assert_each_row_once(runtime, "versions", {f"o-{n:06d}" for n in [*range(500, 503), *range(600, 603)]})


def test_schema_drift_new_missing_and_retyped_columns(runtime):
    put(runtime, "drift/v1.csv", HEADER + _rows(700, 2))
    wait(runtime, "drift", 1)
    put(runtime, "drift/v2.csv", b"order_id,customer_id,country,amount,currency,event_time,coupon\n"
                                 b"o-000710,c-1,DE,1.00,EUR,2026-11-24T10:00:00Z,WELCOME\n")
    wait(runtime, "drift", 2)
    put(runtime, "drift/v3.csv", b"order_id,customer_id,country,amount,event_time\n"
                                 b"o-000720,c-1,DE,1.00,2026-11-24T10:00:00Z\n")
    put(runtime, "drift/v4.csv", b"order_id,customer_id,country,amount,currency,event_time\n"
                                 b"o-000730,c-1,DE,lots,EUR,2026-11-24T10:00:00Z\n")
    items = {i["key"]: i for i in wait(runtime, "drift", 4)}
    assert {i["state"] for i in items.values()} == {"DONE"}
    # A type change is a schema change: the crawler (UpdateBehavior UPDATE_IN_DATABASE, as on
    # AWS) widens the raw column to string, so "lots" is a value, not a bad row.
    glue = runtime.aws.client("glue")
    raw_db = glue.get_crawler(Name=runtime.stack.outputs["RawCrawlerName"])["Crawler"]["DatabaseName"]
    table = glue.get_table(DatabaseName=raw_db, Name="drift")["Table"]
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert columns["amount"] == "string" and columns["coupon"] == "string"
    assert int(items["drift/v4.csv"]["rows_out"]) == 1
    assert_each_row_once(runtime, "drift", {"o-000700", "o-000701", "o-000710", "o-000720", "o-000730"})
