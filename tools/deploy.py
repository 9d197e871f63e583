"""`make deploy`: the one deploy, the first time and every time after. It builds, deploys (guided
the first time: when the stack samconfig.toml names does not exist yet in its Region, or with
--guided), then publishes the job's code and datasets.toml to the stack it just deployed, in that
stack's Region - the name, Region and profile read back from samconfig.toml after `sam deploy`,
since `--guided` may have changed them. The steps are sluice.stack.steps', the local runtime's too.

    python -m tools.deploy                     # samconfig.toml [default]
    python -m tools.deploy --config-env prod   # [prod]
    python -m tools.deploy --guided            # ask again, and save the answers
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from sluice import ROOT
from sluice.stack.publish import package, publish_code
from sluice.stack.steps import SavedDeploy, Target, deploy_stack

SAM = Path(sys.executable).with_name("sam")  # the one the virtualenv pins


class SamSteps:
    """sluice.stack.steps against AWS, with the SAM CLI and boto3."""

    def __init__(self, config_env: str, zip_path: Path, config: Path = ROOT / "samconfig.toml") -> None:
        self.config_env = config_env
        self.zip_path = zip_path
        self.config = config

    def build(self) -> None:
        _run([str(SAM), "build", "--config-env", self.config_env])
        package(self.zip_path)  # before deploying: a module that does not package stops the deploy here

    def deploy(self, guided: bool) -> Target:
        # An unchanged template is not a failure: the job's code may be all that changed.
        _run([str(SAM), "deploy", "--config-env", self.config_env, "--no-fail-on-empty-changeset",
              *(["--guided"] if guided else [])])
        saved = SavedDeploy.read(self.config_env, self.config)
        if not saved.stack_name or not saved.region:
            raise SystemExit(f"samconfig.toml [{self.config_env}] names no stack_name and region after "
                             f"sam deploy: run `make deploy GUIDED=1`")
        stack = _session(saved).client("cloudformation").describe_stacks(StackName=saved.stack_name)
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Stacks"][0].get("Outputs", [])}
        return Target(saved.stack_name, saved.region, outputs, saved.profile)

    def publish(self, target: Target) -> list[str]:
        s3 = _session(SavedDeploy(target.stack_name, target.region, target.profile, {})).client("s3")
        published = publish_code(s3, target.outputs["ArtifactsBucketName"], self.zip_path)
        print(f"published to {target.stack_name} ({target.region}): " + ", ".join(published))
        return published


def first_time(saved: SavedDeploy) -> bool:
    """No stack of that name in that Region yet (or samconfig.toml names none)."""
    if not saved.stack_name or not saved.region:
        return True
    from botocore.exceptions import ClientError

    try:
        _session(saved).client("cloudformation").describe_stacks(StackName=saved.stack_name)
    except ClientError as error:
        if "does not exist" in str(error):
            return True
        raise
    return False


def _session(saved: SavedDeploy) -> Any:
    import boto3

    return boto3.session.Session(profile_name=saved.profile, region_name=saved.region)


def _run(command: list[str]) -> None:
    print("+ " + " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-env", default="default", help="the samconfig.toml environment")
    parser.add_argument("--guided", action="store_true", help="sam deploy --guided, even if the stack exists")
    parser.add_argument("--zip", type=Path, default=ROOT / "glue" / "dist" / "sluice_glue.zip")
    args = parser.parse_args(argv)
    guided = args.guided or first_time(SavedDeploy.read(args.config_env))
    target = deploy_stack(SamSteps(args.config_env, args.zip), guided=guided)
    print(f"\nDeployed {target.stack_name} in {target.region}. Confirm the subscription email SNS sent to "
          f"NotificationEmail, then drop a file: aws s3 cp FILE s3://{target.outputs['RawBucketName']}/orders/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
