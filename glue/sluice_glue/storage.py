"""Where the job reads and writes: the one place that differs between AWS Glue and local Spark.

On AWS Glue, Spark reads and writes s3:// directly. Locally there is no S3 connector for Spark
(it would come from Maven), so the run's raw objects are staged to a temporary folder with boto3
(which reaches the emulator through AWS_ENDPOINT_URL) and the output is written to a folder and
uploaded. Either way a staged or direct path maps back to its manifest entry.
"""

from __future__ import annotations

import shutil
import tempfile
import zlib
from pathlib import Path
from urllib.parse import quote

import boto3

from ledger import FileRef
from ledger.s3 import delete_prefix


class Storage:
    """Direct s3:// access (AWS Glue)."""

    local = False

    def __init__(self) -> None:
        self.s3 = boto3.client("s3")

    def inputs(self, refs: list[FileRef]) -> dict[str, int]:
        """Path variants Spark may report for each file (input_file_name) -> manifest index."""
        paths: dict[str, int] = {}
        for index, ref in enumerate(refs):
            for variant in (ref.uri, f"s3://{ref.bucket}/{quote(ref.key, safe='/')}"):
                paths[variant] = index
        return paths

    def read_path(self, ref: FileRef, index: int) -> str:
        return ref.uri

    def output_root(self, bucket: str, prefix: str) -> str:
        return f"s3://{bucket}/{prefix}"

    def first_line(self, ref: FileRef, index: int) -> str:
        """The file's first line (its CSV header), from its first 64 KiB; "" if unreadable."""
        head = self.s3.get_object(Bucket=ref.bucket, Key=ref.key, Range="bytes=0-65535")["Body"].read()
        return _first_line(head, ref.key.endswith(".gz"))

    def publish(self, bucket: str, prefix: str, run_dirs: list[str]) -> None:
        """Spark wrote in place (dynamic partition overwrite replaced this run's partitions)."""

    def fetch(self, uri: str) -> str:
        return uri

    def close(self) -> None:
        pass


class LocalStorage(Storage):
    """Stage through a temporary folder (local Spark, the emulator)."""

    local = True

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="sluice-job-"))

    def inputs(self, refs: list[FileRef]) -> dict[str, int]:
        paths: dict[str, int] = {}
        for index, ref in enumerate(refs):
            local = self.read_path(ref, index)
            self._download(ref.bucket, ref.key, local)
            for variant in (local, f"file://{local}", f"file:{local}"):
                paths[variant] = index
        return paths

    def read_path(self, ref: FileRef, index: int) -> str:
        # Staged under an index-based name (keeping the extensions Spark reads compression
        # from), so odd characters in keys never reach Spark's path handling.
        name = ref.key.rsplit("/", 1)[-1]
        suffix = "".join(f".{part}" for part in name.split(".")[1:]) if "." in name else ""
        (self.root / "in").mkdir(exist_ok=True)
        return str(self.root / "in" / f"f{index:06d}{suffix}")

    def first_line(self, ref: FileRef, index: int) -> str:
        with open(self.read_path(ref, index), "rb") as staged:
            return _first_line(staged.read(65536), ref.key.endswith(".gz"))

    def fetch(self, uri: str) -> str:
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        local = self.root / "ref" / key.rsplit("/", 1)[-1]
        local.parent.mkdir(parents=True, exist_ok=True)
        self._download(bucket, key, str(local))
        return str(local)

    def _download(self, bucket: str, key: str, local: str) -> None:
        # One GetObject: download_file's transfer manager (HeadObject, a thread pool) costs three
        # times as much per file, and a run stages hundreds of small files.
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        with open(local, "wb") as staged:
            shutil.copyfileobj(body, staged)

    def output_root(self, bucket: str, prefix: str) -> str:
        return str(self.root / "out" / bucket / prefix)

    def publish(self, bucket: str, prefix: str, run_dirs: list[str]) -> None:
        """Replace this run's partitions in S3 with what Spark wrote locally: first delete what an
        earlier attempt of the same run left there, then upload."""
        local_root = Path(self.output_root(bucket, prefix))
        for run_dir in run_dirs:
            # "" is the whole prefix (the run's quarantine folder), not "<prefix>/"
            delete_prefix(self.s3, bucket, f"{prefix}{run_dir}/" if run_dir else prefix)
        for path in sorted(local_root.rglob("*")):
            if path.is_file() and not path.name.startswith(("_", ".")):
                self.s3.upload_file(str(path), bucket, f"{prefix}{path.relative_to(local_root).as_posix()}")

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _first_line(head: bytes, gz: bool) -> str:
    try:
        if gz:  # a partial gzip stream decompresses as far as it goes
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 65536)
        return head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    except zlib.error:
        return ""
