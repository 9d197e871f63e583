"""`sluice query "SELECT ..."`: the processed tables as an analyst queries them on AWS, with
Athena, in the analysts' workgroup, as AnalystRole - here on the local Athena
(sluice.aws.athena), with IAM enforced as everywhere in the runtime: a query that names a raw
table is refused, naming the principal, the action, the resource and the missing grant.

    sluice query "SELECT day, count(*) FROM orders GROUP BY day"        # a table in the terminal
    sluice query --json "SELECT * FROM sensors LIMIT 5"                 # JSON (nested columns nested)
    sluice query --csv "SELECT ..." > out.csv                           # Athena's result file
    echo "SELECT ..." | sluice query -                                  # the SQL from stdin

Unqualified table names are the processed database's (the query's context, as on Athena);
`<database>.<table>` and `awsdatacatalog.<database>.<table>` name any other.

    >>> answer = run_query(QuerySetup.of_stack(runtime.stack, endpoint), "SELECT 1")   # doctest: +SKIP
    >>> answer.state, answer.rows()                                                    # doctest: +SKIP
    ('SUCCEEDED', [['_col0'], ['1']])
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from sluice.aws.account import FAKE_CREDENTIALS
from sluice.running import NOT_RUNNING, read_state

ANALYST_ROLE = "AnalystRole"
WORKGROUP = "QueryWorkGroup"


@dataclass
class QuerySetup:
    """What a query needs of the deployed stack: the analysts' role and every resource policy (IAM
    decides with both), the workgroup, the processed database, the locations registered with Lake
    Formation, and the emulator's endpoint. The runtime writes it to .sluice/runtime.json, so that
    `sluice query` starts without reading the template (the SAM translator alone takes ~1.5 s)."""

    endpoint: str
    analyst: Any  # sluice.aws.iam.Principal
    resource_policies: dict[str, dict]
    workgroup: str
    database: str
    registered: list[str] = field(default_factory=list)

    @classmethod
    def of_stack(cls, stack: Any, endpoint: str) -> QuerySetup:
        return cls(endpoint, stack.roles[ANALYST_ROLE], stack.resource_policies, stack.names[WORKGROUP],
                   stack.outputs["ProcessedDatabaseName"], list(stack.registered_locations))

    def to_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "workgroup": self.workgroup, "database": self.database,
                "registered": self.registered, "resource_policies": self.resource_policies,
                "analyst": {"name": self.analyst.name, "arn": self.analyst.arn,
                            "policies": [{"name": p.name, "document": p.document}
                                         for p in self.analyst.policies]}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuerySetup:
        from sluice.aws.iam import Policy, Principal

        role = data["analyst"]
        policies = [Policy(p["name"], p["document"]) for p in role["policies"]]
        analyst = Principal(role["name"], role["arn"], policies)
        return cls(data["endpoint"], analyst, data["resource_policies"], data["workgroup"], data["database"],
                   data["registered"])


@dataclass
class QueryAnswer:
    execution: dict[str, Any]  # GetQueryExecution's QueryExecution
    results: dict[str, Any] | None  # GetQueryResults (SUCCEEDED only)
    table: Any  # the typed rows (pyarrow.Table), for --json
    denied: list[dict[str, Any]]  # the calls IAM refused during this query (audit form)

    @property
    def state(self) -> str:
        return str(self.execution["Status"]["State"])

    @property
    def reason(self) -> str:
        return str(self.execution["Status"].get("StateChangeReason", ""))

    def rows(self) -> list[list[str | None]]:
        """Header then rows, as GetQueryResults gives them (text; None is NULL)."""
        if not self.results:
            return []
        return [[d.get("VarCharValue") for d in row["Data"]] for row in self.results["ResultSet"]["Rows"]]


def run_query(setup: QuerySetup, sql: str, database: str | None = None, workgroup: str | None = None,
              timeout: float | None = None) -> QueryAnswer:
    """Start the query as the analysts' role, wait for it (StopQueryExecution after `timeout`
    seconds), and read its results, as an Athena client does."""
    from sluice.aws.athena import DataAccess, LocalAthena, WorkGroup
    from sluice.aws.iam_audit import Audit
    from sluice.aws.iam_hook import Enforcer, active, client_as

    enforcer = active()
    if enforcer is None:  # a process of its own (`sluice query`): enforce here, as the runtime does
        enforcer = Enforcer(Audit({ANALYST_ROLE: setup.analyst}), setup.resource_policies)
        enforcer.install()
    clients: dict[tuple[str | None, str], Any] = {}

    def client_for(principal: Any, service: str) -> Any:
        key = (principal.arn if principal else None, service)
        if key not in clients:
            clients[key] = client_as(principal, service, setup.endpoint)
        return clients[key]

    def workgroups(name: str) -> WorkGroup:
        found = client_for(None, "athena").get_work_group(WorkGroup=name)["WorkGroup"]
        return WorkGroup.from_configuration(name, found["Configuration"])

    before = {_denial_key(d) for d in enforcer.audit.to_dict()["denied"]}
    athena = LocalAthena(client_for, workgroups, DataAccess(setup.registered), enforcer)
    analyst, group = setup.analyst, workgroup or setup.workgroup
    client_for(analyst, "athena").get_work_group(WorkGroup=group)  # a driver reads the workgroup first
    execution_id = athena.start_query_execution(analyst, sql, group, database or setup.database)
    if not athena.wait(execution_id, timeout):
        athena.stop_query_execution(analyst, execution_id)
        athena.wait(execution_id)
    execution = athena.get_query_execution(analyst, execution_id)["QueryExecution"]
    succeeded = execution["Status"]["State"] == "SUCCEEDED"
    results = athena.get_query_results(analyst, execution_id) if succeeded else None
    denied = [d for d in enforcer.audit.to_dict()["denied"]
              if d["principal"] == analyst.name and _denial_key(d) not in before]
    return QueryAnswer(execution, results, athena.executions[execution_id].result, denied)


def _denial_key(denial: dict[str, Any]) -> tuple:
    return denial["principal"], denial["action"], denial["resource"], denial["count"]


# --- output ------------------------------------------------------------------------------------
def render_table(answer: QueryAnswer, console: Any, title: str | None = None) -> None:
    from rich.measure import Measurement
    from rich.table import Table

    header, *rows = answer.rows() or [[]]
    table = Table(title=title, title_justify="left")
    for name in header:
        table.add_column(name or "", overflow="fold")
    for row in rows:
        table.add_row(*("NULL" if v is None else v for v in row))
    if not console.is_terminal:  # without a terminal rich assumes 80 columns and cuts cells short
        console.width = max(80, Measurement.get(console, console.options.update_width(10_000), table).maximum)
    console.print(table)


def csv_text(answer: QueryAnswer) -> str:
    from sluice.aws.athena_results import csv_text as athena_csv

    return athena_csv(answer.rows())


def json_text(answer: QueryAnswer) -> str:
    from sluice.aws.athena_results import json_value

    rows = answer.table.to_pylist() if answer.table is not None else []
    return json.dumps([{k: json_value(v) for k, v in row.items()} for row in rows], ensure_ascii=False)


def summary(answer: QueryAnswer) -> str:
    execution = answer.execution
    stats = execution.get("Statistics", {})
    rows = max(len(answer.rows()) - 1, 0)
    scanned, took = stats.get("DataScannedInBytes", 0), stats.get("EngineExecutionTimeInMillis", 0)
    return (f"{execution['Status']['State']}: {rows} row(s), {scanned} bytes scanned in {took} ms; "
            f"workgroup {execution['WorkGroup']}, as {ANALYST_ROLE}; "
            f"results {execution['ResultConfiguration']['OutputLocation']}")


def report_failure(answer: QueryAnswer, out: Any = None) -> None:
    """The reason Athena gives, and each refused call: principal, action, resource, missing grant."""
    from sluice.aws.iam_audit import denial_report

    out = out or sys.stderr

    print(f"{answer.state}: {answer.reason}", file=out)
    if answer.denied:
        print(denial_report(answer.denied), file=out)


# --- the command -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sluice query",
        description="Query the processed tables as the analysts' role (Athena, locally).",
        epilog='e.g. sluice query "SELECT day, count(*) AS n FROM orders GROUP BY day ORDER BY day"')
    parser.add_argument("sql", help='the SELECT; "-" reads it from stdin')
    parser.add_argument("--database", help="the query's context database (default: the processed one)")
    parser.add_argument("--workgroup", help="default: the analysts' workgroup of the template")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds before the query is stopped (StopQueryExecution)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="a JSON array of rows (nested columns as JSON)")
    output.add_argument("--csv", action="store_true", help="Athena's result file (CSV, values quoted)")
    args = parser.parse_args(argv)
    sql = sys.stdin.read() if args.sql == "-" else args.sql
    state = read_state()
    if state is None:
        print(NOT_RUNNING, file=sys.stderr)
        return 2
    if "query" not in state:
        print("The running pipeline predates `sluice query`: restart `sluice up`.", file=sys.stderr)
        return 2
    setup = QuerySetup.from_dict(state["query"])
    # Every client of this process talks to the emulator, never to an AWS account.
    os.environ.update({**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": setup.endpoint})
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    try:
        answer = run_query(setup, sql, args.database, args.workgroup, args.timeout)
    except Exception as error:  # the Athena API call itself was refused (StartQueryExecution...)
        from botocore.exceptions import ClientError

        if not isinstance(error, ClientError):
            raise
        print(f"{error.response['Error']['Code']}: {error.response['Error']['Message']}", file=sys.stderr)
        from sluice.aws.iam_hook import active

        enforcer = active()
        if enforcer is not None:
            from sluice.aws.iam_audit import denial_report

            print(denial_report(enforcer.audit.to_dict()["denied"]), file=sys.stderr)
        return 1
    if answer.state != "SUCCEEDED":
        report_failure(answer)
        return 1
    if args.json:
        print(json_text(answer))
    elif args.csv:
        sys.stdout.write(csv_text(answer))
    else:
        from rich.console import Console

        render_table(answer, Console())
    print(summary(answer), file=sys.stderr)
    return 0


# --- the demo's last word ----------------------------------------------------------------------
DEMO_SQL = """SELECT year, month, day, count(*) AS orders, count(DISTINCT country) AS countries,
       round(sum(amount), 2) AS amount
FROM orders
GROUP BY year, month, day
ORDER BY year, month, day"""


def show_demo_query(runtime: Any, console: Any) -> bool:
    """`make run` ends with what it processed, seen as an analyst sees it: one query of the
    processed orders, as AnalystRole. False (and the reason printed) if it did not succeed."""
    answer = run_query(QuerySetup.of_stack(runtime.stack, runtime.aws.endpoint), DEMO_SQL)
    console.rule(f"sluice query (Athena, workgroup {runtime.stack.names[WORKGROUP]}, as {ANALYST_ROLE})")
    console.print(f"{DEMO_SQL}\n", markup=False, highlight=False)
    if answer.state != "SUCCEEDED":
        report_failure(answer)
        return False
    render_table(answer, console)
    console.print(summary(answer), markup=False, highlight=False)
    return True
