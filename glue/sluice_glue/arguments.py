"""Job arguments, parsed with AWS Glue's own getResolvedOptions everywhere.

getResolvedOptions insists on every name it is given, so the optional ones are asked for only
when present; an empty value means "use the default" (CloudFormation passes "" for unset
parameters). The settings among them (format, codec, granularity, timestamp column, dedup keys,
lookup) are every table's defaults, which datasets.toml overrides per table: they are parsed
into one datasets.DatasetSettings, whose own defaults are the job's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from awsglue.utils import getResolvedOptions

from sluice_glue.datasets import CODECS, FIELDS, GRANULARITY, DatasetSettings, defaults_from

REQUIRED = ["run_id", "manifest_uri", "ledger_table", "raw_database", "processed_database",
            "processed_bucket", "artifacts_bucket"]
# Every table's settings when the job is given none: DatasetSettings' defaults, but for the
# timestamp column, which the template's TimestampColumn parameter names event_time too.
DEFAULTS = DatasetSettings(timestamp_column="event_time")
SETTINGS = tuple(name for name in FIELDS if name != "csv_header")  # csv_header: per dataset only
OWN = {"max_attempts": "3", "datasets_uri": "", "storage": "s3"}  # the job's own options
STORAGE = ("s3", "local")  # s3: AWS Glue reads and writes S3; local: staged for local Spark (the emulator)


@dataclass(frozen=True)
class JobArguments:
    run_id: str
    manifest_uri: str
    ledger_table: str
    raw_database: str
    processed_database: str
    processed_bucket: str
    artifacts_bucket: str
    defaults: DatasetSettings  # every table's settings where datasets.toml sets none
    max_attempts: int
    storage: str
    datasets_uri: str  # per-dataset settings (datasets.toml); "" = `defaults` for every table
    job_run_id: str = ""


def parse(argv: list[str]) -> JobArguments:
    present = [name for name in (*SETTINGS, *OWN) if f"--{name}" in argv]
    values = getResolvedOptions(argv, REQUIRED + present)
    given = {name: values[name] for name in present if values.get(name)}  # "" means the default
    defaults = defaults_from({**asdict(DEFAULTS), **{n: v for n, v in given.items() if n in SETTINGS}})
    own = {name: given.get(name, default) for name, default in OWN.items()}
    if defaults.partition_granularity not in GRANULARITY:
        raise ValueError(f"--partition_granularity must be one of {sorted(GRANULARITY)}")
    if own["storage"] not in STORAGE:
        raise ValueError(f"--storage must be one of {STORAGE}")
    if defaults.output_format not in CODECS:
        raise ValueError(f"--output_format must be {' or '.join(CODECS)}")
    return JobArguments(
        **{name: values[name] for name in REQUIRED}, defaults=defaults,
        max_attempts=int(own["max_attempts"]), storage=own["storage"], datasets_uri=own["datasets_uri"],
        job_run_id=values.get("JOB_RUN_ID") or "")  # Glue passes it; getResolvedOptions reserves it
