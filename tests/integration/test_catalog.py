"""The one catalog writer (sluice_glue.catalog) against moto: the job's processed tables and the
local crawler's raw tables, each with its own rules, in the shape Glue keeps them."""

from __future__ import annotations

import gzip
import json
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from ledger.catalog_partitions import add_partitions
from sluice.aws import glue_catalog, glue_crawl, glue_schema
from sluice.aws.account import REGION
from sluice_glue import catalog
from tests.catalog_helpers import register

DB = "processed_db"
PARQUET = catalog.FORMATS["parquet"]



@pytest.fixture
def glue(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the session emulator's, if a test started it
    glue_catalog.correct_moto()  # as sluice.aws.corrections applies it: the catalog as Glue keeps it
    with mock_aws():
        client = boto3.client("glue", region_name=REGION)
        client.create_database(DatabaseInput={"Name": DB})
        yield client


def _partitions(glue, table: str) -> dict[tuple[str, ...], str]:
    pages = glue.get_paginator("get_partitions").paginate(DatabaseName=DB, TableName=table)
    return {tuple(p["Values"]): p["StorageDescriptor"]["Location"]
            for page in pages for p in page["Partitions"]}


@pytest.mark.parametrize(("folders", "values"), [
    (["region=eu", "day=25"], [("region", "eu"), ("day", "25")]),
    (["2026", "region=eu", "x"], [("partition_0", "2026"), ("region", "eu"), ("partition_2", "x")]),
    (["a=b=c"], [("a", "b=c")]),
    (["k="], [("k", "")]),
    (["at=2026-01-01T10%3A00"], [("at", "2026-01-01T10:00")]),  # Hive folders are escaped, values not
    (["2026", "11", "25", "14"], [("partition_0", "2026"), ("partition_1", "11"), ("partition_2", "25"),
                                  ("partition_3", "14")]),
    ([], []),
])
def test_partition_values(folders, values):
    # "Managing partitions for ETL output in AWS Glue": key=val folders give the key, others
    # partition_0, partition_1, and so on.
    assert catalog.partition_values(folders) == values


@pytest.mark.parametrize(("keys", "folders", "values"), [
    (["year", "month"], ["year=2026", "month=11"], ["2026", "11"]),
    (["partition_0", "partition_1"], ["2026", "11"], ["2026", "11"]),
    (["partition_0"], ["dt=2026-11-25"], ["dt=2026-11-25"]),  # levels that disagree keep the folder whole
    (["region", "partition_1"], ["region=eu"], ["eu", None]),
])
def test_a_files_partition_values_by_level(keys, folders, values):
    assert catalog.file_partition_values(keys, folders) == values


@pytest.mark.parametrize(("values", "path"), [
    (["2026-01-01T10:00", "r1"], "at=2026-01-01T10%3A00/run_id=r1/"),
    (["a/b c", "r1"], "at=a%2Fb c/run_id=r1/"),
    (["100%?#*", "r1"], "at=100%25%3F%23%2A/run_id=r1/"),
    ([None, "r1"], "at=__HIVE_DEFAULT_PARTITION__/run_id=r1/"),
    (["", "r1"], "at=__HIVE_DEFAULT_PARTITION__/run_id=r1/"),
])
def test_partition_paths_are_escaped_as_spark_names_folders(values, path):
    assert catalog.partition_path(["at", "run_id"], values) == path


def test_register_creates_the_table_and_its_partitions(glue):
    columns = [("order_id", "string"), ("amount", "double")]
    new = register(glue, DB, "orders", "s3://out/orders/", columns, ["year", "run_id"],
                           [["2026", "r1"], ["2025", "r1"]], "parquet")
    assert new == 2
    table = glue.get_table(DatabaseName=DB, Name="orders")["Table"]
    descriptor = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == columns
    assert (descriptor["InputFormat"], descriptor["OutputFormat"],
            descriptor["SerdeInfo"]["SerializationLibrary"]) == PARQUET
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [("year", "string"),
                                                                        ("run_id", "string")]
    assert table["Parameters"]["classification"] == "parquet"
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert _partitions(glue, "orders") == {("2025", "r1"): "s3://out/orders/year=2025/run_id=r1/",
                                           ("2026", "r1"): "s3://out/orders/year=2026/run_id=r1/"}


def test_register_again_updates_the_schema_and_adds_only_new_partitions(glue):
    register(glue, DB, "orders", "s3://out/orders/", [("order_id", "string")], ["run_id"],
                     [["r1"]], "parquet")
    new = register(glue, DB, "orders", "s3://out/orders/", [("order_id", "string"),
                                                                      ("note", "string")],
                           ["run_id"], [["r1"], ["r2"]], "parquet")
    assert new == 1
    columns = glue.get_table(DatabaseName=DB, Name="orders")["Table"]["StorageDescriptor"]["Columns"]
    assert [c["Name"] for c in columns] == ["order_id", "note"]
    assert set(_partitions(glue, "orders")) == {("r1",), ("r2",)}


def test_json_output_is_a_hive_json_serde_table(glue):
    # Athena recommends the Hive JSON SerDe: the OpenX SerDe's results may be non-deterministic.
    register(glue, DB, "api", "s3://out/api/", [("id", "bigint")], ["run_id"], [["r1"]], "json")
    descriptor = glue.get_table(DatabaseName=DB, Name="api")["Table"]["StorageDescriptor"]
    assert descriptor["SerdeInfo"]["SerializationLibrary"] == "org.apache.hive.hcatalog.data.JsonSerDe"
    assert descriptor["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"


def test_a_partition_is_registered_at_the_folder_spark_wrote(glue):
    register(glue, DB, "t", "s3://out/t/", [("id", "bigint")], ["at", "run_id"],
                     [["2026-01-01T10:00", "r1"], [None, "r1"]], "parquet")
    assert _partitions(glue, "t") == {
        ("2026-01-01T10:00", "r1"): "s3://out/t/at=2026-01-01T10%3A00/run_id=r1/",
        ("__HIVE_DEFAULT_PARTITION__", "r1"): "s3://out/t/at=__HIVE_DEFAULT_PARTITION__/run_id=r1/"}


def test_put_table_updates_only_when_asked(glue):
    first = catalog.table_input("t", "s3://b/t/", [("a", "bigint")], [], "csv",
                                serde_parameters={"field.delim": ";"})
    assert catalog.put_table(glue, DB, first) == "created"
    second = catalog.table_input("t", "s3://b/t/", [("a", "string")], [], "csv")
    seen: list[dict] = []

    def refuse(existing: dict) -> None:
        seen.append(existing)

    assert catalog.put_table(glue, DB, second, merge=refuse) is None
    assert seen[0]["StorageDescriptor"]["Columns"] == [{"Name": "a", "Type": "bigint"}]
    assert seen[0]["StorageDescriptor"]["SerdeInfo"]["Parameters"] == {"field.delim": ";"}
    assert catalog.put_table(glue, DB, second, merge=lambda existing: second) == "updated"
    kept = glue.get_table(DatabaseName=DB, Name="t")["Table"]["StorageDescriptor"]["Columns"]
    assert kept == [{"Name": "a", "Type": "string"}]


def test_the_catalog_stores_names_in_lowercase(glue):
    glue.create_table(DatabaseName=DB, TableInput=catalog.table_input(
        "Trail", "s3://b/t/", [("eventTime", "string")], ["Region"], "json"))
    table = glue.get_table(DatabaseName=DB, Name="trail")["Table"]
    assert (table["StorageDescriptor"]["Columns"][0]["Name"], table["PartitionKeys"][0]["Name"]) == (
        "eventtime", "region")


class _Racing:
    """A glue client whose table is changed by another writer between each read and write."""

    def __init__(self, glue, other) -> None:
        self.glue, self.other, self.exceptions = glue, other, glue.exceptions
        self.raced = 0

    def get_table(self, **kwargs):
        answer = self.glue.get_table(**kwargs)
        if self.raced < 2:  # another run registers its columns just after this read
            self.raced += 1
            self.glue.update_table(DatabaseName=DB, TableInput=self.other(self.raced))
        return answer

    def __getattr__(self, name):
        return getattr(self.glue, name)


def test_concurrent_runs_widen_the_table_and_lose_no_column(glue):
    base = [("order_id", "string")]
    register(glue, DB, "orders", "s3://out/orders/", base, ["run_id"], [["r0"]], "parquet")

    def other(n: int) -> dict:
        return catalog.table_input("orders", "s3://out/orders/", [*base, (f"from_other_{n}", "bigint")],
                                   ["run_id"], "parquet", serde=None)

    racing = _Racing(glue, other)
    register(racing, DB, "orders", "s3://out/orders/", [*base, ("amount", "double")], ["run_id"],
                     [["r1"]], "parquet")
    table = glue.get_table(DatabaseName=DB, Name="orders")["Table"]
    columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    assert racing.raced == 2 and columns == ["order_id", "from_other_2", "amount"]


def test_update_table_with_a_stale_version_is_refused(glue):
    table = catalog.table_input("t", "s3://b/t/", [("a", "bigint")], [], "csv")
    glue.create_table(DatabaseName=DB, TableInput=table)
    version = glue.get_table(DatabaseName=DB, Name="t")["Table"]["VersionId"]
    glue.update_table(DatabaseName=DB, TableInput=table, VersionId=version)
    with pytest.raises(glue.exceptions.ConcurrentModificationException):
        glue.update_table(DatabaseName=DB, TableInput=table, VersionId=version)


def test_a_create_that_loses_the_race_merges_into_the_winner(glue):
    class Late:
        exceptions = glue.exceptions

        def __init__(self) -> None:
            self.first = True

        def get_table(self, **kwargs):
            if self.first:  # the table did not exist when this writer looked...
                self.first = False
                winner = catalog.table_input("t", "s3://out/t/", [("a", "bigint")], ["run_id"], "parquet")
                glue.create_table(DatabaseName=DB, TableInput=winner)  # ...but another created it
                error = {"Error": {"Code": "EntityNotFoundException"}}
                raise glue.exceptions.EntityNotFoundException(error, "GetTable")
            return glue.get_table(**kwargs)

        def __getattr__(self, name):
            return getattr(glue, name)

    register(Late(), DB, "t", "s3://out/t/", [("b", "string")], ["run_id"], [["r1"]], "parquet")
    columns = glue.get_table(DatabaseName=DB, Name="t")["Table"]["StorageDescriptor"]["Columns"]
    assert [c["Name"] for c in columns] == ["a", "b"]


def test_a_processed_table_only_widens(glue):
    register(glue, DB, "t", "s3://out/t/", [("a", "bigint"), ("b", "int")], ["run_id"], [["r1"]],
                     "parquet")
    register(glue, DB, "t", "s3://out/t/", [("b", "double"), ("c", "string")], ["run_id"], [["r2"]],
                     "parquet")
    columns = glue.get_table(DatabaseName=DB, Name="t")["Table"]["StorageDescriptor"]["Columns"]
    assert [(c["Name"], c["Type"]) for c in columns] == [("a", "bigint"), ("b", "double"), ("c", "string")]
    with pytest.raises(catalog.SchemaConflict, match="partitioned by run_id; this run writes day, run_id"):
        register(glue, DB, "t", "s3://out/t/", [("a", "bigint")], ["day", "run_id"], [["1", "r3"]],
                         "parquet")


def test_add_partitions_past_one_batch(glue):
    table = catalog.table_input("t", "s3://b/t/", [("a", "bigint")], ["n"], "parquet")
    catalog.put_table(glue, DB, table)
    locations = {(str(n),): f"s3://b/t/n={n}/" for n in range(250)}  # three BatchCreatePartition calls
    assert add_partitions(glue, DB, table, locations) == 250
    assert add_partitions(glue, DB, table, {**locations, ("250",): "s3://b/t/n=250/"}) == 1
    assert len(_partitions(glue, "t")) == 251


# --- the local crawler writes through it, with a crawler's rules -------------------------------

@pytest.fixture
def raw(glue, monkeypatch):
    """A raw bucket and a crawler over it, under moto; crawl(update) runs the local crawler."""
    monkeypatch.setattr(glue_schema, "_INFERENCE_CACHE", {})
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="raw")
    aws = SimpleNamespace(client=lambda service: boto3.client(service, region_name=REGION))

    def crawl(update: str = "UPDATE_IN_DATABASE") -> glue_crawl.CrawlReport:
        name = f"crawler-{update}"  # moto has no UpdateCrawler: one crawler per policy
        if name not in glue.list_crawlers()["CrawlerNames"]:
            glue.create_crawler(Name=name, Role="r", DatabaseName=DB,
                                Targets={"S3Targets": [{"Path": "s3://raw/"}]},
                                SchemaChangePolicy={"UpdateBehavior": update, "DeleteBehavior": "LOG"})
        return glue_crawl.crawl(aws, name)

    return s3, crawl


def test_crawler_catalogues_a_csv_table_with_its_partitions(glue, raw):
    s3, crawl = raw
    s3.put_object(Bucket="raw", Key="orders/region=eu/day=24/a.csv", Body=b"id;amount\n1;2.5\n")
    s3.put_object(Bucket="raw", Key="orders/region=us/day=25/b.csv.gz",
                  Body=gzip.compress(b"id;amount\n2;3\n"))
    report = crawl()
    assert (report.tables_created, report.tables_updated, report.partitions_created) == (1, 0, 2)
    table = glue.get_table(DatabaseName=DB, Name="orders")["Table"]
    descriptor = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == [("id", "bigint"), ("amount", "double")]
    assert [k["Name"] for k in table["PartitionKeys"]] == ["region", "day"]
    assert descriptor["SerdeInfo"] == {"SerializationLibrary": catalog.FORMATS["csv"].serde,
                                       "Parameters": {"field.delim": ";"}}
    assert table["Parameters"]["classification"] == "csv"
    assert table["Parameters"]["compressionType"] == "gzip"
    assert _partitions(glue, "orders") == {("eu", "24"): "s3://raw/orders/region=eu/day=24/",
                                           ("us", "25"): "s3://raw/orders/region=us/day=25/"}


def test_crawler_updates_a_changed_schema_only_if_its_policy_allows(glue, raw):
    s3, crawl = raw
    s3.put_object(Bucket="raw", Key="orders/a.csv", Body=b"id,amount\n1,2\n")
    assert crawl().tables_created == 1
    again = crawl()  # nothing changed: nothing written
    assert (again.tables_created, again.tables_updated, again.partitions_created) == (0, 0, 0)
    s3.put_object(Bucket="raw", Key="orders/b.csv", Body=b"id,amount\n2,2.5\n")  # amount widens to double
    assert crawl(update="LOG").tables_updated == 0
    columns = glue.get_table(DatabaseName=DB, Name="orders")["Table"]["StorageDescriptor"]["Columns"]
    assert columns[1] == {"Name": "amount", "Type": "bigint"}
    assert crawl().tables_updated == 1
    columns = glue.get_table(DatabaseName=DB, Name="orders")["Table"]["StorageDescriptor"]["Columns"]
    assert columns[1] == {"Name": "amount", "Type": "double"}


def test_crawler_catalogues_firehose_delivery_as_aws_would(glue, raw):
    # Firehose's default S3 prefix is YYYY/MM/dd/HH ("Configure Amazon S3 object name format");
    # a stream without a file extension (or an older one) leaves the name without ".gz". The
    # crawler classifies by content and names the non-Hive levels partition_0.. ("Managing
    # partitions for ETL output in AWS Glue"); JSON tables use the OpenX SerDe.
    s3, crawl = raw
    record = {"id": 1, "device": {"Id": "d-1", "tags": ["a"]}, "at": "2026-11-25T14:00:00Z"}
    body = gzip.compress((json.dumps(record) + "\n").encode())
    s3.put_object(Bucket="raw", Key="firehose/2026/11/25/14/stream-1-2026-11-25-14-00-00-abc", Body=body)
    s3.put_object(Bucket="raw", Key="firehose/2026/11/25/15/stream-1-2026-11-25-15-00-00-def", Body=body)
    report = crawl()
    assert (report.tables_created, report.partitions_created, report.warnings) == (1, 2, [])
    table = glue.get_table(DatabaseName=DB, Name="firehose")["Table"]
    descriptor = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == [
        ("id", "bigint"), ("device", "struct<Id:string,tags:array<string>>"), ("at", "timestamp")]
    assert [k["Name"] for k in table["PartitionKeys"]] == ["partition_0", "partition_1", "partition_2",
                                                           "partition_3"]
    assert descriptor["SerdeInfo"]["SerializationLibrary"] == catalog.OPENX_JSON_SERDE
    assert table["Parameters"] == {"classification": "json", "compressionType": "gzip", "typeOfData": "file"}
    assert _partitions(glue, "firehose") == {
        ("2026", "11", "25", "14"): "s3://raw/firehose/2026/11/25/14/",
        ("2026", "11", "25", "15"): "s3://raw/firehose/2026/11/25/15/"}


def test_crawler_catalogues_an_all_text_csv_by_position(glue, raw):
    # "Built-in CSV classifier": a header only when some column below parses as other than STRING.
    s3, crawl = raw
    s3.put_object(Bucket="raw", Key="people/a.csv", Body=b"name,email,city\nann,a@x.org,Oslo\n")
    crawl()
    table = glue.get_table(DatabaseName=DB, Name="people")["Table"]
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == ["col0", "col1", "col2"]
    assert "skip.header.line.count" not in table["Parameters"]


def test_crawler_catalogues_quoted_csv_with_opencsvserde(glue, raw):
    s3, crawl = raw
    s3.put_object(Bucket="raw", Key="notes/a.csv", Body=b'id,note\n1,"a, b"\n2,"c ""d"""\n')
    crawl()
    table = glue.get_table(DatabaseName=DB, Name="notes")["Table"]
    assert table["StorageDescriptor"]["SerdeInfo"] == {
        "SerializationLibrary": catalog.OPEN_CSV_SERDE,
        "Parameters": {"separatorChar": ",", "quoteChar": '"'}}
    assert table["Parameters"]["skip.header.line.count"] == "1"


def test_partition_keys_are_the_levels_every_file_has():
    assert glue_crawl.partition_keys([["year=2026", "month=11"], ["year=2026", "month=12", "x"]]) == [
        "year", "month"]
    assert glue_crawl.partition_keys([["dt=2026-11-25"], ["2026-11-26"]]) == ["partition_0"]
    assert glue_crawl.partition_keys([[], ["region=eu"]]) == []
