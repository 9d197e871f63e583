"""Which Lake Formation permission each Data Catalog call needs (sluice.stack.lakeformation), and
when a grant covers a need: the rules the runtime test holds the template's grants to."""

from __future__ import annotations

import pytest

from sluice.stack.lakeformation import Need, needs_of

GLUE = "arn:aws:glue:us-east-1:123456789012"
LOCATIONS = {"raw": "arn:aws:s3:::raw-bucket", "processed": "arn:aws:s3:::processed-bucket"}


@pytest.mark.parametrize(("action", "resource", "needs"), [
    ("glue:GetDatabase", f"{GLUE}:database/processed", [("DESCRIBE", "database:processed")]),
    ("glue:GetTable", f"{GLUE}:table/processed/orders", [("DESCRIBE", "table:processed/orders")]),
    ("glue:GetTables", f"{GLUE}:table/raw/*", [("DESCRIBE", "table:raw/*")]),
    ("glue:GetPartitions", f"{GLUE}:table/processed/orders", [("DESCRIBE", "table:processed/orders")]),
    ("glue:CreateTable", f"{GLUE}:table/processed/orders",
     [("CREATE_TABLE", "database:processed"),
      ("DATA_LOCATION_ACCESS", "location:arn:aws:s3:::processed-bucket")]),
    ("glue:UpdateTable", f"{GLUE}:table/raw/orders",
     [("ALTER", "table:raw/orders"), ("DATA_LOCATION_ACCESS", "location:arn:aws:s3:::raw-bucket")]),
    ("glue:BatchCreatePartition", f"{GLUE}:table/raw/orders",
     [("ALTER", "table:raw/orders"), ("DATA_LOCATION_ACCESS", "location:arn:aws:s3:::raw-bucket")]),
    ("glue:BatchDeletePartition", f"{GLUE}:table/processed/orders", [("ALTER", "table:processed/orders")]),
    ("glue:DeleteTable", f"{GLUE}:table/processed/orders", [("DROP", "table:processed/orders")]),
    # the catalog ARN of the same calls, Athena's `default` database, and other services: none here
    ("glue:GetTable", f"{GLUE}:catalog", []),
    ("glue:GetDatabase", f"{GLUE}:database/default", []),
    ("glue:CreateDatabase", f"{GLUE}:database/default", []),
    ("s3:GetObject", "arn:aws:s3:::raw-bucket/orders/a.csv", []),
    ("dynamodb:UpdateItem", "arn:aws:dynamodb:us-east-1:123456789012:table/ledger", []),
])
def test_the_permission_each_catalog_call_needs(action, resource, needs):
    assert [(n.permission, n.resource) for n in needs_of("Role", action, resource, LOCATIONS)] == needs


def test_reading_a_tables_data_through_athena_needs_select():
    obj = "arn:aws:s3:::processed-bucket/orders/day=24/part-0.parquet"
    assert needs_of("AnalystRole", "s3:GetObject", obj, LOCATIONS, {obj: "table:processed/orders"}) == [
        Need("AnalystRole", "SELECT", "table:processed/orders")]


@pytest.mark.parametrize(("need", "grant", "covered"), [
    (Need("R", "DESCRIBE", "table:db/orders"), Need("R", "DESCRIBE", "table:db/*"), True),
    (Need("R", "DESCRIBE", "table:db/*"), Need("R", "DESCRIBE", "table:db/*"), True),
    (Need("R", "DESCRIBE", "table:other/orders"), Need("R", "DESCRIBE", "table:db/*"), False),
    (Need("R", "SELECT", "table:db/orders"), Need("R", "DESCRIBE", "table:db/*"), False),
    (Need("Other", "DESCRIBE", "table:db/orders"), Need("R", "DESCRIBE", "table:db/*"), False),
    (Need("R", "CREATE_TABLE", "database:db"), Need("R", "CREATE_TABLE", "database:db"), True),
    (Need("R", "CREATE_TABLE", "database:db2"), Need("R", "CREATE_TABLE", "database:db"), False),
    (Need("R", "DATA_LOCATION_ACCESS", "location:arn:aws:s3:::b/p"),
     Need("R", "DATA_LOCATION_ACCESS", "location:arn:aws:s3:::b"), True),
    (Need("R", "DATA_LOCATION_ACCESS", "location:arn:aws:s3:::bb"),
     Need("R", "DATA_LOCATION_ACCESS", "location:arn:aws:s3:::b"), False),
])
def test_when_a_grant_covers_a_need(need, grant, covered):
    assert need.covered_by(grant) is covered
