"""The job's size rules: how a run's input size sets the shuffle's width, the cache's codec and
which write path it takes. One home for them: docs/etl-job.md's sizing table and
`sluice estimate` (sluice/estimate.py) use these numbers too.

    >>> size = RunSize.of(input_bytes=20 * 2**20, cores=8)
    >>> size.tasks, size.small, size.compress_cache
    (3, False, False)
    >>> RunSize.of(input_bytes=10 * 2**30, cores=8).tasks   # 10 GiB: 128 MiB per task
    80
    >>> RunSize.of(input_bytes=2_000, cores=8).small
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ledger import FileRef

MiB, GiB = 2**20, 2**30
# gzip shrinks CSV and JSON lines five to ten times; memory, the shuffle and the cache hold the
# text's uncompressed size, so a .gz file counts as this many times its size.
GZIP_EXPANSION = 6
# Input bytes per shuffle task, at most: what one task sorts and caches. Spark's own file
# reader splits at 128 MiB (spark.sql.files.maxPartitionBytes, "Performance Tuning", Spark 3.5
# docs); a task of that much text sorts in memory on a G.1X executor core (16 GB for 4 cores).
TASK_BYTES = 128 * MiB
# Input bytes per task, at least, while a run has fewer bytes than cores x this: a small run
# is written by fewer tasks, so each output partition gets fewer, larger files.
MIN_TASK_BYTES = 8 * MiB
# Up to this much input a run takes the small-run path (small_write.py): one Spark job, the
# rows collected to the driver, written by pyarrow. Far below any driver's memory.
SMALL_RUN_BYTES = 4 * MiB
# Above this much input the cache is compressed: uncompressed it is ~1.2x the text, and a run
# of gigabytes must fit the executors' memory and disk (G.1X: ~44 GB of free disk) with room.
# Below it the codec costs more CPU than it saves (bench_glue_job, 1M rows: 6.38 s -> 5.54 s).
COMPRESS_CACHE_ABOVE = 1 * GiB


def input_bytes(refs: Iterable[FileRef]) -> int:
    """A run's input as uncompressed bytes: each .gz file counted GZIP_EXPANSION times.

    >>> input_bytes([FileRef("b", "t/a.csv", "e", 100), FileRef("b", "t/b.csv.gz", "e", 100)])
    700
    """
    return sum(ref.size * (GZIP_EXPANSION if ref.key.endswith(".gz") else 1) for ref in refs)


@dataclass(frozen=True)
class RunSize:
    input_bytes: int
    tasks: int  # the shuffle's width: at most this many files per output partition
    small: bool  # small enough for the small-run path
    compress_cache: bool

    @classmethod
    def of(cls, input_bytes: int, cores: int) -> RunSize:
        """Tasks: enough that none gets more than TASK_BYTES, and every core busy once the run
        has MIN_TASK_BYTES for each (a run of 20 rows is one task, one file per partition)."""
        by_size = math.ceil(input_bytes / TASK_BYTES)
        spread = min(cores, math.ceil(input_bytes / MIN_TASK_BYTES))
        return cls(input_bytes, max(1, by_size, spread), input_bytes <= SMALL_RUN_BYTES,
                   input_bytes > COMPRESS_CACHE_ABOVE)
