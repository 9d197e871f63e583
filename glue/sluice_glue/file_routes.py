"""Which way each raw file of a run is read, and the Python side of reading it.

Spark reads a file by its name: glob characters are escaped (`spark_path`); a name Spark cannot
address (a leaf starting with `_` or `.`, which Spark skips; `//`, which it folds; `:`, which
local Hadoop rejects) and a compressed file whose name does not say so (Spark picks the codec by
the extension; Firehose, DMS and others write such files) are streamed by Python tasks instead,
decompressed by their magic bytes. A file that neither way can read is quarantined whole with
the reason (`route`). Before any file is read, each one that could end mid-stream is read
through once, one Spark task per file (`unreadable_gzip`, `checked`): a stream truncated half
way must be quarantined whole, never counted DONE with the rows before the break. One decoder
(`decompressed`) serves the checks and the streamed read.

    >>> spark_path("s3://raw/t/a[1].csv")
    's3://raw/t/a\\\\[1\\\\].csv'
    >>> route(0, "t/2026/11/25/stream-1", "/staged/t/2026/11/25/stream-1", "json", b"\\x1f\\x8b...").how
    'stream'
"""

from __future__ import annotations

import bz2
import codecs
import re
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from sluice_glue import storage
from sluice_glue.storage import chunks

BOM = "\ufeff"
CODEC_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\x28\xb5\x2f\xfd": "zstd", b"\x04\x22\x4d\x18": "lz4",
               b"\xff\x06\x00\x00sNaPpY": "snappy", b"PK\x03\x04": "zip"}
READABLE_CODECS = ("gzip", "bzip2")
# The extensions Hadoop picks a codec by (CompressionCodecFactory); a file so named is Spark's.
CODEC_EXTENSIONS = (".gz", ".bz2", ".deflate", ".lz4", ".snappy", ".zst")
# Decompressed bytes handed on at a time: a task's memory stays bounded whatever a stream's ratio.
OUTPUT_BYTES = 1 << 20


# --- which files Spark reads by name, which Python streams, which cannot be read ---------------

def spark_path(path: str) -> str:
    """A path as Spark must be given it to read exactly that file: glob characters escaped."""
    return re.sub(r"([\\\[\]{}*?])", r"\\\1", path)


def unnameable(key: str) -> str | None:
    """Why Spark cannot read the object by its key (None: it can)."""
    name = key.rsplit("/", 1)[-1]
    if name.startswith(("_", ".")):
        return f"Spark skips files whose name starts with {name[0]!r}"
    if "//" in key:
        return "Spark folds '//' in a path to '/'"
    if ":" in key:
        return "Hadoop's local file system rejects ':' in a file name"
    return None


def compression(head: bytes) -> str | None:
    """The codec a file is compressed with, by its magic bytes (None: not compressed)."""
    return next((codec for magic, codec in CODEC_MAGIC.items() if head.startswith(magic)), None)


@dataclass(frozen=True)
class FileRoute:
    """How one file of the manifest is read: by Spark, streamed by Python (with its codec), or
    not at all (with the reason, quarantined whole)."""

    index: int
    path: str
    how: str  # "spark" | "stream" | "unreadable"
    codec: str | None = None
    reason: str = ""


def route(index: int, key: str, path: str, kind: str, head: bytes | None) -> FileRoute:
    """How to read the file `key` (staged at `path`); `head`: its first bytes when known."""
    codec = compression(head) if head is not None else None
    named = key.lower().endswith(CODEC_EXTENSIONS)
    why = unnameable(key)
    if kind == "parquet":
        return FileRoute(index, path, "unreadable", reason=f"{why}: rename the file") if why else \
            FileRoute(index, path, "spark")
    if codec and not named and codec not in READABLE_CODECS:
        return FileRoute(index, path, "unreadable", codec,
                         f"{codec}-compressed, but its name does not end in the codec's extension: rename it")
    if why or (codec and not named):
        return FileRoute(index, path, "stream", codec if not named else _codec_of_name(key))
    return FileRoute(index, path, "spark")


def _codec_of_name(key: str) -> str | None:
    lower = key.lower()
    return "gzip" if lower.endswith(".gz") else "bzip2" if lower.endswith(".bz2") else None


def first_line(head: bytes, codec: str | None) -> str:
    """The first line of a file from its first bytes, decompressed by `codec`; "" if unreadable."""
    try:
        if codec == "gzip":  # a partial stream decompresses as far as it goes
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 65536)
        elif codec == "bzip2":
            head = bz2.BZ2Decompressor().decompress(head, 65536)
        return head.split(b"\n", 1)[0].decode("utf-8", errors="replace").removeprefix(BOM)
    except (zlib.error, OSError, EOFError):
        return ""


# --- streaming a file through Python -----------------------------------------------------------

def decompressed(chunks: Iterable[bytes], codec: str | None) -> Iterator[bytes]:
    """The decompressed bytes of a stream, at most OUTPUT_BYTES at a time (concatenated gzip
    members and bzip2 streams read in turn); raises ValueError when the stream is corrupt or ends
    before its end.

    >>> import gzip
    >>> whole = gzip.compress(b"a,b\\n1,2\\n" * 1000)
    >>> len(b"".join(decompressed([whole], "gzip")))
    8000
    >>> list(decompressed([whole[:40]], "gzip"))
    Traceback (most recent call last):
    ValueError: truncated gzip stream (unexpected end of file)
    """
    if codec is None:
        yield from chunks
        return

    def fresh() -> Any:
        return zlib.decompressobj(16 + zlib.MAX_WBITS) if codec == "gzip" else bz2.BZ2Decompressor()

    inflate, seen = fresh(), False
    try:
        for chunk in chunks:
            while chunk:
                seen = True
                yield from _inflated(inflate, chunk)
                if not inflate.eof:
                    break
                chunk = inflate.unused_data  # another member (stream) follows
                inflate = fresh()
                seen = bool(chunk)
    except (zlib.error, OSError, EOFError) as error:
        raise ValueError(f"corrupt {codec} stream ({error})") from error
    if seen and not inflate.eof:
        raise ValueError(f"truncated {codec} stream (unexpected end of file)")


