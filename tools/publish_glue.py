"""Package the Glue job's code and publish it next to a deployed stack.

The job's code lives in the stack's artifacts bucket, which its role reads: the entry script
(EtlJob's ScriptLocation, s3://<artifacts>/code/etl_job.py) and the modules it imports
(`--extra-py-files s3://<artifacts>/code/sluice_glue.zip`). `sam deploy` would upload a local
ScriptLocation to SAM's own managed bucket, which the job role cannot read, so this puts both in
place, from the stack's own outputs. `make deploy` runs it after `sam deploy`.

    python -m tools.publish_glue --zip glue/dist/sluice_glue.zip                 # package only
    python -m tools.publish_glue --zip glue/dist/sluice_glue.zip --stack-name sluice-dev
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

from sluice.stack.template import ROOT

PACKAGES = [ROOT / "glue" / "sluice_glue", ROOT / "functions" / "ledger_layer" / "ledger"]
CODE_KEY = "code/sluice_glue.zip"
SCRIPT = ROOT / "glue" / "etl_job.py"
SCRIPT_KEY = "code/etl_job.py"


def package(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for package_dir in PACKAGES:
            for path in sorted(package_dir.rglob("*.py")):
                archive.write(path, path.relative_to(package_dir.parent))
    return target


def publish(zip_path: Path, stack_name: str) -> str:
    import boto3

    outputs = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]["Outputs"]
    bucket = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "ArtifactsBucketName")
    s3 = boto3.client("s3")
    s3.upload_file(str(SCRIPT), bucket, SCRIPT_KEY)
    s3.upload_file(str(zip_path), bucket, CODE_KEY)
    return f"s3://{bucket}/{SCRIPT_KEY} and s3://{bucket}/{CODE_KEY}"


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
