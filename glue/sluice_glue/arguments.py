"""Job arguments, parsed with AWS Glue's own getResolvedOptions everywhere.

getResolvedOptions insists on every name it is given, so the optional ones are asked for only
when present; an empty value means "use the default" (CloudFormation passes "" for unset
parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

from awsglue.utils import getResolvedOptions

REQUIRED = ["run_id", "manifest_uri", "ledger_table", "raw_database", "processed_database",
            "processed_bucket", "artifacts_bucket"]
OPTIONAL = {"output_format": "parquet", "compression": "snappy", "partition_granularity": "day",
            "timestamp_column": "event_time", "dedup_keys": "", "lookup_uri": "", "lookup_key": "",
            "max_attempts": "3", "datasets_uri": "", "storage": "s3"}
STORAGE = ("s3", "local")  # s3: AWS Glue reads and writes S3; local: staged for local Spark (the emulator)
GRANULARITY = {"none": [], "year": ["year"], "month": ["year", "month"],
               "day": ["year", "month", "day"], "hour": ["year", "month", "day", "hour"]}


@dataclass(frozen=True)
class JobArguments:
    run_id: str
    manifest_uri: str
    ledger_table: str
    raw_database: str
    processed_database: str
    processed_bucket: str
    artifacts_bucket: str
    output_format: str = "parquet"
    compression: str = "snappy"
    partition_granularity: str = "day"
    timestamp_column: str = "event_time"
    dedup_keys: tuple[str, ...] = ()
    lookup_uri: str = ""
    lookup_key: str = ""
    job_run_id: str = ""
    max_attempts: int = 3
    storage: str = "s3"
    datasets_uri: str = ""  # per-dataset settings (datasets.toml); "" = the defaults above for every table

    @property
    def date_parts(self) -> list[str]:
        return GRANULARITY[self.partition_granularity]


def parse(argv: list[str]) -> JobArguments:
    present = [name for name in OPTIONAL if f"--{name}" in argv]
    values = getResolvedOptions(argv, REQUIRED + present)
    optional = {name: (values.get(name) or default) for name, default in OPTIONAL.items()}
    if optional["partition_granularity"] not in GRANULARITY:
        raise ValueError(f"--partition_granularity must be one of {sorted(GRANULARITY)}")
    if optional["storage"] not in STORAGE:
        raise ValueError(f"--storage must be one of {STORAGE}")
    if optional["output_format"] not in ("parquet", "json"):
        raise ValueError("--output_format must be parquet or json")
    return JobArguments(
        **{name: values[name] for name in REQUIRED},
        output_format=optional["output_format"], compression=optional["compression"],
        partition_granularity=optional["partition_granularity"],
        timestamp_column=optional["timestamp_column"],
        dedup_keys=tuple(k.strip() for k in optional["dedup_keys"].split(",") if k.strip()),
        lookup_uri=optional["lookup_uri"], lookup_key=optional["lookup_key"],
        max_attempts=int(optional["max_attempts"]), storage=optional["storage"],
        datasets_uri=optional["datasets_uri"],
        job_run_id=values.get("JOB_RUN_ID") or "")  # Glue passes it; getResolvedOptions reserves it
