"""The one catalog writer (sluice_glue.catalog) against moto: the job's processed tables and the
local crawler's raw tables, each with its own rules, in the shape Glue keeps them."""

from __future__ import annotations

import gzip
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from sluice.aws import glue_crawler, glue_schema
from sluice.aws.emulator import REGION
from sluice_glue import catalog

DB = "processed_db"
PARQUET = catalog.FORMATS["parquet"]


@pytest.fixture
def glue(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the session emulator's, if a test started it
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
    (["2026", "region=eu", "x"], [("region", "eu")]),
    (["a=b=c"], [("a", "b=c")]),
    (["k="], [("k", "")]),
    (["2026", "11"], []),
    ([], []),
])
def test_partition_values(folders, values):
    assert catalog.partition_values(folders) == values


def test_register_creates_the_table_and_its_partitions(glue):
    columns = [("order_id", "string"), ("amount", "double")]
    new = catalog.register(glue, DB, "orders", "s3://out/orders/", columns, ["year", "run_id"],
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
    catalog.register(glue, DB, "orders", "s3://out/orders/", [("order_id", "string")], ["run_id"],
                     [["r1"]], "parquet")
    new = catalog.register(glue, DB, "orders", "s3://out/orders/", [("order_id", "string"),
                                                                      ("note", "string")],
                           ["run_id"], [["r1"], ["r2"]], "parquet")
    assert new == 1
    columns = glue.get_table(DatabaseName=DB, Name="orders")["Table"]["StorageDescriptor"]["Columns"]
    assert [c["Name"] for c in columns] == ["order_id", "note"]
    assert set(_partitions(glue, "orders")) == {("r1",), ("r2",)}


def test_json_output_is_a_json_serde_table(glue):
    catalog.register(glue, DB, "api", "s3://out/api/", [("id", "bigint")], ["run_id"], [["r1"]], "json")
    descriptor = glue.get_table(DatabaseName=DB, Name="api")["Table"]["StorageDescriptor"]
    assert descriptor["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert descriptor["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"


def test_put_table_updates_only_when_asked(glue):
    first = catalog.table_input("t", "s3://b/t/", [("a", "bigint")], [], "csv",
                                serde_parameters={"field.delim": ";"})
    assert catalog.put_table(glue, DB, first) == "created"
    second = catalog.table_input("t", "s3://b/t/", [("a", "string")], [], "csv")
    seen: list[dict] = []

    def refuse(existing: dict) -> bool:
        seen.append(existing)
        return False

    assert catalog.put_table(glue, DB, second, update_if=refuse) is None
    assert seen[0]["StorageDescriptor"]["Columns"] == [{"Name": "a", "Type": "bigint"}]
    assert seen[0]["StorageDescriptor"]["SerdeInfo"]["Parameters"] == {"field.delim": ";"}
    assert catalog.put_table(glue, DB, second) == "updated"
    kept = glue.get_table(DatabaseName=DB, Name="t")["Table"]["StorageDescriptor"]["Columns"]
    assert kept == [{"Name": "a", "Type": "string"}]


def test_add_partitions_past_one_batch(glue):
    table = catalog.table_input("t", "s3://b/t/", [("a", "bigint")], ["n"], "parquet")
    catalog.put_table(glue, DB, table)
    locations = {(str(n),): f"s3://b/t/n={n}/" for n in range(250)}  # three BatchCreatePartition calls
    assert catalog.add_partitions(glue, DB, table, locations) == 250
    assert catalog.add_partitions(glue, DB, table, {**locations, ("250",): "s3://b/t/n=250/"}) == 1
    assert len(_partitions(glue, "t")) == 251


# --- the local crawler writes through it, with a crawler's rules -------------------------------

@pytest.fixture
def raw(glue, monkeypatch):
    """A raw bucket and a crawler over it, under moto; crawl(update) runs the local crawler."""
    monkeypatch.setattr(glue_schema, "_INFERENCE_CACHE", {})
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="raw")
    aws = SimpleNamespace(client=lambda service: boto3.client(service, region_name=REGION))

    def crawl(update: str = "UPDATE_IN_DATABASE") -> glue_crawler.CrawlReport:
        name = f"crawler-{update}"  # moto has no UpdateCrawler: one crawler per policy
        if name not in glue.list_crawlers()["CrawlerNames"]:
            glue.create_crawler(Name=name, Role="r", DatabaseName=DB,
                                Targets={"S3Targets": [{"Path": "s3://raw/"}]},
                                SchemaChangePolicy={"UpdateBehavior": update, "DeleteBehavior": "LOG"})
        return glue_crawler.crawl(aws, name)

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
