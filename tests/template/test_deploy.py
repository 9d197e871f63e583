"""template.yaml deployed into the emulator: intrinsic functions resolved as CloudFormation would, and
the deploy's steps (sluice.stack.steps) as `make deploy` and the local runtime take them."""

from __future__ import annotations

import json

from sluice.stack.deploy import deploy
from sluice.stack.resolve import local_parameters
from sluice.stack.steps import deploy_stack


def test_an_unset_optional_job_argument_is_left_out(aws, app):
    params = {**local_parameters(), "LookupUri": "", "LookupKey": ""}  # HasLookup false: AWS::NoValue
    stack = deploy(aws, app, params)
    arguments = aws.client("glue").get_job(JobName=stack.names["EtlJob"])["Job"]["DefaultArguments"]
    assert "--lookup_uri" not in arguments and "--lookup_key" not in arguments
    assert arguments["--dedup_keys"] == params["DedupKeys"]
    statements = stack.roles["EtlJobRole"].policies[0].document["Statement"]
    assert "LookupTable" not in [s.get("Sid") for s in statements]


def test_a_lookup_in_another_bucket_may_be_listed_and_decrypted(aws, app):
    """Finding 8: without s3:ListBucket, S3 answers a missing lookup object 403 (not 404); an SSE-KMS
    object needs kms:Decrypt on its key."""
    from sluice.aws.iam import evaluate

    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    params = {**local_parameters(), "LookupUri": "s3://reference-data/countries/2026.csv",
              "LookupKey": "country", "LookupKmsKeyArn": key}
    job = deploy(aws, app, params).principals["EtlJob"]
    assert evaluate(job, "s3:GetObject", "arn:aws:s3:::reference-data/countries/2026.csv").allowed
    assert evaluate(job, "s3:ListBucket", "arn:aws:s3:::reference-data").allowed
    assert not evaluate(job, "s3:GetObject", "arn:aws:s3:::reference-data/other.csv").allowed
    assert evaluate(job, "kms:Decrypt", key).allowed
    aws.reset()
    statements = deploy(aws, app, {**params, "LookupKmsKeyArn": ""}).roles["EtlJobRole"].policies[0].document
    assert "LookupKey" not in [s.get("Sid") for s in statements["Statement"]]


def test_the_local_deploy_takes_the_documented_steps_and_leaves_the_job_its_code(aws):
    """Finding 1: `sam deploy` uploads no ScriptLocation (an s3:// URI), modules zip or datasets.toml;
    the deploy's publish step does. The local runtime deploys through the same steps, so the job's
    code is there only if the documented deploy puts it there."""
    from botocore.exceptions import ClientError

    from sluice.runtime import LocalSteps

    def job_code(steps: LocalSteps) -> dict[str, bool]:
        assert steps.stack is not None
        job = aws.client("glue").get_job(JobName=steps.stack.names["EtlJob"])["Job"]
        uris = [job["Command"]["ScriptLocation"], job["DefaultArguments"]["--extra-py-files"],
                job["DefaultArguments"]["--datasets_uri"]]
        found = {}
        for uri in uris:
            bucket, key = uri.removeprefix("s3://").split("/", 1)
            try:
                aws.client("s3").head_object(Bucket=bucket, Key=key)
                found[uri] = True
            except ClientError:
                found[uri] = False
        return found

    without_publish = LocalSteps(aws, local_parameters())
    without_publish.build()
    without_publish.deploy(guided=False)  # what `sam build && sam deploy --guided` alone leaves
    assert not any(job_code(without_publish).values())
    aws.reset()
    steps = LocalSteps(aws, local_parameters())
    target = deploy_stack(steps)
    assert all(job_code(steps).values()) and target.stack_name == "sluice-local"


def test_make_deploy_publishes_to_the_stack_and_region_guided_saved(aws, tmp_path, monkeypatch):
    """Finding 1: the publish used the Makefile's default stack name and region, not the ones
    `sam deploy --guided` saved in samconfig.toml."""
    import boto3

    from tools import deploy as make_deploy

    config = tmp_path / "samconfig.toml"
    config.write_text('version = 0.1\n[default.global.parameters]\nstack_name = "sluice-dev"\n')
    ran: list[list[str]] = []

    def sam(command: list[str]) -> None:  # sam deploy --guided saves the answers it was given
        ran.append(command[1:])
        if command[1] == "deploy":
            config.write_text(config.read_text() + '[default.deploy.parameters]\nstack_name = "team-etl"\n'
                              'region = "eu-west-1"\n')

    monkeypatch.setattr(make_deploy, "_run", sam)
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket="team-artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    outputs = {"ArtifactsBucketName": {"Value": "team-artifacts"}, "RawBucketName": {"Value": "raw"}}
    template = {"Resources": {"Nothing": {"Type": "AWS::SQS::Queue"}}, "Outputs": outputs}
    boto3.client("cloudformation", region_name="eu-west-1").create_stack(StackName="team-etl",
                                                                        TemplateBody=json.dumps(template))
    steps = make_deploy.SamSteps("default", tmp_path / "sluice_glue.zip", config)
    target = deploy_stack(steps, guided=True)
    assert ran[0][:3] == ["build", "--config-env", "default"] and "--guided" in ran[1]
    assert (target.stack_name, target.region) == ("team-etl", "eu-west-1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="team-artifacts")["Contents"]}
    assert {"code/etl_job.py", "code/sluice_glue.zip", "code/datasets.toml"} <= keys
