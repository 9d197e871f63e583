"""`sluice datasets`: what each dataset became. For every table of the raw database: the settings
the job applies to it (from the published datasets.toml over the job's default arguments, the
defaults marked), its files and rows as the ledger counts them, and where its output is.

Read through the emulator's API only, as `sluice status` is, so it works from another process;
the settings are resolved by the job's own rule (sluice_glue.datasets), never re-derived here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from ledger import FileRef, RowCounts, State
from ledger.table import DynamoLedger
from sluice_glue import catalog
from sluice_glue.datasets import FIELDS, DatasetSettings, SettingsError, defaults_from, fetch, resolve


@dataclass(frozen=True)
class DatasetReport:
    """One raw table: its settings (or why they cannot apply), its files, its output."""

    table: str
    raw_location: str
    columns: list[str]
    settings: DatasetSettings | None  # None: the settings name something the table lacks (`error`)
    defaults: list[str]  # the fields taken from the template's parameters
    error: str | None
    files: dict[str, int]  # ledger state -> files of this table
    rows: RowCounts  # over its DONE files
    output: str  # s3://<processed>/<table>/
    processed_table: str | None  # <database>.<table> once a run has registered it
    quarantine: str
    settings_source: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["settings"] = asdict(self.settings) if self.settings else None
        data["rows"] = self.rows.to_dict()
        return data


def dataset_reports(client: Any, resource: Any, outputs: dict[str, str]) -> list[DatasetReport]:
    """One report per table of the raw database, by table name."""
    glue, s3 = client("glue"), client("s3")
    arguments = glue.get_job(JobName=outputs["EtlJobName"])["Job"].get("DefaultArguments", {})
    defaults = defaults_from(arguments)
    file_error: str | None = None
    try:
        file = fetch(s3, arguments.get("--datasets_uri", ""))
    except SettingsError as invalid:  # the job would fail every table with this; show it on each
        file, file_error = fetch(s3, ""), str(invalid)
    tables = catalog.raw_tables(glue, outputs["RawDatabaseName"])
    items = _ledger_by_table(resource("dynamodb").Table(outputs["LedgerTableName"]), tables)
    processed, database = outputs["ProcessedBucketName"], outputs["ProcessedDatabaseName"]
    reports = []
    for table in sorted(tables, key=lambda t: t["Name"]):
        name = table["Name"]
        columns = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
        columns += [k["Name"] for k in table.get("PartitionKeys", [])]
        settings: DatasetSettings | None = None
        fields: list[str] = []
        problem = file_error
        if problem is None:
            try:
                settings, fields = resolve(file, name, columns, defaults, outputs["ArtifactsBucketName"])
            except SettingsError as refused:
                problem = str(refused)
        mine = items.get(name, [])
        done = [RowCounts.from_dict(i) for i in mine if i["state"] == State.DONE.value]
        reports.append(DatasetReport(
            table=name, raw_location=table["StorageDescriptor"]["Location"], columns=columns,
            settings=settings, defaults=fields, error=problem,
            files={s.value: sum(i["state"] == s.value for i in mine) for s in State},
            rows=sum(done, RowCounts(0, 0, 0, 0)), output=f"s3://{processed}/{name}/",
            processed_table=f"{database}.{name}" if _exists(glue, database, name) else None,
            quarantine=f"s3://{processed}/_quarantine/{name}/", settings_source=file.source))
    return reports


def _ledger_by_table(ledger: Any, tables: list[dict]) -> dict[str, list[dict]]:
    """Ledger items by the table that covers their file (the job's own rule: the longest
    location prefix); files no table covers are left out."""
    by_table: dict[str, list[dict]] = {}
    items = DynamoLedger(ledger).files(
        ProjectionExpression="#b, #k, etag, #s, rows_in, rows_out, rows_bad, rows_duplicate",
        ExpressionAttributeNames={"#b": "bucket", "#k": "key", "#s": "state"})  # DynamoDB reserved words
    for item in items:
        table = catalog.table_for(FileRef.from_dict(item), tables)
        if table is not None:
            by_table.setdefault(table["Name"], []).append(item)
    return by_table


def _exists(glue: Any, database: str, table: str) -> bool:
    try:
        glue.get_table(DatabaseName=database, Name=table)
        return True
    except ClientError as error:
        if error.response["Error"]["Code"] == "EntityNotFoundException":
            return False
        raise


def render(reports: list[DatasetReport]) -> str:
    """The text `sluice datasets` prints: one block per table, defaults marked."""
    if not reports:
        return "no tables yet: the crawler catalogues a top-level folder once a file lands in it"
    blocks = [f"settings: {reports[0].settings_source} over the job's default arguments "
              "(\"default\" = the template's parameter)"]
    for report in reports:
        files = ", ".join(f"{n} {state}" for state, n in report.files.items() if n) or "none"
        rows = report.rows
        lines = [f"{report.table}  ({report.raw_location}; columns: {', '.join(report.columns)})",
                 f"  files      {files}",
                 f"  rows       {rows.rows_in} in, {rows.rows_out} out, {rows.rows_bad} quarantined, "
                 f"{rows.rows_duplicate} duplicates (DONE files)",
                 f"  output     {report.output}  table {report.processed_table or '(not registered yet)'}",
                 f"  quarantine {report.quarantine}"]
        if report.error:
            lines.append(f"  SETTINGS   cannot apply, its files fail: {report.error}")
        elif report.settings:
            lines += [f"  {name:<22} {_shown(name, getattr(report.settings, name))}"
                      + ("  (default)" if name in report.defaults else "")
                      for name in FIELDS]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _shown(name: str, value: Any) -> str:
    if name == "timestamp_column" and value is None:
        return "(ingest time)"
    if name == "dedup_keys":
        return ", ".join(value) if value else "(no dedup)"
    return str(value) if value != "" else "(none)"
