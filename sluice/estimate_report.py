"""What a month of a workload costs on AWS, line by line, from the counts of one simulated window
(sluice/estimate.py) and the unit prices of sluice/prices.toml; and how it moves when the
workload grows 10x and 100x.

Each line carries its unit price, the AWS page of that price, and the template parameters that
move it. Free tiers are subtracted per line where AWS grants one per account and month.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from sluice.estimate import Counts, Settings, Workload, simulate

PRICES = Path(__file__).with_name("prices.toml")
MONTH = 30 * 86400


@dataclass(frozen=True)
class Line:
    service: str
    what: str
    quantity: float  # billable units a month
    unit: str
    unit_price: float
    cost: float  # USD a month
    page: str
    moved_by: str


@dataclass(frozen=True)
class Estimate:
    workload: Workload
    lines: list[Line]
    p50_s: float
    p95_s: float
    runs: float  # a month
    partitions_per_month: float
    files_per_month: float  # processed files written
    partitions_kept: float  # catalog partitions while the data is kept

    @property
    def total(self) -> float:
        return sum(line.cost for line in self.lines)


def load_prices(path: Path = PRICES) -> dict:
    return tomllib.loads(path.read_text())


def _billed(quantity: float, free: float, per: float, price: float) -> float:
    return max(0.0, quantity - free) / per * price


def estimate(workload: Workload, settings: Settings, prices: dict | None = None) -> Estimate:
    prices = prices or load_prices()
    a = prices["assumptions"]
    c: Counts = simulate(workload, settings, a)
    k = MONTH / c.seconds  # the window -> a month
    files = c.files * k
    runs, crawls = c.runs * k, c.crawls * k
    p = prices
    job_min, crawl_min = p["glue_job"]["minimum_seconds"], p["glue_crawler"]["minimum_seconds"]
    job_dpu_h = (
        sum(max(job_min, s) for s in c.run_seconds) * k / 3600 * settings.workers * settings.dpus_per_worker
    )
    crawl_dpu_h = crawls * max(crawl_min, a["crawl_seconds"]) / 3600 * a["crawler_dpus"]
    invocations = (c.ingest_invocations + c.job_invocations) * k
    gb_s = (
        (c.ingest_invocations * a["lambda_ms_start_crawler"] + c.job_invocations * a["lambda_ms_start_job"])
        / 1000
        * settings.memory_mb
        / 1024
        * k
    )
    idle = a["idle_sqs_receives_per_minute"] * MONTH / 60
    # each message: sent by S3, received (again after each paced wait), deleted in batches of 10
    sqs = files + c.ingest_receives * k / 10 + files / 10 + idle
    # the run records: open, starting, started, the job's fence, and the job's claim check (a read)
    ddb_w = files * a["dynamodb_writes_per_file"] + runs * a["dynamodb_writes_per_run"]
    ddb_r = files * a["dynamodb_reads_per_file"] + runs * a["dynamodb_reads_per_run"]
    raw_kept = workload.files_per_hour * 24 * workload.days_kept
    gets = (
        files * (2 + (1 if workload.gzip else 0) + 1) + runs * 4
    )  # header, body, gzip check, crawler; code, manifest
    puts = (
        files + c.output_files * k + runs * 2 + c.partitions * k
    )  # raw put, output, manifest+summary, clear's LIST
    lists = crawls * max(1, raw_kept / 1000)  # a crawl lists every raw object kept
    kms_requests = runs * a["kms_requests_per_run"]
    log_gb = (invocations * a["lambda_log_kb_per_invocation"] + runs * a["job_log_kb_per_run"]) / 2**20
    partitions_kept = c.partitions * k * workload.days_kept / 30
    catalog_requests = runs * 6 + crawls * 10  # tables, partitions, register; the crawler's own calls
    L = []

    def line(
        service: str,
        what: str,
        quantity: float,
        unit: str,
        unit_price: float,
        cost: float,
        moved_by: str,
        page_of: str,
    ) -> None:
        L.append(Line(service, what, quantity, unit, unit_price, cost, p[page_of]["page"], moved_by))

    line(
        "Glue",
        "crawler runs",
        crawl_dpu_h,
        "DPU-hour",
        p["glue_crawler"]["per_dpu_hour"],
        crawl_dpu_h * p["glue_crawler"]["per_dpu_hour"],
        "CrawlIntervalSeconds, IngestBatchingWindowSeconds",
        "glue_crawler",
    )
    line(
        "Glue",
        "job runs",
        job_dpu_h,
        "DPU-hour",
        p["glue_job"]["per_dpu_hour"],
        job_dpu_h * p["glue_job"]["per_dpu_hour"],
        "MaxFilesPerRun, MaxBytesPerRun, CrawlIntervalSeconds (runs), GlueNumberOfWorkers, GlueWorkerType",
        "glue_job",
    )
    catalog = _billed(
        partitions_kept,
        p["glue_catalog"]["free_objects"],
        100_000,
        p["glue_catalog"]["per_100k_objects_month"],
    ) + _billed(
        catalog_requests, p["glue_catalog"]["free_requests"], 1e6, p["glue_catalog"]["per_million_requests"]
    )
    line(
        "Glue",
        "Data Catalog partitions and requests",
        partitions_kept,
        "partition",
        p["glue_catalog"]["per_100k_objects_month"] / 100_000,
        catalog,
        "PartitionGranularity, runs (CrawlIntervalSeconds, MaxFilesPerRun), days kept",
        "glue_catalog",
    )
    lam = p["lambda"]
    line(
        "Lambda",
        "requests",
        invocations,
        "request",
        lam["per_million_requests"] / 1e6,
        _billed(invocations, lam["free_requests"], 1e6, lam["per_million_requests"]),
        "IngestBatchSize, IngestBatchingWindowSeconds",
        "lambda",
    )
    line(
        "Lambda",
        "duration",
        gb_s,
        "GB-second",
        lam["per_gb_second_arm64"],
        _billed(gb_s, lam["free_gb_seconds"], 1, lam["per_gb_second_arm64"]),
        "MemorySize, IngestBatchSize",
        "lambda",
    )
    line(
        "SQS",
        "requests (send, receive, delete, idle polls)",
        sqs,
        "request",
        p["sqs"]["per_million_requests"] / 1e6,
        _billed(sqs, p["sqs"]["free_requests"], 1e6, p["sqs"]["per_million_requests"]),
        "IngestBatchSize, CrawlIntervalSeconds (paced redeliveries)",
        "sqs",
    )
    ddb = p["dynamodb"]
    line(
        "DynamoDB",
        "write request units",
        ddb_w,
        "WRU",
        ddb["per_million_write_units"] / 1e6,
        ddb_w / 1e6 * ddb["per_million_write_units"],
        "files (three writes each, and the index)",
        "dynamodb",
    )
    line(
        "DynamoDB",
        "read request units",
        ddb_r,
        "RRU",
        ddb["per_million_read_units"] / 1e6,
        ddb_r / 1e6 * ddb["per_million_read_units"],
        "files",
        "dynamodb",
    )
    s3 = p["s3"]
    line(
        "S3",
        "PUT and LIST requests",
        puts + lists,
        "request",
        s3["per_1000_put_copy_post_list"] / 1000,
        (puts + lists) / 1000 * s3["per_1000_put_copy_post_list"],
        "files; output files per partition (sizing); crawls x raw objects kept",
        "s3",
    )
    line(
        "S3",
        "GET requests",
        gets,
        "request",
        s3["per_1000_get"] / 1000,
        gets / 1000 * s3["per_1000_get"],
        "files",
        "s3",
    )
    stored_gb = files * workload.mean_bytes * (1 + 0.5) * workload.days_kept / 30 / 2**30  # raw + processed
    line(
        "S3",
        "storage (raw + processed, while kept)",
        stored_gb,
        "GB-month",
        s3["per_gb_month"],
        stored_gb * s3["per_gb_month"],
        "days kept, CompressionCodec",
        "s3",
    )
    line(
        "EventBridge",
        "AWS service events and schedules",
        crawls + runs,
        "event",
        0.0,
        0.0,
        "(free: events from AWS services)",
        "eventbridge",
    )
    sns = p["sns"]
    line(
        "SNS",
        "one email per run",
        runs,
        "email",
        sns["per_100k_email"] / 100_000,
        _billed(runs, sns["free_email"], 100_000, sns["per_100k_email"])
        + _billed(runs, sns["free_publishes"], 1e6, sns["per_million_publishes"]),
        "runs (MaxFilesPerRun, CrawlIntervalSeconds)",
        "sns",
    )
    kms = p["kms"]
    line(
        "KMS",
        "PipelineKey and its requests",
        kms_requests,
        "request",
        kms["per_10k_requests"] / 10_000,
        kms["per_key_month"] + _billed(kms_requests, kms["free_requests"], 10_000, kms["per_10k_requests"]),
        "runs",
        "kms",
    )
    cw = p["cloudwatch"]
    line(
        "CloudWatch",
        "logs ingested and kept, alarms",
        log_gb,
        "GB",
        cw["per_gb_logs_ingested"],
        log_gb * cw["per_gb_logs_ingested"]
        + log_gb * settings.log_retention_days / 30 * cw["per_gb_logs_stored_month"]
        + settings.alarms * cw["per_alarm_month"],
        "invocations, runs, LogRetentionDays",
        "cloudwatch",
    )
    return Estimate(
        workload, L, c.latency(50), c.latency(95), runs, c.partitions * k, c.output_files * k, partitions_kept
    )


def render(est: Estimate, settings: Settings, env: str, checked: str) -> str:
    w = est.workload
    out = [
        f"workload: {w.files_per_hour:g} files/hour ({w.files_per_hour * 24:,.0f}/day) of "
        f"{w.mean_bytes:,} bytes{' gzip' if w.gzip else ''}, {w.datasets} dataset(s), "
        f"kept {w.days_kept} days; samconfig [{env}]: {settings.workers} x {settings.worker_type}, "
        f"MaxFilesPerRun {settings.max_files}, "
        f"CrawlIntervalSeconds {settings.crawl_interval_s}, JobMaxConcurrentRuns {settings.job_concurrency}",
        f"prices: us-east-1, sluice/prices.toml (checked {checked})",
        "",
        f"{'service':<12} {'what':<44} {'a month':>24} {'unit price':>13} {'USD/month':>10}  page",
    ]
    for line in est.lines:
        out.append(
            f"{line.service:<12} {line.what:<44} {line.quantity:>14,.1f} {line.unit:<9} "
            f"{line.unit_price:>13.8f} {line.cost:>10.2f}  {line.page}"
        )
    out += [
        f"{'total':<57} {'':>27} {est.total:>10.2f}",
        "",
        f"put -> email: p50 {est.p50_s:,.0f} s, p95 {est.p95_s:,.0f} s; "
        f"{est.runs:,.0f} job runs a month ({w.files_per_hour * 24 * 30 / max(est.runs, 1):,.1f} files each)",
        f"processed tables grow by {est.partitions_per_month:,.0f} partitions and "
        f"{est.files_per_month:,.0f} files a month ({est.partitions_kept:,.0f} partitions while kept)",
    ]
    return "\n".join(out)


def growth(base: Estimate, grown: list[Estimate]) -> str:
    """Each line at 1x, 10x, 100x the files, and what moves it."""
    out = [
        "",
        f"{'growth':<57} "
        + " ".join(
            f"{g.workload.files_per_hour / base.workload.files_per_hour:>9.0f}x" for g in [base, *grown]
        )
        + "  moved by",
    ]
    for i, line in enumerate(base.lines):
        out.append(
            f"{line.service + ' ' + line.what:<57} "
            + " ".join(f"{e.lines[i].cost:>10.2f}" for e in [base, *grown])
            + f"  {line.moved_by}"
        )
    out.append(f"{'total USD/month':<57} " + " ".join(f"{e.total:>10.2f}" for e in [base, *grown]))
    out.append(
        f"{'put -> email p50 / p95 (s)':<57} "
        + " ".join(f"{e.p50_s:>4.0f}/{e.p95_s:<5.0f}" for e in [base, *grown])
        + "  CrawlIntervalSeconds, IngestBatchingWindowSeconds, JobMaxConcurrentRuns"
    )
    out.append(
        f"{'job runs a month':<57} "
        + " ".join(f"{e.runs:>10,.0f}" for e in [base, *grown])
        + "  MaxFilesPerRun, CrawlIntervalSeconds"
    )
    out.append(
        f"{'partitions a month':<57} "
        + " ".join(f"{e.partitions_per_month:>10,.0f}" for e in [base, *grown])
        + "  PartitionGranularity, runs"
    )
    return "\n".join(out)
