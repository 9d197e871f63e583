"""Querying what the pipeline wrote, end to end: the samples (orders as CSV, sensor readings the job
writes as gzip JSON lines, clicks) and a raw dataset in Hive folders go through the runtime; then
AnalystRole queries every processed table - each by IAM decision - and nothing raw; the counts per
partition equal the rows the job wrote; `sluice query` prints them as a table, JSON or CSV.

The Lake Formation grants are checked here, against the calls each principal made (not by a
local model of Lake Formation): every Data Catalog call of the crawler, the job, StartJobFunction
(a run that fails after registering its partitions makes it discard them) and the analyst needs
a permission that LakeFormationMode=LakeFormation grants, and every grant is needed by a call
(sluice.stack.lakeformation maps each call to its permission)."""

from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from collections.abc import Iterator

import pyarrow.parquet as pq
import pytest

from sluice import ROOT
from sluice.query import QuerySetup, main, run_query
from sluice.runtime import Runtime
from sluice.stack.lakeformation import LakeFormationGrants, Need, needs_of
from sluice.stack.resolve import local_parameters
from sluice.stack.template import SamApp
from tests.runtime.conftest import orders_csv, put, started_runtime, wait

pytestmark = [pytest.mark.slow, pytest.mark.spark]

SAMPLES = ROOT / "samples"
# The one grant no local call needs: the Glue crawler's own GetDatabase, which the local crawler
# does not make (its IAM grant is in CrawlerRole's CatalogRaw statement for the same reason).
NEEDED_BY_AWS_ONLY = {Need("CrawlerRole", "DESCRIBE", "database:sluice_local_raw")}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Iterator[Runtime]:
    # denials_expected: the analyst's raw queries are refused on purpose; the pipeline's own
    # principals are held to none below.
    with started_runtime(tmp_path_factory.mktemp("sluice-query"), schedule_every=2,
                         denials_expected=True) as rt:
        for dataset in ("orders", "sensors", "clicks"):
            for path in sorted((SAMPLES / dataset).iterdir()):
                rt.ingest(path, f"{dataset}/{path.name}")
        # raw Hive partitions: the crawler adds them (BatchCreatePartition). Not `region=`: the
        # [local] lookup adds a `region` column to tables with a `country` (countries.csv).
        put(rt, "orders_eu/source=web/part-0.csv", orders_csv(20))
        for dataset, files in (("orders", 3), ("sensors", 1), ("clicks", 1), ("orders_eu", 1)):
            assert {i["state"] for i in wait(rt, dataset, files)} == {"DONE"}, dataset
        yield rt


@pytest.fixture(scope="module")
def setup(runtime) -> QuerySetup:
    return QuerySetup.of_stack(runtime.stack, runtime.aws.endpoint)


def _tables(rt: Runtime, database: str) -> list[dict]:
    glue = rt.aws.client("glue")  # the runtime's own client: not a principal's, not audited
    return [t for page in glue.get_paginator("get_tables").paginate(DatabaseName=database)
            for t in page["TableList"]]


def test_the_analyst_queries_every_processed_table_and_nothing_raw(runtime, setup):
    processed = _tables(runtime, setup.database)
    assert {t["Name"] for t in processed} >= {"orders", "sensors", "clicks", "orders_eu"}
    for table in processed:
        answer = run_query(setup, f'SELECT count(*) AS n FROM "{table["Name"]}"')
        assert answer.state == "SUCCEEDED", (table["Name"], answer.reason)
        arn = f"arn:aws:glue:us-east-1:123456789012:table/{setup.database}/{table['Name']}"
        assert any(c.principal == "AnalystRole" and c.action == "glue:GetTable" and c.resource == arn
                   and c.allowed for c in runtime.audit.calls())
    raw = runtime.stack.outputs["RawDatabaseName"]
    for table in _tables(runtime, raw):
        answer = run_query(setup, f'SELECT count(*) FROM {raw}."{table["Name"]}"')
        assert answer.state == "FAILED"
        database = f"arn:aws:glue:us-east-1:123456789012:database/{raw}"
        assert [(d["action"], d["missing_grant"]) for d in answer.denied] == [
            ("glue:GetTable", f"an Allow of glue:GetTable on {database} in AnalystRole's policies")]


def _rows_written(rt: Runtime, table: dict) -> Counter:
    """Rows per partition, read from the objects under each registered partition's location."""
    glue, s3 = rt.aws.client("glue"), rt.aws.client("s3")
    counts: Counter = Counter()
    pages = glue.get_paginator("get_partitions").paginate(DatabaseName=table["DatabaseName"],
                                                          TableName=table["Name"])
    for partition in (p for page in pages for p in page["Partitions"]):
        bucket, _, prefix = partition["StorageDescriptor"]["Location"].removeprefix("s3://").partition("/")
        for found in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=found["Key"])["Body"].read()
            if found["Key"].endswith(".parquet"):
                counts[tuple(partition["Values"])] += pq.read_metadata(io.BytesIO(body)).num_rows
            elif ".json" in found["Key"]:
                text = gzip.decompress(body) if found["Key"].endswith(".gz") else body
                counts[tuple(partition["Values"])] += len(text.splitlines())
    return counts


