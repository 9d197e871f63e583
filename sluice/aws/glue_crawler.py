"""The Glue crawler, for real: what moto's StartCrawler does not do.

Lists the crawler's S3 targets, groups objects into tables (TableLevelConfiguration 2: each
top-level folder of the bucket is a table), infers each table's schema with pyarrow from a
bounded sample of its files (CSV, JSON lines, Parquet; gzip), detects Hive partitions (k=v/),
and creates or updates the tables and partitions in the emulated Data Catalog in the shape AWS
Glue writes them, honouring the schema change policy, through the job's own catalog writer
(sluice_glue.catalog). An unreadable file is skipped and reported, never fatal to the crawl.

    >>> table_name("Orders API")
    'orders_api'
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.glue.models import glue_backends

from sluice.aws import glue_schema
from sluice.aws.emulator import ACCOUNT_ID, REGION, Emulator
from sluice.aws.iam import Principal
from sluice.aws.iam_hook import client_as
from sluice.timeline import Timeline
from sluice_glue import catalog

LOG_LINK = "https://console.aws.amazon.com/cloudwatch/home?region={r}#logEventViewer:group=/aws-glue/crawlers;stream={n}"


@dataclass
class CrawlReport:
    tables_created: int = 0
    tables_updated: int = 0
    partitions_created: int = 0
    partitions_updated: int = 0
    partitions_deleted: int = 0
    tables_deleted: int = 0
    warnings: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    duration: float = 0.0


def table_name(folder: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", folder.lower())


def crawl(aws: Any, crawler_name: str, glue: Any = None, s3: Any = None) -> CrawlReport:
    """One crawl. `glue` and `s3` are the clients its reads and catalog writes go through: the
    crawler's role's on AWS (CrawlerRunner passes clients acting as it); the crawler's own
    definition is Glue's to read."""
    report = CrawlReport()
    crawler = aws.client("glue").get_crawler(Name=crawler_name)["Crawler"]
    glue, s3 = glue or aws.client("glue"), s3 or aws.client("s3")
    database = crawler["DatabaseName"]
    update_schema = crawler.get("SchemaChangePolicy", {}).get("UpdateBehavior") != "LOG"
    tables: dict[str, dict[str, Any]] = {}
    for target in crawler["Targets"].get("S3Targets", []):
        bucket, _, prefix = target["Path"].removeprefix("s3://").partition("/")
        exclusions = target.get("Exclusions", [])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                relative = key[len(prefix):]
                if obj["Size"] == 0 or any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(key, p)
                                           for p in exclusions):
                    continue
                parts = relative.split("/")
                if len(parts) < 2:
                    report.warnings.append(f"s3://{bucket}/{key} is not inside a table folder")
                    continue
                entry = tables.setdefault(parts[0], {"bucket": bucket, "prefix": prefix, "files": []})
                entry["files"].append((key, parts[1:-1], obj["ETag"]))
    for folder, entry in sorted(tables.items()):
        _catalog_table(glue, s3, database, folder, entry, update_schema, report)
    report.duration = time.time() - report.started
    return report


