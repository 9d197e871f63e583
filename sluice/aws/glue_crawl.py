"""One crawl, as a Glue crawler makes it: what moto's StartCrawler does not do.

Lists the crawler's S3 targets, groups objects into tables (TableLevelConfiguration 2: each
top-level folder of the bucket is a table, whatever its files' names), classifies each file by
its content as Glue's built-in classifiers do (sluice.aws.glue_schema: Parquet, JSON, CSV; gzip
and bzip2; the CSV header rule; nested types), combines their schemas, makes the folders below
the table's its partitions (Hive `k=v` folders by their key, others partition_0, partition_1...),
and creates or updates the tables and partitions in the emulated Data Catalog in the shape AWS
Glue writes them, honouring the schema change policy, through the job's own catalog writer
(sluice_glue.catalog). An unreadable file is skipped and reported, never fatal to the crawl.
The crawler that runs it when StartCrawler is called is sluice.aws.glue_crawler.

    >>> table_name("Orders API")
    'orders_api'
    >>> partition_keys([["year=2026", "month=11"], ["year=2026", "month=12"]])
    ['year', 'month']
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ledger.catalog_partitions import add_partitions
from sluice.aws import glue_schema
from sluice_glue import catalog


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
