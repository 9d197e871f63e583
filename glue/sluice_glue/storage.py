"""Where the job reads and writes: the one place that differs between AWS Glue and local Spark.

On AWS Glue (`--storage s3`), Spark reads and writes s3:// directly. Locally (`--storage local`)
there is no S3 connector for Spark (it would come from Maven), so the run's raw objects are
staged with boto3 (which reaches the emulator through AWS_ENDPOINT_URL) under their real names,
`<root>/in/<bucket>/<key>`, so Spark reports them (input_file_name) as it reports s3:// keys on
Glue; the output is written to a folder and uploaded. Either way the decoded path Spark reports
maps back to its manifest entry.
"""

from __future__ import annotations

import contextvars
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config

from ledger import FileRef
from ledger.s3 import delete_prefix, discard_run_folders

# Driver calls (header reads, staging, DONE marks) go through this many threads: each is one
# round trip, and boto3 clients are thread-safe (resources are not: see job.py's ledgers).
DRIVER_THREADS = 16
# Every client the job makes: one pooled connection per driver thread (botocore's default pool
# is 10, so 16 threads would wait for one), and the standard retry mode, which backs off on
# throttling and transient errors up to max_attempts (legacy mode, boto3's default, retries
# fewer errors: "Retries", boto3 guide, https://boto3.amazonaws.com/v1/documentation/api/latest/
# guide/retries.html; max_pool_connections: botocore's Config reference).
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 6}, max_pool_connections=DRIVER_THREADS)


def client(service: str) -> Any:
    return boto3.client(service, config=CLIENT_CONFIG)  # type: ignore[call-overload]


def resource(service: str) -> Any:
    return boto3.resource(service, config=CLIENT_CONFIG)  # type: ignore[call-overload]


T = TypeVar("T")
R = TypeVar("R")


def concurrently(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """fn over items through a bounded pool, results in order; the first error raises."""
    items = list(items)
    if len(items) <= 1:
        return [fn(item) for item in items]
    # Each call runs in a copy of the caller's context (contextvars), as the caller's own code
    # would: whatever the caller set there (a logging or tracing context) holds in the pool too.
    # (copied here, in the caller's thread: a context is entered by one thread at a time).
    calls = [(contextvars.copy_context(), item) for item in items]
    with ThreadPoolExecutor(min(DRIVER_THREADS, len(items))) as pool:
        return list(pool.map(lambda call: call[0].run(fn, call[1]), calls))


class Storage:
    """Direct s3:// access (AWS Glue)."""

    local = False

    def __init__(self) -> None:
        self.s3 = client("s3")

    def inputs(self, refs: list[FileRef]) -> dict[str, int]:
        """The path Spark reports for each file (input_file_name, URL-decoded) -> manifest index."""
        return {ref.uri: index for index, ref in enumerate(refs)}

    def read_path(self, ref: FileRef) -> str:
        return ref.uri

    def output_root(self, bucket: str, prefix: str) -> str:
        return f"s3://{bucket}/{prefix}"

    def head(self, ref: FileRef) -> bytes:
        """The file's first 64 KiB."""
        return self.s3.get_object(Bucket=ref.bucket, Key=ref.key, Range="bytes=0-65535")["Body"].read()

    def clear(self, bucket: str, prefix: str, run_dirs: list[str]) -> None:
        """Empty the run's partition folders before the rows are appended: what an earlier
        attempt of the same run left there goes, so the run's output is written once."""
        concurrently(lambda run_dir: delete_prefix(self.s3, bucket, f"{prefix}{run_dir}/"), run_dirs)

    def publish(self, bucket: str, prefix: str, run_dirs: list[str]) -> None:
        """Spark wrote in place (append, into folders `clear` emptied)."""

    def fetch(self, uri: str) -> str:
        return uri

    def discard_run(self, bucket: str, table_prefix: str, run_id: str) -> int:
        """Delete every `run_id=<run_id>/` folder under table_prefix (whatever the partition
        folders above it); returns how many objects went."""
        return discard_run_folders(self.s3, bucket, table_prefix, run_id)

    def close(self) -> None:
        pass


class LocalStorage(Storage):
    """Stage through a temporary folder (local Spark, the emulator)."""

    local = True

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="sluice-job-"))

    def inputs(self, refs: list[FileRef]) -> dict[str, int]:
        concurrently(lambda ref: self._download(ref.bucket, ref.key, self.read_path(ref)), refs)
        return {f"file://{self.read_path(ref)}": index for index, ref in enumerate(refs)}

    def read_path(self, ref: FileRef) -> str:
        return str(self.root / "in" / ref.bucket / ref.key)

    def head(self, ref: FileRef) -> bytes:
        with open(self.read_path(ref), "rb") as staged:
            return staged.read(65536)

    def fetch(self, uri: str) -> str:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        local = self.root / "ref" / bucket / key
        self._download(bucket, key, str(local))
        return str(local)

    def _download(self, bucket: str, key: str, local: str) -> None:
        # One GetObject: download_file's transfer manager (HeadObject, a thread pool) costs three
        # times as much per file, and a run stages hundreds of small files.
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        with open(local, "wb") as staged:
            shutil.copyfileobj(body, staged)

    def output_root(self, bucket: str, prefix: str) -> str:
        return str(self.root / "out" / bucket / prefix)

    def clear(self, bucket: str, prefix: str, run_dirs: list[str]) -> None:
        """Nothing yet: Spark writes into a fresh local folder, and publish deletes, then uploads."""

    def publish(self, bucket: str, prefix: str, run_dirs: list[str]) -> None:
        """Replace this run's partitions in S3 with what Spark wrote locally: first delete what an
        earlier attempt of the same run left there, then upload."""
        local_root = Path(self.output_root(bucket, prefix))
        for run_dir in run_dirs:
            # "" is the whole prefix (the run's quarantine folder), not "<prefix>/"
            delete_prefix(self.s3, bucket, f"{prefix}{run_dir}/" if run_dir else prefix)
        files = [p for p in sorted(local_root.rglob("*"))
                 if p.is_file() and not p.name.startswith(("_", "."))]
        concurrently(lambda path: self.s3.upload_file(
            str(path), bucket, f"{prefix}{path.relative_to(local_root).as_posix()}"), files)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def put_file(root: str, relative: str, body: bytes) -> None:
    """Write one output file under an output root: s3://bucket/prefix/ (the S3 storage) or a
    local folder (the local storage, whose publish uploads it)."""
    if root.startswith("s3://"):
        bucket, _, prefix = root.removeprefix("s3://").partition("/")
        client("s3").put_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/{relative}".lstrip("/"), Body=body)
        return
    path = Path(root) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)


def chunks(source: str) -> Iterator[bytes]:
    """The bytes of a staged path or an s3:// object, 1 MiB at a time (also on an executor:
    file_routes sends it there)."""
    if source.startswith("s3://"):
        bucket, key = source.removeprefix("s3://").split("/", 1)
        yield from client("s3").get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(1 << 20)
        return
    with open(source, "rb") as stream:
        while chunk := stream.read(1 << 20):
            yield chunk
