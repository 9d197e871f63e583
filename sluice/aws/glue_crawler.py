"""The Glue crawler, for real: what moto's StartCrawler does not do.

Lists the crawler's S3 targets, groups objects into tables (TableLevelConfiguration 2: each
top-level folder of the bucket is a table, whatever its files' names), classifies each file by
its content as Glue's built-in classifiers do (sluice.aws.glue_schema: Parquet, JSON, CSV; gzip
and bzip2; the CSV header rule; nested types), combines their schemas, makes the folders below
the table's its partitions (Hive `k=v` folders by their key, others partition_0, partition_1...),
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

from ledger.catalog_partitions import add_partitions
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
    """One table from the files of one top-level folder: classified by content, their schemas
    combined (CombineCompatibleSchemas), partitioned by the folders below the table's."""
    bucket = entry["bucket"]
    schemas: list[tuple[str, list[str], glue_schema.FileSchema]] = []
    for key, dirs, etag in entry["files"]:
        inferred = glue_schema.inferred(s3, bucket, key, etag)
        if isinstance(inferred, str):  # unreadable files are reported, the crawl goes on
            report.warnings.append(f"s3://{bucket}/{key}: unreadable ({inferred})")
            continue
        schemas.append((key, dirs, inferred))
    kind = glue_schema.common_kind([s for _, _, s in schemas])
    if kind is None:
        report.warnings.append(f"{folder}: no readable file; table not created")
        return
    for key, _, schema in schemas:
        if schema.kind != kind:
            report.warnings.append(f"s3://{bucket}/{key}: {schema.kind} file in a {kind} table, not read")
    chosen = [(dirs, s) for _, dirs, s in schemas if s.kind == kind]
    table = _table(folder, f"s3://{bucket}/{entry['prefix']}{folder}/", kind, chosen)
    # A crawler rewrites a table only when the schema it found differs, and only if its
    # SchemaChangePolicy lets it; new tables and partitions are added whatever the policy
    # (https://docs.aws.amazon.com/glue/latest/webapi/API_SchemaChangePolicy.html).
    outcome = catalog.put_table(glue, database, table, merge=lambda existing: table if update_schema and (
        _definition(existing) != _definition(table)) else None)
    report.tables_created += outcome == "created"
    report.tables_updated += outcome == "updated"
    keys = [k["Name"] for k in table["PartitionKeys"]]
    location = table["StorageDescriptor"]["Location"]
    partitions = {tuple(catalog.file_partition_values(keys, dirs)):
                  location + "".join(f"{d}/" for d in dirs[:len(keys)]) for dirs, _ in chosen} if keys else {}
    report.partitions_created += add_partitions(glue, database, table, partitions)


def partition_keys(folders: list[list[str]]) -> list[str]:
    """The partition keys of a table whose files lie in `folders` below its location: one per
    level every file has (a file deeper than the others does not add levels), named by the Hive
    key when every file's folder at that level is `<key>=...` with the same key, else
    partition_<level> (sluice_glue.catalog.partition_values)."""
    depth = min((len(dirs) for dirs in folders), default=0)
    keys = []
    for level in range(depth):
        names = {catalog.partition_values(dirs)[level][0] for dirs in folders}
        keys.append(names.pop() if len(names) == 1 else f"partition_{level}")
    return keys


def _table(folder: str, location: str, kind: str,
           files: list[tuple[list[str], glue_schema.FileSchema]]) -> dict:
    """The TableInput of one table from its files' schemas: columns widened over the files (in
    key order), the CSV header when most of its files have one, gzip when its files are."""
    keys = partition_keys([dirs for dirs, _ in files])
    columns: dict[str, str] = {}
    for _, schema in files:
        for name, hive_type in schema.columns:
            columns[name] = glue_schema.merge(columns[name], hive_type) if name in columns else hive_type
    first = files[0][1]
    parameters = dict(first.parameters)
    if kind == "csv":
        headers = sum(s.has_header for _, s in files)
        parameters.pop("skip.header.line.count", None)
        if headers * 2 >= len(files):
            parameters["skip.header.line.count"] = "1"
        if any(s.parameters.get("areColumnsQuoted") == "true" for _, s in files):
            quoted = next(s for _, s in files if s.parameters.get("areColumnsQuoted") == "true")
            parameters["areColumnsQuoted"] = "true"
            first = quoted
    codecs = [s.codec for _, s in files if s.codec]
    parameters = {"compressionType": Counter(codecs).most_common(1)[0][0] if codecs else "none",
                  "typeOfData": "file", **parameters}
    return catalog.table_input(
        table_name(folder), location, [(c, t) for c, t in columns.items() if c not in keys], keys, kind,
        parameters=parameters, serde_parameters=first.serde_parameters or None, serde=first.serde)


def _definition(table: dict) -> tuple:
    descriptor = table["StorageDescriptor"]
    return ([(c["Name"], c["Type"]) for c in descriptor["Columns"]],
            [k["Name"] for k in table.get("PartitionKeys", [])], descriptor.get("SerdeInfo"),
            table.get("Parameters"))


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