def _inflated(inflate: Any, data: bytes) -> Iterator[bytes]:
    """`data` through a zlib or bz2 decompressor, OUTPUT_BYTES of output at most at a time: the
    input left over waits in the decompressor (zlib's unconsumed_tail, bz2's own buffer)."""
    if isinstance(inflate, bz2.BZ2Decompressor):
        yield inflate.decompress(data, OUTPUT_BYTES)
        while not inflate.eof and not inflate.needs_input:
            yield inflate.decompress(b"", OUTPUT_BYTES)
        return
    while True:
        out = inflate.decompress(data, OUTPUT_BYTES)
        yield out
        data = inflate.unconsumed_tail
        if not data and (inflate.eof or len(out) < OUTPUT_BYTES):
            return


def gzip_problem(chunks: Iterable[bytes]) -> str | None:
    """Why a gzip stream is unreadable (truncated, corrupt), or None if every member ends
    properly.

    >>> import gzip
    >>> whole = gzip.compress(b"a,b\\n1,2\\n" * 1000)
    >>> gzip_problem([whole]) is None, gzip_problem([whole[:40]])
    (True, 'truncated gzip stream (unexpected end of file)')
    """
    try:
        for _ in decompressed(chunks, "gzip"):
            pass
    except ValueError as error:
        return str(error)
    return None


def lines_of(data: Iterable[bytes]) -> Iterator[str]:
    """Text lines of a byte stream as Hadoop's line reader splits them (\\n, \\r\\n or \\r ends a
    line), decoded as UTF-8 with invalid bytes replaced, as Spark decodes text."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in data:
        pending += decoder.decode(chunk)
        parts = re.split(r"\r\n|\n|\r(?!$)", pending)
        pending = parts.pop()
        yield from parts
    pending += decoder.decode(b"", final=True)
    if pending.endswith("\r"):
        pending = pending[:-1]
    if pending:
        yield pending


def _problem(item: tuple[int, str, str | None]) -> tuple[int, str | None, str]:
    """(index, why the file cannot be read or None, its first line): one pass over the stream."""
    index, source, codec = item
    first = None
    try:
        for line in lines_of(decompressed(chunks(source), codec)):
            first = line if first is None else first
    except ValueError as error:
        return index, str(error), ""
    return index, None, (first or "").removeprefix(BOM)


def _on_executors() -> None:
    """Local Spark's Python workers do not have glue/ on their path (Glue's have --extra-py-files):
    the functions this module sends them go by value, with storage's (chunks, the client). They
    name each function they use, never a module: a module goes whole, with everything it imports."""
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(storage)


def unreadable_gzip(spark: SparkSession, sources: dict[int, str]) -> dict[int, str]:
    """Manifest index -> why its gzip stream is unreadable, for the .gz files among `sources`
    (index -> read path: the files Spark reads by name), checked in one Spark job, one task per
    file. Spark reads a truncated gzip file up to the break without noticing when
    ignoreCorruptFiles is on (its docs: "the contents that have been read will still be
    returned", sql-data-sources-generic-options), and fails the whole read when it is off; so
    such files are found here, before the read."""
    gz = [(i, path) for i, path in sources.items() if path.endswith(".gz")]
    if not gz:
        return {}
    _on_executors()
    found = spark.sparkContext.parallelize(gz, len(gz)).map(
        lambda item: (item[0], gzip_problem(chunks(item[1])))).collect()
    return {index: problem for index, problem in found if problem}


def checked(spark: SparkSession, routes: list[FileRoute]) -> dict[int, tuple[str | None, str]]:
    """For each streamed file: (why it cannot be read or None, its first line), one Spark task
    per file, before any of it is read: a stream truncated mid-way must be quarantined whole,
    never counted DONE with the rows before the break."""
    if not routes:
        return {}
    _on_executors()
    items = [(r.index, r.path, r.codec) for r in routes]
    found = spark.sparkContext.parallelize(items, len(items)).map(_problem).collect()
    return {index: (problem, first) for index, problem, first in found}


def stream_lines(spark: SparkSession, routes: list[FileRoute], skip_first: set[int]) -> DataFrame:
    """The lines (`_file`, `value`) of files Spark cannot read by name, streamed and decompressed
    by Python tasks, one per file; the first line left out for the files `skip_first` (headers)."""
    _on_executors()
    items = [(r.index, r.path, r.codec, r.index in skip_first) for r in routes]

    def lines(item: tuple[int, str, str | None, bool]) -> Iterator[tuple[int, str]]:
        index, source, codec, skip = item
        for number, line in enumerate(lines_of(decompressed(chunks(source), codec))):
            if number or not skip:
                yield index, line.removeprefix(BOM) if number == 0 else line

    rdd = spark.sparkContext.parallelize(items, len(items)).flatMap(lines)
    return spark.createDataFrame(rdd, "_file int, value string")
