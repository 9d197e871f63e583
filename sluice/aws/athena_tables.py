"""The tables a query names, read as Athena reads them: the names from the SQL, each table's
columns, format and partition keys from the Glue Data Catalog (GetTable), its partitions
(GetPartitions), and the files under each partition's location, opened only when the query's
filter on the partition keys keeps that partition. Every call is made with the clients it is
given, so IAM (sluice.aws.iam_hook) decides each one as it would on AWS.

    >>> hive_type("struct<id:bigint,tags:array<string>>")
    StructType(struct<id: int64, tags: list<item: string>>)
    >>> hive_type("decimal(10,2)"), hive_type("map<string,int>")
    (Decimal128Type(decimal128(10, 2)), MapType(map<string, int32>))
"""

from __future__ import annotations

import re
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.json as pajson


class QueryError(Exception):
    """A query Athena would fail, with its error's name: `TABLE_NOT_FOUND: ...`."""


# --- names: which catalog tables the SQL reads -------------------------------------------------
@dataclass(frozen=True)
class TableName:
    database: str
    name: str

    def __str__(self) -> str:
        return f"{self.database}.{self.name}"


def referenced_tables(sql: str, database: str, parse: Callable[[str], dict]) -> list[TableName]:
    """The catalog tables a SELECT reads, unqualified names in `database` (Athena's query
    context). `parse` is DuckDB's json_serialize_sql; CTE names are not tables."""
    tree = parse(sql)
    if tree.get("error"):
        message = tree.get("error_message", "")
        if "Only SELECT" in message:
            raise QueryError("NOT_SUPPORTED: `sluice query` runs SELECT (and WITH ... SELECT) queries; "
                             "DDL and writes need grants the analysts' role does not hold")
        raise QueryError(f"SYNTAX_ERROR: {message}")
    ctes: set[str] = set()
    found: dict[TableName, None] = {}
    for node in _walk(tree):
        for cte in node.get("cte_map", {}).get("map", []) if isinstance(node.get("cte_map"), dict) else []:
            ctes.add(cte["key"].lower())
    for node in _walk(tree):
        if node.get("type") != "BASE_TABLE":
            continue
        catalog, schema, name = (node.get(k, "").lower()
                                 for k in ("catalog_name", "schema_name", "table_name"))
        if catalog and catalog != "awsdatacatalog":
            raise QueryError(f"CATALOG_NOT_FOUND: catalog '{catalog}' does not exist (only AwsDataCatalog)")
        if not schema and name in ctes:
            continue
        found[TableName(schema or database, name)] = None
    return list(found)


def _walk(node: Any) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# --- types: the catalog's Hive type names, as Arrow types --------------------------------------
# Athena, "Data types in Amazon Athena" (https://docs.aws.amazon.com/athena/latest/ug/data-types.html).
_SCALARS = {"string": pa.string(), "varchar": pa.string(), "char": pa.string(), "tinyint": pa.int8(),
            "smallint": pa.int16(), "int": pa.int32(), "integer": pa.int32(), "bigint": pa.int64(),
            "float": pa.float32(), "double": pa.float64(), "boolean": pa.bool_(), "binary": pa.binary(),
            "date": pa.date32(), "timestamp": pa.timestamp("us")}
