"""The small-run path: the same transforms, one Spark job, and the rows written by pyarrow.

A run of a few files and rows spends its time in Spark's fixed costs, not in its rows: each
job and stage (the cache, the counts, the write and its commit) costs tens to hundreds of
milliseconds whatever it holds. So for a run under sizing.SMALL_RUN_BYTES the prepared,
flagged and enriched rows (transforms.py, exactly as on the large path) are collected to the
driver once, as Arrow batches; the counts per file and output partition are taken from them;
and each output partition's good rows become one Parquet file written with pyarrow (which
Glue 5.0 provides) through the storage's put_file. The quarantine, when a run has one, is
still written by Spark from the same rows.

It applies only where pyarrow writes what Spark would: Parquet with a codec both name alike
(snappy, gzip, zstd or none), timestamps as INT96 (Spark 3.5's spark.sql.parquet.
outputTimestampType default), and partition values Spark would not escape in a folder name
(Spark's ExternalCatalogUtils.escapePathName); otherwise the caller takes the large path.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from sluice_glue import catalog, transforms
from sluice_glue.datasets import DatasetSettings
from sluice_glue.output import (
    BeforeWrite,
    RunFiles,
    TableOutput,
    WritePlan,
    file_counts,
    output_rows,
    run_dir,
)
from sluice_glue.storage import put_file

# Spark's name of a Parquet codec (which codecs a format takes is datasets.CODECS) -> (pyarrow's
# name, the file name's extension as Spark writes it); a codec not here takes the large path.
CODECS = {
    "snappy": ("snappy", ".snappy"),
    "gzip": ("gzip", ".gz"),
    "zstd": ("zstd", ".zstd"),
    "none": ("none", ""),
    "uncompressed": ("none", ""),
}


def fits(settings: DatasetSettings) -> bool:
    return settings.output_format == "parquet" and settings.compression in CODECS


def folder_safe(value: Any) -> bool:
    """A partition value Spark writes as it is (a null or "" would be __HIVE_DEFAULT_PARTITION__)."""
    return isinstance(value, str) and value != "" and catalog.escape_path_name(value) == value


def write(rows: DataFrame, run: RunFiles, plan: WritePlan, partition_by: list[str], output_root: str,
          before_write: BeforeWrite) -> TableOutput | None:
    """The prepared rows (table_write.prepared) written: counts by manifest index, the partitions
    written and the written schema; None (nothing written) when a partition value is one Spark
    would escape."""
    enriched = output_rows(rows, run, plan).drop("_raw", "_bucket")
    batches = enriched._collect_as_arrow()  # the one Spark job (what DataFrame.toPandas uses)
    table = pa.Table.from_batches(batches) if batches else to_arrow_schema(enriched.schema).empty_table()
    columns = table.to_pydict()
    bad = [reason is not None for reason in columns["_bad_reason"]]
    good = [not b and not d for b, d in zip(bad, columns["_duplicate"], strict=True)]
    stats: dict[tuple, dict[str, Any]] = {}
    for i, file in enumerate(columns["_file"]):
        key = (file, *(columns[c][i] for c in partition_by))
        entry = stats.setdefault(
            key,
            {
                "_file": file,
                **dict(zip(partition_by, key[1:], strict=True)),
                "rows_in": 0,
                "rows_bad": 0,
                "rows_duplicate": 0,
            },
        )
        entry["rows_in"] += 1
        entry["rows_bad"] += bad[i]
        entry["rows_duplicate"] += not bad[i] and columns["_duplicate"][i]
    counts, partitions = file_counts(list(stats.values()), partition_by)
    if not all(folder_safe(value) for values in partitions for value in values):
        return None
    internal = set(transforms.INTERNAL)
    data = table.filter(pa.array(good)).drop_columns([c for c in table.column_names if c in internal])
    written = StructType([f for f in enriched.schema.fields if f.name not in internal])
    codec, extension = CODECS[plan.settings.compression]
    before_write(partition_by, sorted(partitions))
    values_of = (
        list(zip(*(data.column(c).to_pylist() for c in partition_by), strict=True)) if data.num_rows else []
    )
    for values in sorted(partitions):
        mask = pa.array([v == values for v in values_of])
        sink = io.BytesIO()
        pq.write_table(
            data.filter(mask).drop_columns(partition_by),
            sink,
            compression=codec,
            use_deprecated_int96_timestamps=True,
        )
        put_file(
            output_root,
            f"{run_dir(partition_by, values)}/part-00000-{uuid.uuid4()}.c000{extension}.parquet",
            sink.getvalue(),
        )
    return TableOutput(counts, sorted(partitions), partition_by, catalog.hive_columns(written, partition_by))
