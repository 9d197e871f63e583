"""Package the Glue job's code and publish it next to a deployed stack.

The job's code lives in the stack's artifacts bucket, which its role reads: the entry script
(EtlJob's ScriptLocation, s3://<artifacts>/code/etl_job.py), the modules it imports
(`--extra-py-files s3://<artifacts>/code/sluice_glue.zip`), the per-dataset settings
(`--datasets_uri s3://<artifacts>/code/datasets.toml`) and the lookup tables those settings name
by key (samples/reference/ -> reference/). `sam deploy` would upload a local ScriptLocation to
SAM's own managed bucket, which the job role cannot read, so this puts them in place, from the
stack's own outputs. `make deploy` runs it after `sam deploy`; the local runtime calls
`publish_code` when it starts.

    python -m tools.publish_glue --zip glue/dist/sluice_glue.zip                 # package only
    python -m tools.publish_glue --zip glue/dist/sluice_glue.zip --stack-name sluice-dev
"""

from __future__ import annotations

import argparse
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from sluice.stack.template import ROOT

PACKAGES = [ROOT / "glue" / "sluice_glue", ROOT / "functions" / "ledger_layer" / "ledger"]
CODE_KEY = "code/sluice_glue.zip"
SCRIPT = ROOT / "glue" / "etl_job.py"
SCRIPT_KEY = "code/etl_job.py"
DATASETS = ROOT / "datasets.toml"
DATASETS_KEY = "code/datasets.toml"  # EtlJob's --datasets_uri
REFERENCE = ROOT / "samples" / "reference"
REFERENCE_PREFIX = "reference/"  # a lookup_uri without s3:// is a key in the artifacts bucket


def package(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for package_dir in PACKAGES:
            for path in sorted(package_dir.rglob("*.py")):
                archive.write(path, path.relative_to(package_dir.parent))
    return target


def publish_code(s3: Any, bucket: str, zip_path: Path | None = None) -> list[str]:
    """Upload the job's script, its modules' zip (packaged now unless given), datasets.toml and
    the reference tables to `bucket`; the s3:// URIs written. The settings are checked first, so
    a broken datasets.toml stops the deploy instead of failing every run."""
    from sluice_glue import datasets  # the job's own validation (glue/ is on the path, as for the job)

    datasets.load(DATASETS.read_text(), source=str(DATASETS.relative_to(ROOT)))
    with tempfile.TemporaryDirectory() as scratch:
        archive = zip_path or package(Path(scratch) / "sluice_glue.zip")
        uploads = [(SCRIPT, SCRIPT_KEY), (archive, CODE_KEY), (DATASETS, DATASETS_KEY),
                   *((p, f"{REFERENCE_PREFIX}{p.name}") for p in sorted(REFERENCE.glob("*")) if p.is_file())]
        for path, key in uploads:
            s3.upload_file(str(path), bucket, key)
    return [f"s3://{bucket}/{key}" for _, key in uploads]


def publish(zip_path: Path, stack_name: str) -> str:
    import boto3

    outputs = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]["Outputs"]
    bucket = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "ArtifactsBucketName")
    return ", ".join(publish_code(boto3.client("s3"), bucket, zip_path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--zip", type=Path, default=ROOT / "glue" / "dist" / "sluice_glue.zip")
    parser.add_argument("--stack-name", help="upload to this deployed stack's artifacts bucket")
    args = parser.parse_args()
    print(f"packaged {package(args.zip)}")
    if args.stack_name:
        print(f"published {publish(args.zip, args.stack_name)}")


if __name__ == "__main__":
    main()
