"""template.yaml deployed into the emulator: intrinsic functions resolved as CloudFormation would."""

from __future__ import annotations

from sluice.stack.deploy import deploy, local_parameters


def test_an_unset_optional_job_argument_is_left_out(aws, app):
    params = {**local_parameters(), "LookupUri": "", "LookupKey": ""}  # HasLookup false: AWS::NoValue
    stack = deploy(aws, app, params)
    arguments = aws.client("glue").get_job(JobName=stack.names["EtlJob"])["Job"]["DefaultArguments"]
    assert "--lookup_uri" not in arguments and "--lookup_key" not in arguments
    assert arguments["--dedup_keys"] == params["DedupKeys"]
    statements = stack.roles["EtlJobRole"].policies[0].document["Statement"]
    assert "LookupTable" not in [s.get("Sid") for s in statements]
