"""The whole pipeline through the local runtime: warm latency of one file, and a burst.

1. Warm end-to-end latency for one small file: put -> email (goal <= 1.5 s), median of --latency-runs.
2. A burst of --files small CSV files uploaded as fast as the emulator takes them, from a process
   of their own as a user's uploads are: files lost (not DONE, must be 0), duplicated (rows
   written more than once, must be 0), crawler runs, job runs, time to drain (uploads included),
   peak memory of the runtime process.

Last line: lost=N duplicated=N crawler_runs=N job_runs=N drain_s=T peak_mb=M latency_s=L

    .venv/bin/python bench/bench_pipeline.py [--files 1000] [--latency-runs 3]
    .venv/bin/python bench/bench_pipeline.py --soak 10     # 10 minutes of uploads, random faults on,
                                                           # then a redrive of what they left FAILED
"""

from __future__ import annotations

import argparse
import csv
import io
import multiprocessing
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow.parquet as pq

from sluice.aws.faults import FAULTS
from sluice.aws.sns import read_outbox
from sluice.runtime import Runtime
from sluice.status import redrive
from sluice.timeline import Timeline

from ledger.table import DynamoLedger  # isort: skip  (importable once sluice is imported)

ROWS_PER_FILE = 5


def orders(file_no: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["order_id", "customer_id", "country", "amount", "currency", "event_time"])
    for row in range(ROWS_PER_FILE):
        n = file_no * ROWS_PER_FILE + row
        writer.writerow([f"b-{n:08d}", f"c-{n % 97:04d}", "FR", f"{n % 50 + 1}.25", "EUR",
                         f"2026-11-{20 + n % 5:02d}T{n % 24:02d}:00:00Z"])
    return out.getvalue().encode()


def wait_for(predicate, timeout: float, poll: float = 0.05) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError("timed out")
        time.sleep(poll)
    return time.monotonic() - start


def ledger_items(rt: Runtime, prefix: str) -> list[dict]:
    ledger = DynamoLedger(rt.aws.resource("dynamodb").Table(rt.stack.outputs["LedgerTableName"]))
    return [i for i in ledger.files() if i["key"].startswith(prefix)]


def output_order_ids(rt: Runtime, dataset: str) -> list[str]:
    s3 = rt.aws.client("s3")
    bucket = rt.stack.outputs["ProcessedBucketName"]
    ids: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{dataset}/"):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".parquet"):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                ids += pq.read_table(io.BytesIO(body), columns=["order_id"]).column(0).to_pylist()
    return ids


def upload_burst(endpoint: str, bucket: str, files: int) -> None:
    """The burst's uploads, from a process of their own as a user's uploads come (`sluice ingest`,
    the AWS CLI): in the runtime's process they would share its one GIL with the emulator they
    upload to."""
    from sluice.aws.account import client

    s3 = client("s3", endpoint)
    for i in range(files):
        s3.put_object(Bucket=bucket, Key=f"burst/part-{i:06d}.csv", Body=orders(i))


