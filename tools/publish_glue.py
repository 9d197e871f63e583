"""Package the Glue job's code and publish it next to a deployed stack: the deploy's last step, by
hand (what is published, and why `sam deploy` does not: sluice.stack.publish).

    python -m tools.publish_glue --zip glue/dist/sluice_glue.zip                 # package only
    python -m tools.publish_glue --config-env default    # to the stack samconfig.toml [default] names
    python -m tools.publish_glue --stack-name sluice-dev --region eu-west-1
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sluice import ROOT
from sluice.stack.publish import package, publish_code


def publish(zip_path: Path, stack_name: str, region: str, profile: str | None = None) -> str:
    """To the named stack's artifacts bucket, in its Region (not the shell's default one)."""
    import boto3

    session = boto3.session.Session(profile_name=profile, region_name=region)
    stack = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    bucket = next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "ArtifactsBucketName")
    return ", ".join(publish_code(session.client("s3"), bucket, zip_path))


def main() -> None:
    from sluice.stack.steps import SavedDeploy

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--zip", type=Path, default=ROOT / "glue" / "dist" / "sluice_glue.zip")
    parser.add_argument("--config-env", help="publish to the stack this samconfig.toml environment saved")
    parser.add_argument("--stack-name", help="publish to this deployed stack's artifacts bucket")
    parser.add_argument("--region", help="the stack's Region (default: the environment's saved one)")
    args = parser.parse_args()
    print(f"packaged {package(args.zip)}")
    saved = SavedDeploy.read(args.config_env or "default")
    stack_name = args.stack_name or (saved.stack_name if args.config_env else None)
    if stack_name:
        region = args.region or saved.region
        if not region:
            raise SystemExit(f"no Region for {stack_name}: give --region (samconfig.toml saved none)")
        print(f"published {publish(args.zip, stack_name, region, saved.profile)}")


if __name__ == "__main__":
    main()