_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|`[^`]+`|[<>(),:]|\d+)")


def hive_type(text: str) -> pa.DataType:
    """The Arrow type of a catalog column type (array<...>, map<...>, struct<...> nest)."""
    tokens = _TOKEN.findall(text)
    if "".join(tokens) != re.sub(r"\s+", "", text):
        raise QueryError(f"NOT_SUPPORTED: column type {text!r} is not one Athena reads")
    parsed, rest = _parse_type(tokens)
    if rest:
        raise QueryError(f"NOT_SUPPORTED: column type {text!r} is not one Athena reads")
    return parsed


def _parse_type(tokens: list[str]) -> tuple[pa.DataType, list[str]]:
    head, rest = tokens[0].lower(), tokens[1:]
    if head == "array":
        item, rest = _parse_type(_expect(rest, "<"))
        return pa.list_(item), _expect(rest, ">")
    if head == "map":
        key, rest = _parse_type(_expect(rest, "<"))
        value, rest = _parse_type(_expect(rest, ","))
        return pa.map_(key, value), _expect(rest, ">")
    if head == "struct":
        rest = _expect(rest, "<")
        fields = []
        while rest[0] != ">":
            name, rest = rest[0].strip("`"), _expect(rest[1:], ":")
            kind, rest = _parse_type(rest)
            fields.append(pa.field(name, kind))
            rest = rest[1:] if rest[0] == "," else rest
        return pa.struct(fields), rest[1:]
    if head == "decimal":
        precision, scale = 10, 0  # Hive's DECIMAL without arguments
        if rest[:1] == ["("]:
            precision, scale = int(rest[1]), int(rest[3]) if rest[2] == "," else 0
            rest = rest[rest.index(")") + 1:]
        return pa.decimal128(precision, scale), rest
    if head in ("varchar", "char") and rest[:1] == ["("]:
        rest = rest[rest.index(")") + 1:]
    if head not in _SCALARS:
        raise QueryError(f"NOT_SUPPORTED: column type {head!r} is not one Athena reads")
    return _SCALARS[head], rest


def _expect(tokens: list[str], token: str) -> list[str]:
    if tokens[:1] != [token]:
        raise QueryError(f"NOT_SUPPORTED: expected {token!r} in a column type, found {tokens[:1]}")
    return tokens[1:]


# --- reading S3 as the caller ------------------------------------------------------------------
class ScanLimitExceeded(Exception):
    """The query would read more than the workgroup's BytesScannedCutoffPerQuery."""


@dataclass
class ScanBudget:
    """Data scanned by one query, as Athena counts it: the bytes of each object read; `limit`:
    the workgroup's BytesScannedCutoffPerQuery (None: none)."""

    limit: int | None = None
    scanned: int = 0
    exceeded: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def spend(self, size: int, path: str) -> None:
        with self._lock:
            if self.limit is not None and self.scanned + size > self.limit:
                self.exceeded = True
                raise ScanLimitExceeded(f"reading {path} would scan {self.scanned + size} bytes")
            self.scanned += size


@dataclass
class S3Scan:
    """The objects of a query's tables, read with one S3 client (the caller's, or Lake Formation's
    for a registered location), each spending its size from the query's budget, into a folder of
    the query's own: the engine then reads local files (no call back into Python from its threads)."""

    s3: Any
    budget: ScanBudget
    folder: Path
    sizes: dict[str, int] = field(default_factory=dict)  # "bucket/key" -> size, from the listing
    failure: Exception | None = None  # what stopped a read inside the engine (it reports it as text)

    def fetch(self, path: str) -> str:
        """The object "bucket/key" as a local file (its name keeps the codec's suffix)."""
        try:
            self.budget.spend(self.sizes.get(path, 0), path)
            bucket, key = path.split("/", 1)
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            local = self.folder / f"{uuid.uuid4().hex[:12]}-{Path(key).name}"
            if local.suffix == ".deflate":  # Hadoop's DefaultCodec is zlib; Arrow knows .gz and .bz2
                body, local = zlib.decompress(body), local.with_suffix("")
            elif local.suffix in (".lz4", ".snappy"):
                raise QueryError(f"NOT_SUPPORTED: {path}: this codec's Hadoop framing is not read locally "
                                 "(gzip, bzip2 and deflate are)")
            local.write_bytes(body)
            return str(local)
        except Exception as error:
            self.failure = self.failure or error
            raise

    def list(self, location: str) -> list[tuple[str, int]]:
        """("bucket/key", size) of the data files under an s3:// location. Names beginning with
        "_" or "." are not data (Spark's _SUCCESS marker): Hive's input formats, which Athena's
        Hive tables are read with, skip them as hidden files."""
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        found = [(f"{bucket}/{o['Key']}", o["Size"]) for page in pages for o in page.get("Contents", [])
                 if not o["Key"].endswith("/") and not o["Key"].rsplit("/", 1)[-1].startswith(("_", "."))]
        self.sizes.update(found)
        return found