def test_query_counts_per_partition_equal_the_rows_the_job_wrote(runtime, setup):
    for table in _tables(runtime, setup.database):
        keys = [k["Name"] for k in table["PartitionKeys"]]
        columns = ", ".join(f'"{k}"' for k in keys)
        answer = run_query(setup, f'SELECT {columns}, count(*) AS n FROM "{table["Name"]}" '
                                  f"GROUP BY {columns}")
        assert answer.state == "SUCCEEDED", answer.reason
        queried = Counter({tuple(row[:-1]): int(row[-1]) for row in answer.rows()[1:]})
        written = _rows_written(runtime, table)
        assert queried == written and sum(written.values()) > 0, table["Name"]


def test_the_json_output_table_is_queried_as_written(runtime, setup):
    [sensors] = [t for t in _tables(runtime, setup.database) if t["Name"] == "sensors"]
    assert sensors["Parameters"]["classification"] == "json"
    answer = run_query(setup, "SELECT hour, count(*) AS readings FROM sensors GROUP BY hour ORDER BY hour")
    assert answer.state == "SUCCEEDED", answer.reason
    assert sum(int(r[1]) for r in answer.rows()[1:]) == sum(_rows_written(runtime, sensors).values())


def test_sluice_query_prints_a_table_json_and_csv_and_names_a_denial(runtime, monkeypatch, capsys):
    monkeypatch.setattr("sluice.running.STATE_DIR", runtime.state_dir)  # this runtime's runtime.json
    sql = "SELECT day, count(*) AS n FROM orders GROUP BY day ORDER BY day"
    assert main([sql]) == 0
    out, err = capsys.readouterr()
    assert "┃ day" in out and "SUCCEEDED" in err and "as AnalystRole" in err
    assert main(["--json", sql]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and set(rows[0]) == {"day", "n"} and isinstance(rows[0]["n"], int)
    assert main(["--csv", sql]) == 0
    assert capsys.readouterr().out.splitlines()[0] == '"day","n"'
    assert main([f"SELECT * FROM {runtime.stack.outputs['RawDatabaseName']}.orders"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("FAILED: AccessDeniedException") and "DENIED  AnalystRole: glue:GetTable on" in err
    assert "missing: an Allow of glue:GetTable" in err


def test_the_analyst_role_holds_no_grant_the_queries_do_not_use(runtime, setup):
    assert run_query(setup, "SELECT count(*) FROM clicks", timeout=0).state in ("CANCELLED", "SUCCEEDED")
    assert runtime.audit.unused_grants().get("AnalystRole", []) == []


def test_each_lake_formation_grant_is_needed_by_a_call_and_every_call_is_granted(runtime, setup):
    queried = {t["Name"] for t in _tables(runtime, setup.database)}
    for table in queried:  # the analyst reads each table (SELECT), whichever tests ran before
        assert run_query(setup, f'SELECT count(*) FROM "{table}"').state == "SUCCEEDED"
    # A run that fails after writing its output: StartJobFunction discards it. One that dies after
    # its commit point: StartJobFunction finishes it (registers its partitions).
    runtime.faults.arm("job-fails-after-write", 1)
    put(runtime, "lf_discard/part-0.csv", orders_csv(5))
    assert {i["state"] for i in wait(runtime, "lf_discard", 1)} == {"DONE"}
    runtime.faults.arm("job-timeout-after-commit", 1)
    put(runtime, "lf_finish/part-0.csv", orders_csv(5, start=100))
    assert {i["state"] for i in wait(runtime, "lf_finish", 1)} == {"DONE"}
    calls = [c for c in runtime.audit.calls() if c.allowed]
    made = {c.action for c in calls if c.principal == "StartJobRole"}
    assert {"glue:BatchDeletePartition", "glue:BatchCreatePartition", "glue:GetTable"} <= made
    lake_formation = {**local_parameters(), "LakeFormationMode": "LakeFormation"}
    grants = LakeFormationGrants.of(SamApp.load(), lake_formation)
    assert sorted(grants.registered) == sorted(grants.locations.values())
    processed = runtime.stack.arns["ProcessedBucket"]
    reads = {c.resource: f"table:{setup.database}/{c.resource.removeprefix(processed + '/').split('/')[0]}"
             for c in calls if c.principal == "AnalystRole" and c.action == "s3:GetObject"
             and c.resource.startswith(processed + "/")}
    assert set(reads.values()) == {f"table:{setup.database}/{t}" for t in queried}
    # Only the analysts read through an integrated service (Athena); the job reads files with IAM.
    needs = {n for c in calls if c.principal in grants.principals.values()
             for n in needs_of(c.principal, c.action, c.resource, grants.locations,
                               reads if c.principal == "AnalystRole" else None)}
    assert grants.uncovered(needs) == set()
    assert grants.unused(needs) == NEEDED_BY_AWS_ONLY
    # No principal of the pipeline was refused anything along the way.
    assert [c for c in runtime.audit.denied() if c.principal != "AnalystRole"] == []
