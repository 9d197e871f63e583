"""`sluice query` against the emulator, with the template deployed and IAM enforced (no Spark): the
processed tables - one Parquet with nested columns, one gzip JSON - are queried as AnalystRole;
raw data, the quarantine and other roles' results are refused by name; partitions are pruned by
their keys before a file is read; the workgroup's settings hold; in Lake Formation mode the data
is read with Lake Formation's credentials. The tables are registered by the job's own catalog
writer (sluice_glue.catalog, ledger.catalog_partitions), as the job registers them."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sluice.aws.athena import DataAccess, LocalAthena, WorkGroup
from sluice.aws.iam import evaluate
from sluice.aws.iam_audit import Audit
from sluice.aws.iam_hook import Enforcer, client_as
from sluice.query import QuerySetup, csv_text, json_text, run_query
from sluice.stack.deploy import deploy
from sluice.stack.resolve import local_parameters
from tests.catalog_helpers import register

ORDERS = pa.table({"order_id": ["o-1", "o-2", "o-3"],
                   "item": [{"sku": "a", "tags": ["x", "y"]}, {"sku": "b", "tags": []}, None],
                   "amount": [1.5, 2.5, None]})
ORDERS_COLUMNS = [("order_id", "string"), ("item", "struct<sku:string,tags:array<string>>"),
                  ("amount", "double")]
READINGS = (b'{"device":"d1","at":"2026-11-24T10:15:00.000Z","value":1.5}\n'
            b'{"device":"d2","at":"2026-11-24T10:20:00.000Z"}\n')


def _seed(aws, stack) -> None:
    """Two processed tables as the job leaves them, a raw one as the crawler does, a quarantine
    record, and a run folder no partition names (a failed run's leftover)."""
    glue, s3, out = aws.client("glue"), aws.client("s3"), stack.outputs
    db, bucket = out["ProcessedDatabaseName"], out["ProcessedBucketName"]
    body = io.BytesIO()
    pq.write_table(ORDERS, body)
    for day in ("24", "25"):
        s3.put_object(Bucket=bucket, Key=f"orders/day={day}/run_id=r1/part-0.parquet", Body=body.getvalue())
        s3.put_object(Bucket=bucket, Key=f"orders/day={day}/run_id=r1/_SUCCESS", Body=b"")
    s3.put_object(Bucket=bucket, Key="orders/day=26/run_id=failed/part-0.parquet", Body=body.getvalue())
    register(glue, db, "orders", f"s3://{bucket}/orders/", ORDERS_COLUMNS, ["day", "run_id"],
             [["24", "r1"], ["25", "r1"]], "parquet")
    s3.put_object(Bucket=bucket, Key="sensors/hour=10/run_id=r1/part-0.json.gz", Body=gzip.compress(READINGS))
    register(glue, db, "sensors", f"s3://{bucket}/sensors/", [("device", "string"), ("at", "timestamp"),
                                                              ("value", "double")],
             ["hour", "run_id"], [["10", "r1"]], "json")
    s3.put_object(Bucket=bucket, Key="_quarantine/orders/run_id=r1/part-0.json", Body=b'{"record": "x"}\n')
    raw = out["RawBucketName"]
    s3.put_object(Bucket=raw, Key="orders/a.csv", Body=b"order_id\no-1\n")
    register(glue, out["RawDatabaseName"], "orders", f"s3://{raw}/orders/", [("order_id", "string")], [], [],
             "csv")


@pytest.fixture(scope="module", params=["IAM", "LakeFormation"])
def mode(request, emulator, app) -> Iterator[tuple]:
    """The template deployed in each LakeFormationMode, once for the module's tests (they only
    read, and write query results), IAM enforced on the process's clients."""
    emulator.reset()
    emulator.point_process_here()
    stack = deploy(emulator, app, {**local_parameters(), "LakeFormationMode": request.param})
    enforcer = Enforcer(Audit(), stack.resource_policies)
    enforcer.install()
    _seed(emulator, stack)
    yield stack, enforcer
    Enforcer.uninstall()


@pytest.fixture
def deployed(mode, emulator) -> tuple:
    """The deployed stack, its query setup, and an audit of this test's calls alone."""
    stack, enforcer = mode
    emulator.point_process_here()
    enforcer.audit = Audit({"AnalystRole": stack.roles["AnalystRole"], **stack.principals})
    return stack, QuerySetup.of_stack(stack, emulator.endpoint), enforcer.audit


def test_the_analyst_queries_nested_parquet_and_json_tables(deployed):
    _, setup, _ = deployed
    # Standard SQL Athena (Trino) and DuckDB read alike: row fields, 1-based array elements, UNNEST.
    nested = run_query(setup, "SELECT order_id, item.sku AS sku, item.tags[1] AS first_tag "
                              "FROM orders WHERE day = '24' ORDER BY order_id")
    assert nested.state == "SUCCEEDED", nested.reason
    assert nested.rows() == [["order_id", "sku", "first_tag"], ["o-1", "a", "x"], ["o-2", "b", None],
                             ["o-3", None, None]]
    unnested = run_query(setup, "SELECT o.order_id, t.tag FROM orders o "
                                "CROSS JOIN UNNEST(o.item.tags) AS t(tag) WHERE o.day = '25' ORDER BY tag")
    assert unnested.rows()[1:] == [["o-1", "x"], ["o-1", "y"]]
    readings = run_query(setup, 'SELECT device, "at", value, hour FROM sensors ORDER BY device')
    assert readings.state == "SUCCEEDED", readings.reason
    assert readings.rows()[1:] == [["d1", "2026-11-24 10:15:00.000", "1.5", "10"],
                                   ["d2", "2026-11-24 10:20:00.000", None, "10"]]
    assert json_text(readings).startswith('[{"device": "d1", "at": "2026-11-24T10:15:00", "value": 1.5')
    whole = run_query(setup, "SELECT * FROM orders WHERE order_id = 'o-1' AND day = '24'")
    assert '"item"' in csv_text(whole).splitlines()[0] and '{sku=a, tags=[x, y]}' in csv_text(whole)
    assert '"sku": "a", "tags": ["x", "y"]' in json_text(whole)


def test_a_filter_on_partition_keys_reads_only_those_partitions(deployed):
    stack, setup, audit = deployed
    size = len(next(iter(_objects(stack, "orders/day=24/"))))
    one = run_query(setup, "SELECT count(*) AS n FROM orders WHERE day = '25'")
    assert one.rows()[1] == ["3"] and one.execution["Statistics"]["DataScannedInBytes"] == size
    reads = {c.resource.split("/", 1)[1] for c in audit.calls() if c.action == "s3:GetObject"
             and "/orders/" in c.resource and c.resource.startswith("arn:aws:s3:::sluice-local-processed")}
    assert reads == {"orders/day=25/run_id=r1/part-0.parquet"}
    # Every registered partition, and nothing else: the failed run's folder is in no partition.
    every = run_query(setup, "SELECT day, count(*) AS n FROM orders GROUP BY day ORDER BY day")
    assert every.rows()[1:] == [["24", "3"], ["25", "3"]]
    assert every.execution["Statistics"]["DataScannedInBytes"] == 2 * size


def _objects(stack, prefix: str) -> list[bytes]:
    s3 = client_as(None, "s3")
    bucket = stack.outputs["ProcessedBucketName"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
            if o["Key"].endswith(".parquet")]
    return [s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys]


@pytest.mark.parametrize("sql", ["SELECT * FROM sluice_local_raw.orders",
                                 "SELECT p.* FROM orders p JOIN sluice_local_raw.orders r USING (order_id)"])
def test_a_query_touching_raw_data_is_denied_naming_the_missing_grant(deployed, sql):
    _, setup, _ = deployed
    answer = run_query(setup, sql)
    assert answer.state == "FAILED"
    assert "AnalystRole is not authorized to perform: glue:GetTable" in answer.reason
    [denied] = [d for d in answer.denied if "sluice_local_raw" in d["resource"]][:1]
    assert denied["principal"] == "AnalystRole" and denied["action"] == "glue:GetTable"
    assert denied["missing_grant"] == (f"an Allow of glue:GetTable on {denied['resource']} in "
                                       "AnalystRole's policies")


def test_no_other_way_to_the_raw_bucket_quarantine_or_files(deployed):
    stack, setup, _ = deployed
    raw = stack.outputs["RawBucketName"]
    for sql in (f"SELECT * FROM read_csv('s3://{raw}/orders/a.csv')",
                "SELECT * FROM read_csv('/etc/hostname')"):
        answer = run_query(setup, sql)
        assert answer.state == "FAILED" and "PERMISSION_DENIED" in answer.reason, answer.reason
    analyst = stack.roles["AnalystRole"]
    processed = stack.arns["ProcessedBucket"]
    policy = stack.resource_policies[processed]
    # The quarantine holds raw rows: only the job reads it, whatever the analyst's own grants.
    quarantined = f"{processed}/_quarantine/orders/x.json"
    assert not evaluate(analyst, "s3:GetObject", quarantined, None, policy).allowed
    # Its own reads of the tables' files: IAM mode; in Lake Formation mode Lake Formation reads them.
    assert evaluate(analyst, "s3:GetObject", f"{processed}/orders/day=24/x.parquet", None, policy).allowed \
        == (not setup.registered)


def test_results_are_encrypted_in_the_workgroups_prefix_and_only_the_analysts_read_them(deployed):
    stack, setup, _ = deployed
    answer = run_query(setup, "SELECT count(*) AS n FROM orders", workgroup=None)
    bucket, _, key = answer.execution["ResultConfiguration"]["OutputLocation"].removeprefix("s3://").partition("/")
    assert bucket == stack.outputs["ArtifactsBucketName"] and key.startswith("athena-results/")
    head = client_as(stack.roles["AnalystRole"], "s3").head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    artifacts = stack.arns["ArtifactsBucket"]
    for role in ("EtlJobRole", "StartJobRole", "CrawlerRole"):
        assert not evaluate(stack.roles[role], "s3:GetObject", f"{artifacts}/{key}", None,
                            stack.resource_policies[artifacts]).allowed, role


def test_the_workgroups_scan_cutoff_cancels_the_query_and_its_location_is_enforced(deployed, emulator):
    stack, setup, audit = deployed
    enforcer = Enforcer(audit, stack.resource_policies)
    found = client_as(None, "athena").get_work_group(WorkGroup=setup.workgroup)["WorkGroup"]
    group = WorkGroup.from_configuration(setup.workgroup, found["Configuration"])
    limit = int(local_parameters().get("QueryScanLimitBytes", 10737418240))
    assert group.enforced and group.bytes_cutoff == limit
    small = replace(group, bytes_cutoff=len(_objects(stack, "orders/day=24/")[0]))  # one file's worth

    def client_for(principal, service):
        return client_as(principal, service, emulator.endpoint)

    athena = LocalAthena(client_for, lambda name: small, DataAccess(setup.registered), enforcer)
    analyst = setup.analyst
    fits = athena.start_query_execution(analyst, "SELECT count(*) FROM orders WHERE day = '24'",
                                        setup.workgroup, setup.database, output_location="s3://elsewhere/")
    athena.wait(fits)
    run = athena.get_query_execution(analyst, fits)["QueryExecution"]
    assert run["Status"]["State"] == "SUCCEEDED", run["Status"]
    assert run["ResultConfiguration"]["OutputLocation"].startswith(group.output_location)  # not elsewhere
    too_much = athena.start_query_execution(analyst, "SELECT count(*) FROM orders", setup.workgroup,
                                            setup.database)
    athena.wait(too_much)
    status = athena.get_query_execution(analyst, too_much)["QueryExecution"]["Status"]
    assert status["State"] == "CANCELLED" and "BytesScannedCutoffPerQuery" in status["StateChangeReason"]


def test_the_analyst_role_holds_no_grant_its_queries_do_not_use(deployed):
    _, setup, audit = deployed
    # As in a fresh account, where the first query creates Athena's `default` database.
    glue = client_as(None, "glue")
    if "default" in {d["Name"] for d in glue.get_databases()["DatabaseList"]}:
        glue.delete_database(Name="default")
    assert run_query(setup, "SELECT count(*) FROM orders").state == "SUCCEEDED"
    stopped = run_query(setup, "SELECT count(*) FROM orders", timeout=0)  # stopped at once (Ctrl-C)
    assert stopped.state in ("CANCELLED", "SUCCEEDED")
    assert audit.unused_grants().get("AnalystRole", []) == []


def test_lake_formation_mode_reads_with_lake_formations_credentials(deployed):
    _, setup, audit = deployed
    answer = run_query(setup, "SELECT count(*) AS n FROM orders")
    assert answer.state == "SUCCEEDED", answer.reason
    readers = {c.principal for c in audit.calls()
               if c.action == "s3:GetObject" and "/orders/day=" in c.resource}
    if setup.registered:
        assert readers == {"AWSServiceRoleForLakeFormationDataAccess"}
        assert any(c.action == "lakeformation:GetDataAccess" and c.principal == "AnalystRole" and c.allowed
                   for c in audit.calls())
    else:
        assert readers == {"AnalystRole"}
