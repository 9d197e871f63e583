"""Adapter: run manifests and summaries in the artifacts bucket (runs/<run_id>/...)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from ledger import RunManifest, RunSummary, manifest_key, summary_key
from ledger.s3 import read_summary


class S3Manifests:
    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def write(self, manifest: RunManifest) -> str:
        key = manifest_key(manifest.run_id)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=manifest.to_json().encode(),
                           ContentType="application/json")
        return f"s3://{self.bucket}/{key}"

    def read_summary(self, run_id: str) -> RunSummary | None:
        return read_summary(self.s3, self.bucket, run_id)

    def exists(self, run_id: str) -> bool:
        """Was the run's manifest written? (HeadObject answers 404 for a missing key to a role
        that may ListBucket, which StartJobRole may.)"""
        try:
            self.s3.head_object(Bucket=self.bucket, Key=manifest_key(run_id))
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def summary_uri(self, run_id: str) -> str:
        return f"s3://{self.bucket}/{summary_key(run_id)}"

    def delete(self, run_id: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=manifest_key(run_id))
