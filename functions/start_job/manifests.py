"""Adapter: run manifests in the artifacts bucket (runs/<run_id>/manifest.json)."""

from __future__ import annotations

import json
from typing import Any

from ledger import RunManifest, manifest_key, summary_key


class S3Manifests:
    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def write(self, manifest: RunManifest) -> str:
        key = manifest_key(manifest.run_id)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=manifest.to_json().encode(),
                           ContentType="application/json")
        return f"s3://{self.bucket}/{key}"

    def read_summary(self, run_id: str) -> dict | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=summary_key(run_id))["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def delete(self, run_id: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=manifest_key(run_id))
