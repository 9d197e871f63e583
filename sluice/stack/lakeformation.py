"""Lake Formation, as this stack uses it in LakeFormationMode=LakeFormation: which Lake Formation
permission each Data Catalog call needs, and the grants the template makes, so that one can be
held to the other (tests/runtime/test_query.py, with the calls each principal made): every call
covered by a grant, every grant needed by a call.

Which call needs which permission, from AWS's pages:
- "Lake Formation permissions reference": the permissions per resource (database: CREATE_TABLE,
  DESCRIBE, ALTER, DROP; table: SELECT, INSERT, DELETE, DESCRIBE, ALTER, DROP; S3 location:
  DATA_LOCATION_ACCESS).
- "Underlying data access control": DATA_LOCATION_ACCESS is what lets a principal create or alter
  catalog resources that point into a registered location; reading a table's data through an
  integrated service (Athena) needs SELECT.
- The Glue API -> permission table of AWS Labs' policy migrator for Lake Formation
  (awslabs/policy-migrator-for-lake-formation, glue_data_catalog_action_translator.py): Get*
  DESCRIBE; UpdateTable and every partition write ALTER; CreateTable CREATE_TABLE; DeleteTable DROP.

    >>> needs_of("CrawlerRole", "glue:CreateTable",
    ...          "arn:aws:glue:us-east-1:123456789012:table/raw/orders", {"raw": "arn:aws:s3:::raw-bucket"})
    [Need(principal='CrawlerRole', permission='CREATE_TABLE', resource='database:raw'), \
Need(principal='CrawlerRole', permission='DATA_LOCATION_ACCESS', resource='location:arn:aws:s3:::raw-bucket')]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluice.stack.resolve import resolve_template
from sluice.stack.template import SamApp

_DESCRIBE = {"GetTable", "GetTables", "GetPartition", "GetPartitions", "BatchGetPartition"}
_ALTER = {"UpdateTable", "CreatePartition", "UpdatePartition", "DeletePartition", "BatchCreatePartition",
          "BatchUpdatePartition", "BatchDeletePartition"}
_POINTS_INTO_LOCATION = {"CreateTable", "UpdateTable", "CreatePartition", "UpdatePartition",
                         "BatchCreatePartition", "BatchUpdatePartition"}


@dataclass(frozen=True, order=True)
class Need:
    """A permission a principal needs, or holds: on "database:<db>", "table:<db>/<table or *>" or
    "location:<S3 ARN>"."""

    principal: str
    permission: str
    resource: str

    def covered_by(self, grant: Need) -> bool:
        if (grant.principal, grant.permission) != (self.principal, self.permission):
            return False
        if grant.resource.endswith("/*") and grant.resource.startswith("table:"):
            return self.resource.startswith(grant.resource[:-1])
        if grant.resource.startswith("location:"):
            return self.resource == grant.resource or self.resource.startswith(grant.resource + "/")
        return self.resource == grant.resource


def needs_of(principal: str, action: str, resource: str, locations: Mapping[str, str],
             reads_data: Mapping[str, str] | None = None) -> list[Need]:
    """The Lake Formation permissions one call needs (an IAM audit's action and ARN). `locations`:
    database -> the registered S3 location its tables point into. `reads_data`: for a principal
    that reads through an integrated service (Athena), a data object it read -> its table
    ("table:<db>/<name>"), which then needs SELECT. Calls outside the stack's catalog need nothing
    here."""
    service, _, operation = action.partition(":")
    if service == "s3" and reads_data and resource in reads_data:
        return [Need(principal, "SELECT", reads_data[resource])]
    if service != "glue" or (":table/" not in resource and ":database/" not in resource):
        return []
    kind, _, path = resource.rpartition(":")[2].partition("/")
    database = path.split("/", 1)[0]
    if database not in locations:  # not one of this stack's databases (Athena's `default`)
        return []
    if kind == "database":
        return [Need(principal, "DESCRIBE", f"database:{database}")] if operation == "GetDatabase" else []
    table = f"table:{path}"
    needs: list[Need] = []
    if operation == "CreateTable":
        needs.append(Need(principal, "CREATE_TABLE", f"database:{database}"))
    elif operation in _DESCRIBE:
        needs.append(Need(principal, "DESCRIBE", table))
    elif operation in _ALTER:
        needs.append(Need(principal, "ALTER", table))
    elif operation == "DeleteTable":
        needs.append(Need(principal, "DROP", table))
    if operation in _POINTS_INTO_LOCATION:
        needs.append(Need(principal, "DATA_LOCATION_ACCESS", f"location:{locations[database]}"))
    return needs


@dataclass
class LakeFormationGrants:
    """The template's Lake Formation resources as deployed with `params`."""

    grants: set[Need]
    registered: list[str]  # S3 ARNs
    locations: dict[str, str]  # database -> the registered location its tables point into
    principals: dict[str, str]  # role ARN -> logical id

    @classmethod
    def of(cls, app: SamApp, params: dict[str, str]) -> LakeFormationGrants:
        template = resolve_template(app, params)
        stack = template.stack
        roles = {stack.arns[lid]: lid for lid, r in app.resources.items() if r["Type"] == "AWS::IAM::Role"}
        registered = [props["ResourceArn"] for _, props in template.of_type("AWS::LakeFormation::Resource")]
        grants: set[Need] = set()
        for _, props in template.of_type("AWS::LakeFormation::PrincipalPermissions"):
            who = roles.get(props["Principal"]["DataLakePrincipalIdentifier"],
                            props["Principal"]["DataLakePrincipalIdentifier"])
            on = _resource(props["Resource"])
            grants |= {Need(who, permission, on) for permission in props["Permissions"]}
        names = stack.names
        locations = {names["RawDatabase"]: stack.arns["RawBucket"],
                     names["ProcessedDatabase"]: stack.arns["ProcessedBucket"]}
        return cls(grants, registered, locations, roles)

    def uncovered(self, needs: set[Need]) -> set[Need]:
        return {n for n in needs if not any(n.covered_by(g) for g in self.grants)}

    def unused(self, needs: set[Need]) -> set[Need]:
        return {g for g in self.grants if not any(n.covered_by(g) for n in needs)}


def _resource(resource: dict[str, Any]) -> str:
    if "Database" in resource:
        return f"database:{resource['Database']['Name']}"
    if "Table" in resource:
        table = resource["Table"]
        return f"table:{table['DatabaseName']}/{'*' if 'TableWildcard' in table else table['Name']}"
    if "DataLocation" in resource:
        return f"location:{resource['DataLocation']['ResourceArn']}"
    raise ValueError(f"a Lake Formation resource this stack does not grant on: {resource}")