def _catalog_table(glue: Any, s3: Any, database: str, folder: str, entry: dict, update_schema: bool,
                   report: CrawlReport) -> None:
    bucket = entry["bucket"]
    kinds = Counter(kind for kind in (glue_schema.classify(key)[0] for key, _, _ in entry["files"]) if kind)
    if not kinds:
        report.warnings.append(f"{folder}: no file of a known format")
        return
    kind = kinds.most_common(1)[0][0]
    columns: dict[str, str] = {}
    params: dict[str, str] = {}
    compressed = False
    partition_keys: list[str] = []
    readable = 0
    for key, dirs, etag in entry["files"]:
        file_kind, gz = glue_schema.classify(key)
        if file_kind != kind:
            report.warnings.append(f"s3://{bucket}/{key}: {file_kind} file in a {kind} table, not read")
            continue
        partition_keys = partition_keys or [k for k, _ in catalog.partition_values(dirs)]
        inferred = glue_schema.inferred(s3, bucket, key, etag, kind, gz)
        if isinstance(inferred, str):  # unreadable files are reported, the crawl goes on
            report.warnings.append(f"s3://{bucket}/{key}: unreadable ({inferred})")
            continue
        file_columns, file_params = inferred
        readable += 1
        compressed = compressed or gz
        params.update(file_params)
        for name, hive_type in file_columns:
            columns[name] = glue_schema.merge(columns[name], hive_type) if name in columns else hive_type
    if not readable:
        report.warnings.append(f"{folder}: no readable file; table not created")
        return
    name = table_name(folder)
    location = f"s3://{bucket}/{entry['prefix']}{folder}/"
    table = catalog.table_input(
        name, location, [(c, t) for c, t in columns.items() if c not in partition_keys], partition_keys, kind,
        parameters={"compressionType": "gzip" if compressed else "none", "typeOfData": "file", **params},
        serde_parameters={"field.delim": params["delimiter"]} if kind == "csv" else None)
    # A crawler rewrites a table only when the schema it found differs, and only if its
    # SchemaChangePolicy lets it; new tables and partitions are added whatever the policy
    # (https://docs.aws.amazon.com/glue/latest/webapi/API_SchemaChangePolicy.html).
    outcome = catalog.put_table(glue, database, table, update_if=lambda existing: update_schema and (
        existing["StorageDescriptor"]["Columns"] != table["StorageDescriptor"]["Columns"]))
    report.tables_created += outcome == "created"
    report.tables_updated += outcome == "updated"
    report.partitions_created += catalog.add_partitions(glue, database, table, {
        tuple(v for _, v in catalog.partition_values(dirs)): f"{location}{'/'.join(dirs)}/"
        for _, dirs, _ in entry["files"] if catalog.partition_values(dirs)})


# --- crawler state and the events AWS emits --------------------------------------------------

def is_running(crawler_name: str) -> bool:
    """Read from moto's model in this process: a GetCrawler over HTTP every 50 ms would compete
    with the job for the interpreter."""
    return glue_backends[ACCOUNT_ID][REGION].crawlers[crawler_name].status == "RUNNING"


def finish(crawler_name: str, succeeded: bool) -> None:
    """Put the crawler back to READY with its LastCrawl outcome (the API cannot; moto's model can,
    and moto's server runs in this process)."""
    crawler = glue_backends[ACCOUNT_ID][REGION].crawlers[crawler_name]
    if crawler.crawls and crawler.crawls[-1].status == "RUNNING":
        last = crawler.crawls[-1]
        last.status = "COMPLETED" if succeeded else "FAILED"
        last.end_time = datetime.now(UTC)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(detail: dict) -> dict:
    return {"Source": "aws.glue", "DetailType": "Glue Crawler State Change",
            "Detail": json.dumps(detail), "Resources": []}


def started_event(crawler_name: str) -> dict:
    return _entry({"accountId": ACCOUNT_ID, "crawlerName": crawler_name, "startTime": _now(),
                   "state": "Started", "message": "Crawler Started"})


def succeeded_event(crawler_name: str, report: CrawlReport) -> dict:
    return _entry({
        "tablesCreated": str(report.tables_created), "warningMessage": "; ".join(report.warnings) or "N/A",
        "partitionsUpdated": str(report.partitions_updated), "tablesUpdated": str(report.tables_updated),
        "message": "Crawler Succeeded", "partitionsDeleted": str(report.partitions_deleted),
        "accountId": ACCOUNT_ID, "runningTime (sec)": str(round(report.duration)),
        "tablesDeleted": str(report.tables_deleted), "crawlerName": crawler_name,
        "completionDate": _now(), "state": "Succeeded",
        "partitionsCreated": str(report.partitions_created),
        "cloudWatchLogLink": LOG_LINK.format(r=REGION, n=crawler_name)})


