"""Who may read what, as template.yaml deploys it: the analysts' role and workgroup, the bucket
policies that name each bucket's readers, Lake Formation's mode, and the catalog's encryption key.
Each decision is IAM's own evaluation (sluice.aws.iam.evaluate) of the deployed policies."""

from __future__ import annotations

import pytest

from sluice.aws.account import ACCOUNT_ID
from sluice.aws.iam import Policy, Principal, evaluate
from sluice.stack.deploy import deploy
from sluice.stack.lakeformation import LakeFormationGrants, Need
from sluice.stack.model import Stack
from sluice.stack.policies import collect_policies
from sluice.stack.resolve import local_parameters, resolve_template

ADMIN = Principal("Admin", f"arn:aws:iam::{ACCOUNT_ID}:role/Admin",
                  [Policy("admin", {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})])
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _policies(app, **parameters: str) -> Stack:
    """The roles' and resources' policies as deployed with these parameters (nothing created)."""
    template = resolve_template(app, {**local_parameters(), **parameters})
    collect_policies(template)
    return template.stack


@pytest.fixture(params=["IAM", "LakeFormation"])
def stack(request, app) -> Stack:
    return _policies(app, LakeFormationMode=request.param)


def _allowed(stack, who: Principal, action: str, resource: str) -> bool:
    bucket = resource.split("/", 1)[0] if resource.startswith("arn:aws:s3:::") else resource
    return evaluate(who, action, resource, None, stack.resource_policies.get(bucket)).allowed