# --- one catalog table as an Arrow dataset -----------------------------------------------------
_PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
_JSON_SERDES = ("org.openx.data.jsonserde.JsonSerDe", "org.apache.hive.hcatalog.data.JsonSerDe")


class CatalogTable(ds.FileSystemDataset):
    """A catalog table for the engine: one fragment per data file, each with its partition's key
    values. DuckDB asks `scanner(columns=..., filter=...)` with the query's filter; only the files
    whose partition can match it are read (fetched as the caller), as Athena prunes partitions by
    the keys in the WHERE clause (Athena user guide, "Table location and partitions")."""

    scan: S3Scan

    def scanner(self, *args: Any, **kwargs: Any) -> ds.Scanner:
        kept = list(self.get_fragments(filter=kwargs.get("filter")))  # by partition values: no reads
        disk = pafs.LocalFileSystem()
        fragments = [self.format.make_fragment(self.scan.fetch(f.path), disk, f.partition_expression)
                     for f in kept]
        local = ds.FileSystemDataset(fragments, self.schema, self.format, disk)
        return local.scanner(*args, **kwargs)


def table_dataset(glue: Any, scan_for: Callable[[str], S3Scan], table: TableName) -> CatalogTable:
    """The table as Athena sees it: its catalog columns, then its partition keys (strings); files
    of registered partitions only (a folder no partition names is not read)."""
    try:
        found = glue.get_table(DatabaseName=table.database, Name=table.name)["Table"]
    except glue.exceptions.EntityNotFoundException:
        raise QueryError(f"TABLE_NOT_FOUND: Table 'awsdatacatalog.{table}' does not exist") from None
    descriptor = found["StorageDescriptor"]
    scan = scan_for(descriptor["Location"])  # whose credentials read this location
    columns = [pa.field(c["Name"].lower(), hive_type(c["Type"])) for c in descriptor["Columns"]]
    keys = [k["Name"].lower() for k in found.get("PartitionKeys", [])]
    schema = pa.schema([*columns, *(pa.field(k, pa.string()) for k in keys)])
    if keys:
        pages = glue.get_paginator("get_partitions").paginate(DatabaseName=table.database,
                                                              TableName=table.name)
        locations = {p["StorageDescriptor"]["Location"].rstrip("/") + "/": p["Values"]
                     for page in pages for p in page["Partitions"]}
    else:
        locations = {descriptor["Location"].rstrip("/") + "/": []}
    file_format, fragments = _format(descriptor, columns, table), []
    for path, _ in scan.list(descriptor["Location"]) if locations else []:
        uri = f"s3://{path}"
        location = max((loc for loc in locations if uri.startswith(loc)), key=len, default=None)
        if location is not None:
            expression = ds.scalar(True)
            for key, value in zip(keys, locations[location], strict=True):
                expression = expression & (ds.field(key) == value)
            fragments.append(file_format.make_fragment(path, _NOWHERE, expression))
    dataset = CatalogTable(fragments, schema, file_format, _NOWHERE)
    dataset.scan = scan
    return dataset


_NOWHERE = pafs._MockFileSystem()  # the remote paths' file system: never opened (scanner() fetches)


def _format(descriptor: dict, columns: list[pa.Field], table: TableName) -> ds.FileFormat:
    serde = descriptor.get("SerdeInfo", {}).get("SerializationLibrary", "")
    if serde == _PARQUET_SERDE or "parquet" in descriptor.get("InputFormat", "").lower():
        # Spark writes timestamps as INT96; Athena reads them at millisecond precision, never
        # below microseconds, so nothing is lost on the way to timestamp(us).
        return ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(coerce_int96_timestamp_unit="us"))
    if serde in _JSON_SERDES:
        return ds.JsonFileFormat(parse_options=pajson.ParseOptions(
            explicit_schema=pa.schema(columns), unexpected_field_behavior="ignore"))
    raise QueryError(f"NOT_SUPPORTED: table {table} is stored with {serde or 'an unknown SerDe'}; "
                     "`sluice query` reads the processed tables' Parquet and JSON")
