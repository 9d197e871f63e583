"""Athena, locally: a query runs on DuckDB over the catalog's tables, as the principal who started
it, in a workgroup whose settings hold as Athena holds them.

What Athena does with the caller's permissions, this does with the caller's clients, so IAM
(sluice.aws.iam_hook) decides each call: StartQueryExecution, GetQueryExecution, GetQueryResults
and StopQueryExecution on the workgroup; the catalog's `default` database and the query's own
(GetDatabase, CreateDatabase once); each table the SQL names (GetTable, GetPartitions); listing
and reading its files (s3:ListBucket, s3:GetObject, or Lake Formation's credentials for a
registered location once the caller may lakeformation:GetDataAccess); the result file
(s3:GetBucketLocation, s3:PutObject, and s3:GetObject when GetQueryResults reads it back). The
workgroup's settings: its result location and encryption (enforced, the client's are ignored)
and its per-query scan cutoff (a query that would read more is CANCELLED).

    >>> athena = LocalAthena(client_for, workgroups, DataAccess([]), enforcer)  # doctest: +SKIP
    >>> run = athena.start_query_execution(analyst, "SELECT 1", "wg", "db")  # doctest: +SKIP
    >>> athena.get_query_execution(analyst, run)["QueryExecution"]["Status"]["State"]  # doctest: +SKIP
    'SUCCEEDED'

What is not Athena's: the SQL dialect is DuckDB's (standard SQL: SELECT, WITH, joins, GROUP BY,
window functions, `col.field`, `arr[1]`, CROSS JOIN UNNEST), not Trino's function library; the
SELECT runs in this process.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from botocore.exceptions import ClientError

from sluice.aws import iam_requests
from sluice.aws.account import ACCOUNT_ID, REGION
from sluice.aws.athena_engine import engine, engine_message, is_engine_error, parse
from sluice.aws.athena_results import column_types, csv_rows, csv_text, text_rows
from sluice.aws.athena_tables import (
    QueryError,
    S3Scan,
    ScanBudget,
    ScanLimitExceeded,
    referenced_tables,
    table_dataset,
)
from sluice.aws.iam import Policy, Principal
from sluice.aws.iam_hook import Enforcer, denial_message

# Lake Formation's service-linked role: the credentials it vends for a registered location are this
# role's (Lake Formation developer guide, "Using service-linked roles for Lake Formation").
LAKE_FORMATION_ROLE = ("arn:aws:iam::{account}:role/aws-service-role/lakeformation.amazonaws.com/"
                       "AWSServiceRoleForLakeFormationDataAccess")


@dataclass(frozen=True)
class WorkGroup:
    name: str
    output_location: str | None
    encryption: dict[str, str]
    enforced: bool
    bytes_cutoff: int | None
    expected_owner: str | None

    @classmethod
    def from_configuration(cls, name: str, configuration: dict[str, Any]) -> WorkGroup:
        results = configuration.get("ResultConfiguration", {})
        cutoff = configuration.get("BytesScannedCutoffPerQuery")
        return cls(name, results.get("OutputLocation"), results.get("EncryptionConfiguration", {}),
                   bool(configuration.get("EnforceWorkGroupConfiguration")),
                   int(cutoff) if cutoff else None, results.get("ExpectedBucketOwner"))


@dataclass
class DataAccess:
    """Whose credentials read a table's files. In a location registered with Lake Formation,
    Athena reads with the credentials Lake Formation vends (its service-linked role, which
    registering gives s3 access to the location: Lake Formation developer guide, "Underlying
    data access control"), once the caller may lakeformation:GetDataAccess; elsewhere with the
    caller's own. Lake Formation's own grants (SELECT on the table) are held to the template by
    tests/runtime/test_query.py, not decided here."""

    registered: list[str]  # the S3 ARNs of the registered locations (bucket, or bucket/prefix)
    account: str = ACCOUNT_ID

    def covering(self, location: str) -> str | None:
        arn = "arn:aws:s3:::" + location.removeprefix("s3://")
        return next((r for r in self.registered if arn == r or arn.startswith(r.rstrip("/") + "/")), None)

    def lake_formation(self) -> Principal:
        statements = [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                       "Resource": [f"{r}/*" for r in self.registered]},
                      {"Effect": "Allow", "Action": "s3:ListBucket",
                       "Resource": sorted({r.split("/", 1)[0] for r in self.registered})}]
        arn = LAKE_FORMATION_ROLE.format(account=self.account)
        return Principal("AWSServiceRoleForLakeFormationDataAccess", arn,
                         [Policy("registered locations", {"Statement": statements})])


@dataclass
class QueryExecution:
    id: str
    query: str
    database: str
    workgroup: WorkGroup
    caller: Principal
    output_location: str
    state: str = "QUEUED"
    reason: str | None = None
    submitted: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    completed: dt.datetime | None = None
    engine_ms: int = 0
    scanned: int = 0
    result: pa.Table | None = None  # the rows, typed (for --json); the result file holds them as text
    done: threading.Event = field(default_factory=threading.Event)
    engine: Any = None  # the DuckDB connection while the SELECT runs (StopQueryExecution interrupts it)

    @property
    def result_key(self) -> tuple[str, str]:
        bucket, _, prefix = self.output_location.removeprefix("s3://").partition("/")
        return bucket, f"{prefix}{self.id}.csv"

    def to_dict(self) -> dict[str, Any]:
        """GetQueryExecution's QueryExecution."""
        status: dict[str, Any] = {"State": self.state, "SubmissionDateTime": self.submitted}
        if self.reason:
            status["StateChangeReason"] = self.reason
        if self.completed:
            status["CompletionDateTime"] = self.completed
        bucket, key = self.result_key
        return {"QueryExecutionId": self.id, "Query": self.query, "StatementType": "DML",
                "WorkGroup": self.workgroup.name,
                "QueryExecutionContext": {"Database": self.database, "Catalog": "AwsDataCatalog"},
                "ResultConfiguration": {"OutputLocation": f"s3://{bucket}/{key}",
                                        **({"EncryptionConfiguration": self.workgroup.encryption}
                                           if self.workgroup.encryption else {})},
                "Status": status,
                "Statistics": {"EngineExecutionTimeInMillis": self.engine_ms,
                               "DataScannedInBytes": self.scanned}}


class LocalAthena:
    """`client_for(principal, service)`: a client acting as the principal (None: Athena's own,
    unchecked); `workgroups(name)`: a workgroup's configuration, as Athena keeps it."""

    def __init__(self, client_for: Callable[[Principal | None, str], Any],
                 workgroups: Callable[[str], WorkGroup], data_access: DataAccess,
                 enforcer: Enforcer) -> None:
        self.client_for = client_for
        self.workgroups = workgroups
        self.data_access = data_access
        self.enforcer = enforcer
        self.executions: dict[str, QueryExecution] = {}

    # --- the API ------------------------------------------------------------------------------
    def start_query_execution(self, caller: Principal, query: str, workgroup: str, database: str,
                              output_location: str | None = None) -> str:
        group = self.workgroups(workgroup)
        self._authorise(caller, "StartQueryExecution", group)
        location = group.output_location if group.enforced or not output_location else output_location
        if not location:
            raise _client_error("InvalidRequestException", "StartQueryExecution",
                                "No output location provided: neither the query nor the workgroup names one")
        run = QueryExecution(str(uuid.uuid4()), query, database, group, caller, location.rstrip("/") + "/")
        self.executions[run.id] = run
        threading.Thread(target=self._run, args=(run,), daemon=True, name=f"athena-{run.id[:8]}").start()
        return run.id

    def wait(self, execution_id: str, timeout: float | None = None) -> bool:
        """Until the query has ended (what a client polls GetQueryExecution for); False on timeout."""
        return self.executions[execution_id].done.wait(timeout)

    def get_query_execution(self, caller: Principal, execution_id: str) -> dict[str, Any]:
        run = self._execution(caller, "GetQueryExecution", execution_id)
        return {"QueryExecution": run.to_dict()}

    def get_query_results(self, caller: Principal, execution_id: str) -> dict[str, Any]:
        """The rows as Athena returns them: every value text (NULL: no VarCharValue), the column
        names as the first row, the types in ResultSetMetadata; read back from the result file
        with the caller's permissions."""
        run = self._execution(caller, "GetQueryResults", execution_id)
        if run.state != "SUCCEEDED":
            raise _client_error("InvalidRequestException", "GetQueryResults",
                                f"Query has not yet finished. Current state: {run.state}")
        bucket, key = run.result_key
        text = self.client_for(caller, "s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        rows = [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in csv_rows(text)]
        columns = column_types(run.result) if run.result is not None else []
        return {"ResultSet": {"Rows": rows, "ResultSetMetadata": {"ColumnInfo": columns}}, "UpdateCount": 0}

    def stop_query_execution(self, caller: Principal, execution_id: str) -> None:
        run = self._execution(caller, "StopQueryExecution", execution_id)
        if run.state in ("QUEUED", "RUNNING"):  # a finished query stays as it ended
            run.state, run.reason = "CANCELLED", "Query cancelled by user"
            if run.engine is not None:
                run.engine.interrupt()

    # --- running one query --------------------------------------------------------------------
    def _run(self, run: QueryExecution) -> None:
        began = time.monotonic()
        run.state = "RUNNING"
        budget = ScanBudget(run.workgroup.bytes_cutoff)
        scans: list[S3Scan] = []
        folder = tempfile.TemporaryDirectory(prefix="sluice-athena-")  # the objects this query reads
        try:
            glue = self.client_for(run.caller, "glue")
            _default_database(glue)
            try:
                glue.get_database(Name=run.database)
            except glue.exceptions.EntityNotFoundException:
                raise QueryError(f"SCHEMA_NOT_FOUND: Schema '{run.database}' does not exist") from None
            tables = referenced_tables(run.query, run.database, parse)

            def scan_for(location: str) -> S3Scan:
                scans.append(S3Scan(self.client_for(self._reader(run.caller, location), "s3"), budget,
                                    Path(folder.name)))
                return scans[-1]

            datasets = {name: table_dataset(glue, scan_for, name) for name in tables}
            run.engine = engine(datasets, run.database)
            if run.state == "RUNNING":
                run.result = run.engine.execute(run.query).fetch_arrow_table()
                self._write_result(run)
            if run.state == "RUNNING":
                run.state = "SUCCEEDED"
        except Exception as error:
            if run.state == "RUNNING":
                self._failed(run, error, budget, scans)
        finally:
            folder.cleanup()
            run.engine = None
            run.scanned = budget.scanned
            run.engine_ms = int((time.monotonic() - began) * 1000)
            run.completed = dt.datetime.now(dt.UTC)
            run.done.set()

    @staticmethod
    def _failed(run: QueryExecution, error: Exception, budget: ScanBudget, scans: list[S3Scan]) -> None:
        """Why the query ended: a call IAM (or the service) refused, a query Athena would fail, the
        scan cutoff; a read that failed inside the engine reaches us as the engine's text, so the
        read's own exception is looked up first."""
        cause = ScanLimitExceeded() if budget.exceeded else next(
            (s.failure for s in scans if s.failure), None) or error
        try:
            raise cause
        except ClientError as refused:  # a call IAM (or the service) refused: the query fails with it
            run.state, run.reason = "FAILED", f"{refused.response['Error'].get('Code')}: " \
                                              f"{refused.response['Error'].get('Message')}"
        except QueryError as failed:
            run.state, run.reason = "FAILED", str(failed)
        except ScanLimitExceeded:
            run.state, run.reason = "CANCELLED", (
                f"Query exhausted the workgroup's per-query data usage control: it would scan more "
                f"than BytesScannedCutoffPerQuery = {run.workgroup.bytes_cutoff} bytes")
        except Exception as other:
            run.state = "FAILED"
            run.reason = (engine_message(other) if is_engine_error(other)
                          else f"{type(other).__name__}: {other}")

    def _reader(self, caller: Principal, location: str) -> Principal:
        if self.data_access.covering(location) is None:
            return caller
        arn = "arn:aws:s3:::" + location.removeprefix("s3://")
        decision = self.enforcer.check(caller, "lakeformation.GetDataAccess", "lakeformation:GetDataAccess",
                                       "*", {})
        if not decision.allowed:
            raise _client_error("AccessDeniedException", "GetDataAccess", denial_message(
                caller, "lakeformation:GetDataAccess", arn, decision))
        return self.data_access.lake_formation()

    def _write_result(self, run: QueryExecution) -> None:
        """The result file, as the caller: Athena checks the bucket's Region, then writes, with the
        workgroup's encryption."""
        assert run.result is not None
        bucket, key = run.result_key
        s3 = self.client_for(run.caller, "s3")
        s3.get_bucket_location(Bucket=bucket)
        extra: dict[str, str] = {}
        option = run.workgroup.encryption.get("EncryptionOption")
        if option == "SSE_S3":
            extra["ServerSideEncryption"] = "AES256"
        elif option == "SSE_KMS":
            extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=run.workgroup.encryption["KmsKey"])
        elif option:
            raise QueryError(f"NOT_SUPPORTED: result encryption {option} is not written locally")
        if run.workgroup.expected_owner:
            extra["ExpectedBucketOwner"] = run.workgroup.expected_owner
        s3.put_object(Bucket=bucket, Key=key, Body=csv_text(text_rows(run.result)).encode(),
                      ContentType="text/csv", **extra)

    # --- authorisation ------------------------------------------------------------------------
    def _authorise(self, caller: Principal, operation: str, group: WorkGroup) -> None:
        for action, resource in iam_requests.authorization("athena", operation, {"WorkGroup": group.name},
                                                           caller.account, REGION):
            decision = self.enforcer.check(caller, f"athena.{operation}", action, resource, {})
            if not decision.allowed:
                raise _client_error("AccessDeniedException", operation,
                                    denial_message(caller, action, resource, decision))

    def _execution(self, caller: Principal, operation: str, execution_id: str) -> QueryExecution:
        run = self.executions.get(execution_id)
        if run is None:
            raise _client_error("InvalidRequestException", operation,
                                f"QueryExecution {execution_id} was not found")
        self._authorise(caller, operation, run.workgroup)  # on the workgroup the query ran in
        return run


def _default_database(glue: Any) -> None:
    """The `default` database Athena needs in every Region's catalog, created if missing (the
    grant it takes: Athena user guide, "Fine-grained access to databases and tables")."""
    try:
        glue.get_database(Name="default")
    except glue.exceptions.EntityNotFoundException:
        glue.create_database(DatabaseInput={"Name": "default"})


def _client_error(code: str, operation: str, message: str) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}
    return ClientError(response, operation)