def failed_event(crawler_name: str, error: str) -> dict:
    return _entry({"crawlerName": crawler_name, "errorMessage": error, "accountId": ACCOUNT_ID,
                   "cloudWatchLogLink": LOG_LINK.format(r=REGION, n=crawler_name), "state": "Failed",
                   "message": "Crawler Failed"})


# --- the run loop ---------------------------------------------------------------------------------

class CrawlerRunner:
    """The Glue crawler's run loop: moto accepts StartCrawler but never crawls. This watches the
crawler, and when a start leaves it RUNNING, announces "Started", crawls for real
(sluice.aws.glue_crawler), puts the crawler back to READY and announces "Succeeded" or "Failed" with the
detail fields AWS sends, on the default event bus, where the template's rules pick them up."""

    def __init__(self, aws: Emulator, name: str, timeline: Timeline, role: Principal | None = None) -> None:
        self.aws = aws
        self.events = aws.client("events")
        # The crawl's S3 reads and catalog writes are the crawler's role's (None: unchecked).
        self.as_role = (client_as(role, "glue", aws.endpoint), client_as(role, "s3", aws.endpoint)) \
            if role else (None, None)
        self.name = name
        self.timeline = timeline
        self.crawls = 0
        self.paused = threading.Event()  # fault injection: a crawl that stays under way

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        return [threading.Thread(target=self._loop, args=(stop,), daemon=True, name=f"crawler-{self.name}")]

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if is_running(self.name) and not self.paused.is_set():
                self.crawl_once()
            else:
                time.sleep(0.05)

    def crawl_once(self) -> None:
        self.crawls += 1
        self._put(started_event(self.name))
        self.timeline.emit("crawler", f"{self.name} Started (crawl #{self.crawls})")
        try:
            report = crawl(self.aws, self.name, *self.as_role)
        except Exception as error:  # a failed crawl is announced, never raised into the loop
            finish(self.name, succeeded=False)
            self._put(failed_event(self.name, str(error)))
            self.timeline.emit("error", f"{self.name} Failed: {error}")
            return
        finish(self.name, succeeded=True)
        self._put(succeeded_event(self.name, report))
        self.timeline.emit("crawler", f"{self.name} Succeeded: {report.tables_created} tables created, "
                                      f"{report.tables_updated} updated, {report.partitions_created} "
                                      f"partitions created [{report.duration:.2f} s]")

    def _put(self, entry: dict) -> None:
        self.events.put_events(Entries=[entry])


# --- where moto differs from AWS ------------------------------------------------------------

def correct_moto() -> None:
    """Apply this service's corrections to moto (idempotent); Emulator.start calls it."""
    _last_crawl_as_aws_reports_it()


def _last_crawl_as_aws_reports_it() -> None:
    """GetCrawler's LastCrawl is the last finished crawl, its Status SUCCEEDED, CANCELLED or
    FAILED; moto shows the newest crawl there, even one still running, with its ListCrawls state
    (COMPLETED, STOPPED), which a handler reading the API would misread."""
    from moto.glue.models import FakeCrawler

    original = FakeCrawler.as_dict
    if getattr(original, "sluice_patched", False):
        return
    words: dict[str | None, str | None] = {"COMPLETED": "SUCCEEDED", "STOPPED": "CANCELLED"}

    def as_dict(self: FakeCrawler) -> dict:
        data = original(self)
        data.pop("LastCrawl", None)
        finished = [c for c in self.crawls if c.status not in ("RUNNING", "STOPPING")]
        if finished:
            last = finished[-1]
            data["LastCrawl"] = {"StartTime": last.start_time, "Status": words.get(last.status, last.status),
                                 "LogGroup": last.log_group, "LogStream": last.log_stream,
                                 "MessagePrefix": last.message_prefix}
        return data

    as_dict.sluice_patched = True  # type: ignore[attr-defined]
    FakeCrawler.as_dict = as_dict