def soak(rt: Runtime, raw: str, minutes: float, seed: int = 11) -> int:
    """Upload small batches for `minutes`, arming a random fault before each (unless that one is
    still armed: faults come at a rate, they do not queue up for the next job run); then disarm
    them all. Returns the count of files uploaded."""
    rng = random.Random(seed)
    s3 = rt.aws.client("s3")
    files, end = 0, time.monotonic() + minutes * 60
    while time.monotonic() < end:
        fault = rng.choice(sorted(FAULTS))
        if fault not in rt.faults.armed():
            rt.faults.arm(fault, rng.randint(1, 2))
        for _ in range(rng.randint(5, 40)):
            s3.put_object(Bucket=raw, Key=f"burst/part-{files:06d}.csv", Body=orders(files))
            files += 1
        time.sleep(rng.uniform(0.5, 5))
    for fault in FAULTS:
        rt.faults.disarm(fault)
    print(f"soak: faults fired {dict(rt.faults.fired)}")
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--latency-runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--soak", type=float, default=0, metavar="MINUTES",
                        help="instead of one burst: upload continuously for MINUTES with random faults on")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as state, \
            Runtime(state_dir=Path(state), timeline=Timeline(quiet=True)) as rt:
        raw = rt.stack.outputs["RawBucketName"]
        s3 = rt.aws.client("s3")
        rt.jobs[0].ready.wait(timeout=300)

        latencies = []
        for i in range(args.latency_runs + 1):  # the first one warms the path up
            key = f"latency/file-{i}.csv"
            start = time.monotonic()
            s3.put_object(Bucket=raw, Key=key, Body=orders(10_000_000 + i))
            # the run summary email names the file: that is the email this put caused
            wait_for(lambda k=key: any(k in mail.text for mail in read_outbox(rt.outbox_dir)),
                     timeout=120)
            latencies.append(time.monotonic() - start)
        latency = statistics.median(latencies[1:])
        print(f"warm put->email latency: median {latency:.2f} s over {args.latency_runs} "
              f"(each: {', '.join(f'{x:.2f}' for x in latencies[1:])}; cold first: {latencies[0]:.2f} s)")

        ledger = DynamoLedger(rt.aws.resource("dynamodb").Table(rt.stack.outputs["LedgerTableName"]))

        def settled() -> int:  # counted by the state index: a full scan every poll would load the emulator
            counts = ledger.count_by_state()
            return counts["DONE"] + counts["FAILED"]

        settled_before = settled()
        done_before = ledger.count_by_state()["DONE"]
        crawls_before = sum(c.crawls for c in rt.crawlers)
        runs_before = len(rt.jobs[0].finished)
        start = time.monotonic()
        if args.soak:
            args.files = soak(rt, raw, minutes=args.soak)
        else:
            uploader = multiprocessing.get_context("spawn").Process(
                target=upload_burst, args=(rt.aws.endpoint, raw, args.files))
            uploader.start()
            uploader.join()
            if uploader.exitcode != 0:
                raise SystemExit(f"the uploader failed (exit code {uploader.exitcode})")
        uploaded = time.monotonic() - start
        print(f"uploaded {args.files} files in {uploaded:.1f} s")
        try:
            wait_for(lambda: settled() - settled_before >= args.files, timeout=args.timeout, poll=2.0)
            if args.soak:  # what the faults left FAILED or in the DLQ, the operator redrives
                print(f"soak: settled as {ledger.count_by_state()}; "
                      f"redrive: {redrive(rt.aws.client, rt.aws.resource, rt.stack.outputs)}")
                wait_for(lambda: ledger.count_by_state()["DONE"] - done_before >= args.files,
                         timeout=args.timeout, poll=2.0)
        except TimeoutError:
            print("burst did not drain within the timeout")
        drain = time.monotonic() - start
        items = ledger_items(rt, "burst/")
        done = {i["key"] for i in items if i["state"] == "DONE"}
        failed = {i["key"]: i.get("reason", "") for i in items if i["state"] == "FAILED"}
        lost = args.files - len(done) - len(failed)  # FAILED files are accounted for, with the reason
        ids = output_order_ids(rt, "burst")
        duplicated = len(ids) - len(set(ids))
        missing_rows = args.files * ROWS_PER_FILE - len(set(ids))
        crawler_runs = sum(c.crawls for c in rt.crawlers) - crawls_before
        job_runs = len(rt.jobs[0].finished) - runs_before
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        dlq = int(rt.aws.client("sqs").get_queue_attributes(
            QueueUrl=rt.stack.outputs["IngestDLQUrl"], AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]["ApproximateNumberOfMessages"])  # a message resting there needs a redrive
        for key, reason in sorted(failed.items())[:5]:
            print(f"FAILED {key}: {reason}")
        print(f"files={args.files} done={len(done)} failed={len(failed)} rows_out={len(ids)} "
              f"missing_rows={missing_rows} dlq={dlq} "
              f"crawler_runs={crawler_runs} job_runs={job_runs} drain={drain:.1f} s")
        print(f"lost={lost} duplicated={duplicated} crawler_runs={crawler_runs} job_runs={job_runs} "
              f"drain_s={drain:.1f} peak_mb={peak_mb:.0f} latency_s={latency:.2f}")


if __name__ == "__main__":
    main()