def test_the_workgroup_enforces_encrypted_results_in_its_prefix_and_a_scan_limit(app):
    workgroup = app.resources["QueryWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert workgroup["EnforceWorkGroupConfiguration"] is True
    assert workgroup["ResultConfiguration"]["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    assert workgroup["ResultConfiguration"]["OutputLocation"] == {"Fn::Sub": "s3://${ArtifactsBucket}/athena-results/"}
    assert workgroup["BytesScannedCutoffPerQuery"] == {"Ref": "QueryScanLimitBytes"}
    # Athena's per-query cutoff is at least 10 MB (Athena API reference, WorkGroupConfiguration).
    assert app.parameters["QueryScanLimitBytes"]["MinValue"] == 10_000_000


def test_the_analyst_reads_processed_tables_and_nothing_of_the_pipeline(stack):
    analyst, names, arns = stack.roles["AnalystRole"], stack.names, stack.arns
    glue = f"arn:aws:glue:us-east-1:{ACCOUNT_ID}"
    processed, raw = names["ProcessedDatabase"], names["RawDatabase"]
    lake_formation = stack.resources.get("ProcessedLocation") is not None
    workgroups = f"arn:aws:athena:us-east-1:{ACCOUNT_ID}:workgroup"
    allowed = [("athena:StartQueryExecution", f"{workgroups}/{names['QueryWorkGroup']}"),
               ("glue:GetTable", f"{glue}:table/{processed}/orders"),
               ("glue:GetPartitions", f"{glue}:table/{processed}/orders"),
               ("s3:PutObject", f"{arns['ArtifactsBucket']}/athena-results/q.csv"),
               ("s3:GetObject", f"{arns['ArtifactsBucket']}/athena-results/q.csv")]
    allowed.append(("lakeformation:GetDataAccess", "*") if lake_formation else
                   ("s3:GetObject", f"{arns['ProcessedBucket']}/orders/day=24/part-0.parquet"))
    denied = [("glue:GetTable", f"{glue}:table/{raw}/orders"), ("glue:GetTables", f"{glue}:table/{raw}/*"),
              ("glue:CreateTable", f"{glue}:table/{processed}/orders"),
              ("glue:UpdateTable", f"{glue}:table/{processed}/orders"),
              ("s3:GetObject", f"{arns['RawBucket']}/orders/a.csv"),
              ("s3:GetObject", f"{arns['ProcessedBucket']}/_quarantine/orders/x.json"),
              ("s3:PutObject", f"{arns['ProcessedBucket']}/orders/x.parquet"),
              ("s3:GetObject", f"{arns['ArtifactsBucket']}/code/etl_job.py"),
              ("s3:GetObject", f"{arns['ArtifactsBucket']}/runs/r/manifest.json"),
              ("dynamodb:GetItem", arns["FileLedger"]),
              ("dynamodb:Query", f"{arns['FileLedger']}/index/ByState"),
              ("athena:StartQueryExecution", f"{workgroups}/primary")]
    assert [a for a in allowed if not _allowed(stack, analyst, *a)] == []
    assert [d for d in denied if _allowed(stack, analyst, *d)] == []


@pytest.mark.parametrize(("bucket", "key", "readers"), [
    ("RawBucket", "orders/a.csv", {"CrawlerRole", "EtlJobRole"}),
    ("ProcessedBucket", "orders/day=24/part-0.parquet", {"EtlJobRole", "AnalystRole"}),
    ("ProcessedBucket", "_quarantine/orders/run_id=r/part-0.json", {"EtlJobRole"}),
    ("ArtifactsBucket", "athena-results/q.csv", {"AnalystRole"}),
])
def test_each_bucket_policy_names_its_readers_whatever_else_allows(app, bucket, key, readers):
    stack = _policies(app)
    resource = f"{stack.arns[bucket]}/{key}"
    # An administrator of the account (s3:* on *) is refused too: the bucket policy's Deny wins.
    who = {lid: role for lid, role in stack.roles.items()} | {"Admin": ADMIN}
    # Reading needs the role's own grant as well; the bucket policy only takes readers away.
    granted = {lid for lid, role in who.items() if _allowed(stack, role, "s3:GetObject", resource)}
    assert granted == readers


def test_lake_formation_mode_registers_the_buckets_and_grants_each_role_its_own(app):
    iam = LakeFormationGrants.of(app, local_parameters())
    assert iam.grants == set() and iam.registered == []
    lf = LakeFormationGrants.of(app, {**local_parameters(), "LakeFormationMode": "LakeFormation"})
    raw, processed = "database:sluice_local_raw", "database:sluice_local_processed"
    assert sorted(lf.registered) == sorted(lf.locations.values())
    assert {g.principal for g in lf.grants} == {"CrawlerRole", "EtlJobRole", "StartJobRole", "AnalystRole"}
    assert Need("AnalystRole", "SELECT", "table:sluice_local_processed/*") in lf.grants
    assert not any(g.principal == "AnalystRole" and g.resource in (raw, "table:sluice_local_raw/*")
                   for g in lf.grants)
    assert not any(g.permission == "SELECT" and g.principal != "AnalystRole" for g in lf.grants)
    assert Need("EtlJobRole", "CREATE_TABLE", processed) in lf.grants


@pytest.mark.parametrize(("mode", "defaults"), [
    ("IAM", [{"Principal": {"DataLakePrincipalIdentifier": "IAM_ALLOWED_PRINCIPALS"},
              "Permissions": ["ALL"]}]),
    ("LakeFormation", []),
])
def test_new_tables_get_iam_allowed_principals_only_in_iam_mode(app, mode, defaults):
    stack = _policies(app, LakeFormationMode=mode)
    for database in ("RawDatabase", "ProcessedDatabase"):
        assert stack.resources[database]["DatabaseInput"]["CreateTableDefaultPermissions"] == defaults


def test_an_encrypted_catalogs_key_is_granted_to_every_role_that_uses_the_catalog(aws, app):
    plain = _policies(app)
    assert "CatalogEncryption" not in plain.resources
    stack = deploy(aws, app, {**local_parameters(), "CatalogEncryptionKeyArn": KEY})
    settings = aws.client("glue").get_data_catalog_encryption_settings()["DataCatalogEncryptionSettings"]
    assert settings["EncryptionAtRest"] == {"CatalogEncryptionMode": "SSE-KMS", "SseAwsKmsKeyId": KEY}
    assert settings["ConnectionPasswordEncryption"]["AwsKmsKeyId"] == KEY
    def uses_catalog(action: str) -> bool:  # the Data Catalog's objects: databases, tables, partitions
        return action.startswith("glue:") and any(o in action for o in ("Database", "Table", "Partition"))

    catalog_users = {lid for lid, role in stack.roles.items()
                     if any(uses_catalog(a) for p in role.policies for s in p.document["Statement"]
                            for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))}
    assert catalog_users == {"CrawlerRole", "EtlJobRole", "StartJobRole", "AnalystRole"}
    for lid in catalog_users:  # Glue developer guide, "Encrypting your Data Catalog": these three
        for action in ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"):
            assert evaluate(stack.roles[lid], action, KEY).allowed, (lid, action)
    assert not evaluate(plain.roles["AnalystRole"], "kms:Decrypt", KEY).allowed
