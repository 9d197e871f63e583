"""The job's arguments (sluice_glue.arguments): the settings among them parse into one
DatasetSettings, every table's defaults, whose own defaults are the job's."""

from __future__ import annotations

import pytest

from sluice_glue import arguments
from sluice_glue.datasets import DatasetSettings

REQUIRED = ["etl_job.py", "--run_id", "r1", "--manifest_uri", "s3://a/runs/r1/manifest.json",
            "--ledger_table", "l", "--raw_database", "raw", "--processed_database", "p",
            "--processed_bucket", "pb", "--artifacts_bucket", "ab"]
JOB_DEFAULTS = DatasetSettings("event_time", "day", (), "", "", "parquet", "snappy", "auto")


def test_absent_or_empty_options_are_the_defaults():
    empty = [part for name in (*arguments.SETTINGS, *arguments.OWN) for part in (f"--{name}", "")]
    for argv in (REQUIRED, [*REQUIRED, *empty]):  # CloudFormation passes "" for an unset parameter
        args = arguments.parse(argv)
        assert args.defaults == JOB_DEFAULTS
        assert (args.max_attempts, args.storage, args.datasets_uri, args.job_run_id) == (3, "s3", "", "")


def test_the_settings_given_are_every_tables_defaults():
    args = arguments.parse([*REQUIRED, "--dedup_keys", "order_id, line", "--partition_granularity", "hour",
                            "--timestamp_column", "at", "--output_format", "json", "--compression", "gzip",
                            "--max_attempts", "5", "--storage", "local", "--JOB_RUN_ID", "jr_1"])
    assert args.defaults == DatasetSettings("at", "hour", ("order_id", "line"), "", "", "json", "gzip")
    assert args.defaults.date_parts == ["year", "month", "day", "hour"]
    assert (args.max_attempts, args.storage, args.job_run_id) == (5, "local", "jr_1")


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--partition_granularity", "week", "--partition_granularity must be one of"),
    ("--output_format", "csv", "--output_format must be parquet or json"),
    ("--storage", "hdfs", "--storage must be one of"),
])
def test_a_value_the_job_cannot_take_is_refused(option, value, message):
    with pytest.raises(ValueError, match=message):
        arguments.parse([*REQUIRED, option, value])

