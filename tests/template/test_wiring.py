"""template.yaml, translated offline by the SAM translator: the wiring of the seven steps, and the
security promises (TLS only, no public buckets, IAM scoped to named resources)."""

from __future__ import annotations

import pytest

from sluice.stack.template import SamApp

# Statements allowed to use "Resource": "*", each because IAM offers no narrower scope.
UNSCOPABLE = {
    ("StartCrawlerRole", "Tracing"): "X-Ray PutTraceSegments/PutTelemetryRecords take no resource",
    ("StartJobRole", "Tracing"): "X-Ray PutTraceSegments/PutTelemetryRecords take no resource",
    ("EtlJobRole", "JobMetrics"): "cloudwatch:PutMetricData takes no resource (namespace-conditioned)",
    ("StartJobRole", "WaitingFileMetric"): "cloudwatch:PutMetricData takes no resource (namespace too)",
    ("CrawlerRole", "SecurityConfiguration"): "glue:GetSecurityConfiguration takes no resource",
    ("AnalystRole", "LakeFormationData"): "lakeformation:GetDataAccess takes no resource (LakeFormation)",
}


def _ref(value) -> str | None:
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    return None


def test_raw_bucket_notifies_the_ingest_queue(app: SamApp):
    [queue_config] = app.resources["RawBucket"]["Properties"]["NotificationConfiguration"][
        "QueueConfigurations"]
    assert queue_config["Event"] == "s3:ObjectCreated:*"
    assert _ref(queue_config["Queue"]) == "IngestQueue"
    policy = app.resources["IngestQueuePolicy"]["Properties"]
    allow = next(s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow")
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert "aws:SourceArn" in allow["Condition"]["ArnEquals"]
    assert "aws:SourceAccount" in allow["Condition"]["StringEquals"]


def test_queue_drives_start_crawler_with_partial_batch_failures(app: SamApp):
    [mapping] = app.of_type("AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    assert _ref(props["EventSourceArn"]) == "IngestQueue"
    assert _ref(props["FunctionName"]) == "StartCrawlerFunction"
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert _ref(props["BatchSize"]) == "IngestBatchSize"
    assert _ref(props["MaximumBatchingWindowInSeconds"]) == "IngestBatchingWindowSeconds"
    assert _ref(props["ScalingConfig"]["MaximumConcurrency"]) == "IngestMaxConcurrency"


def test_ingest_queue_has_a_dlq_and_a_long_enough_visibility_timeout(app: SamApp):
    queue = app.resources["IngestQueue"]["Properties"]
    assert _ref(queue["RedrivePolicy"]["deadLetterTargetArn"]) == "IngestDLQ"
    defaults = app.parameter_defaults()
    assert defaults["IngestVisibilityTimeoutSeconds"] >= 6 * defaults["FunctionTimeoutSeconds"]
    # What Lambda requires (the create-time rules refuse less): visibility >= the function timeout.
    assert app.parameters["IngestVisibilityTimeoutSeconds"]["MinValue"] >= app.parameters[
        "FunctionTimeoutSeconds"]["MinValue"]


def _rules_targeting(app: SamApp, logical_id: str) -> dict[str, dict]:
    return {rid: r["Properties"] for rid, r in app.of_type("AWS::Events::Rule").items()
            if any(_ref(t["Arn"]) == logical_id for t in r["Properties"]["Targets"])}


def test_crawler_succeeded_rule_names_our_crawler_and_starts_the_job_function(app: SamApp):
    patterns = [p["EventPattern"] for p in _rules_targeting(app, "StartJobFunction").values()
                if "EventPattern" in p]
    crawler = next(p for p in patterns if p["detail-type"] == ["Glue Crawler State Change"])
    assert crawler["source"] == ["aws.glue"]
    # succeeded: claim what it catalogued; failed: its one email
    assert crawler["detail"] == {"crawlerName": [{"Ref": "RawCrawler"}], "state": ["Succeeded", "Failed"]}
    job = next(p for p in patterns if p["detail-type"] == ["Glue Job State Change"])
    assert job["detail"]["jobName"] == [{"Ref": "EtlJob"}]
    assert {"FAILED", "TIMEOUT", "STOPPED"} <= set(job["detail"]["state"])


def test_sweeper_schedule_targets_the_job_function(app: SamApp):
    schedules = [p for p in _rules_targeting(app, "StartJobFunction").values()
                 if "ScheduleExpression" in p]
    assert [_ref(s["ScheduleExpression"]) for s in schedules] == ["SweepSchedule"]


def test_one_rule_emails_each_run_and_failed_crawl_and_glue_states_are_not_emailed(app: SamApp):
    """One email per run: StartJobFunction's report, through NotifyRule; Glue's own job state
    change reaches only StartJobFunction (it would be a second email, with no counts)."""
    rules = _rules_targeting(app, "NotificationTopic")
    assert set(rules) == {"NotifyRule"}
    rule = rules["NotifyRule"]
    assert rule["EventPattern"] == {"source": [{"Fn::Sub": "sluice.${Stage}"}],
                                    "detail-type": ["Sluice Run Finished", "Sluice Crawl Failed"]}
    [target] = rule["Targets"]
    assert target["InputTransformer"] == {"InputPathsMap": {"message": "$.detail.message"},
                                          "InputTemplate": '"<message>"'}
    source = app.resources["StartJobFunction"]["Properties"]["Environment"]["Variables"]["EVENT_SOURCE"]
    assert source == {"Fn::Sub": "sluice.${Stage}"}


def test_the_topic_policy_has_no_condition_for_eventbridge(app: SamApp):
    """Finding 2: "You can't use Condition blocks in Amazon SNS topic policies for EventBridge"."""
    statements = app.resources["NotificationTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    events = [st for st in statements if st["Principal"] == {"Service": "events.amazonaws.com"}]
    assert events and all("Condition" not in st for st in events)


ALARMS = {  # alarm -> (namespace, metric, dimension value's resource)
    "IngestDLQAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "IngestDLQ"),
    "StartJobDLQAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "StartJobDLQ"),
    "StartCrawlerErrorsAlarm": ("AWS/Lambda", "Errors", "StartCrawlerFunction"),
    "StartJobErrorsAlarm": ("AWS/Lambda", "Errors", "StartJobFunction"),
    "StartCrawlerThrottlesAlarm": ("AWS/Lambda", "Throttles", "StartCrawlerFunction"),
    "StartJobThrottlesAlarm": ("AWS/Lambda", "Throttles", "StartJobFunction"),
    "CrawlerEndedDeliveryAlarm": ("AWS/Events", "FailedInvocations", "StartJobFunctionCrawlerEnded"),
    "JobRunEndedDeliveryAlarm": ("AWS/Events", "FailedInvocations", "StartJobFunctionJobRunEnded"),
    "SweepDeliveryAlarm": ("AWS/Events", "FailedInvocations", "StartJobFunctionSweep"),
    "NotifyDeliveryAlarm": ("AWS/Events", "FailedInvocations", "NotifyRule"),
    "OldestPendingFileAlarm": ("Sluice", "OldestWaitingFileAge", "FileLedger"),
    "OldestClaimedFileAlarm": ("Sluice", "OldestWaitingFileAge", "FileLedger"),
}


def test_every_alarm_a_user_would_expect_emails_the_topic_both_ways(app: SamApp):
    alarms = app.of_type("AWS::CloudWatch::Alarm")
    assert set(alarms) == set(ALARMS)
    rules = {rid for rid in app.of_type("AWS::Events::Rule")}
    watched = {_ref(a["Properties"]["Dimensions"][0]["Value"]) for a in alarms.values()
               if a["Properties"]["MetricName"] == "FailedInvocations"}
    assert watched == rules  # every rule's failed deliveries are watched
    for name, (namespace, metric, resource) in ALARMS.items():
        props = alarms[name]["Properties"]
        assert (props["Namespace"], props["MetricName"]) == (namespace, metric), name
        assert _ref(props["Dimensions"][0]["Value"]) == resource, name
        assert [_ref(a) for a in props["AlarmActions"]] == ["NotificationTopic"] == \
               [_ref(a) for a in props["OKActions"]], name
        assert props["AlarmName"]["Fn::Sub"].startswith("sluice-${Stage}-"), name  # the topic policy's


@pytest.mark.parametrize("resource",
                         ["FileLedger", "RawBucket", "ProcessedBucket", "ArtifactsBucket", "PipelineKey"])
def test_state_is_retained_when_the_stack_goes_or_a_resource_is_replaced(app: SamApp, resource: str):
    """Finding 9: deleting the stack, or changing Stage, must not delete the ledger, the data or the key."""
    assert app.resources[resource]["DeletionPolicy"] == "Retain"
    assert app.resources[resource]["UpdateReplacePolicy"] == "Retain"


def test_no_reserved_concurrency_unless_asked(app: SamApp):
    """Finding 4: a new account's reduced quota cannot reserve any (100 stay unreserved)."""
    defaults = app.parameter_defaults()
    assert defaults["StartCrawlerReservedConcurrency"] == defaults["StartJobReservedConcurrency"] == 0


def test_the_documented_deploy_is_the_one_that_publishes_the_job_code():
    """Finding 1: `make deploy` builds, deploys and publishes (tools/deploy.py, sluice.stack.steps), and
    the README and operations.md give that one command for the first deploy and every one after."""
    from sluice import ROOT
    from sluice.stack.steps import STEPS

    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ndeploy:", 1)[1].split("\n\n", 1)[0]
    assert "tools.deploy" in recipe and "sam deploy" not in recipe
    assert STEPS == ("build", "deploy", "publish")
    for page in ("README.md", "docs/operations.md"):
        text = (ROOT / page).read_text()
        assert "make deploy" in text and "sam build && sam deploy --guided" not in text, page


def test_etl_job_is_glue_5_with_the_script_the_publish_step_uploads(app: SamApp):
    from sluice.stack.publish import SCRIPT, SCRIPT_KEY

    job = app.resources["EtlJob"]["Properties"]
    assert job["GlueVersion"] == "5.0"
    assert job["Command"]["ScriptLocation"] == {"Fn::Sub": f"s3://${{ArtifactsBucket}}/{SCRIPT_KEY}"}
    assert SCRIPT.is_file()


@pytest.mark.parametrize("bucket", ["RawBucket", "ProcessedBucket", "ArtifactsBucket"])
def test_every_bucket_is_private_encrypted_and_tls_only(app: SamApp, bucket: str):
    props = app.resources[bucket]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    policy = next(r["Properties"] for r in app.of_type("AWS::S3::BucketPolicy").values()
                  if _ref(r["Properties"]["Bucket"]) == bucket)
    deny = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and s["Action"] == "s3:*"
               for s in deny)


def test_queues_are_encrypted(app: SamApp):
    for queue in app.of_type("AWS::SQS::Queue").values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True


def test_ledger_is_on_demand_with_pitr_and_sse(app: SamApp):
    props = app.resources["FileLedger"]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert {i["IndexName"] for i in props["GlobalSecondaryIndexes"]} == {"ByState", "ByRun"}


def test_no_role_uses_wildcard_resources_beyond_the_listed_exceptions(app: SamApp):
    roles = app.of_type("AWS::IAM::Role")
    assert set(roles) == {"StartCrawlerRole", "StartJobRole", "CrawlerRole", "EtlJobRole", "AnalystRole"}
    wildcard = set()
    for role_id, role in roles.items():
        assert "ManagedPolicyArns" not in role["Properties"], role_id
        for policy in role["Properties"]["Policies"]:
            # a conditional grant: check the grant each branch makes
            for statement in [b for s in policy["PolicyDocument"]["Statement"]
                              for b in (s["Fn::If"][1:] if "Fn::If" in s else [s])
                              if b != {"Ref": "AWS::NoValue"}]:
                resources = statement["Resource"]
                resources = resources if isinstance(resources, list) else [resources]
                if "*" in resources:
                    wildcard.add((role_id, statement["Sid"]))
                for action in [statement["Action"]] if isinstance(statement["Action"], str) else \
                        statement["Action"]:
                    assert not action.endswith(":*"), (role_id, action)
    assert wildcard == set(UNSCOPABLE)


def test_functions_use_the_explicit_roles_and_the_ledger_layer(app: SamApp):
    for fn, role in [("StartCrawlerFunction", "StartCrawlerRole"), ("StartJobFunction", "StartJobRole")]:
        props = app.resources[fn]["Properties"]
        assert _ref(props["Role"]) == role
        assert props["Runtime"] == "python3.11"
        assert next(_ref(layer) for layer in props["Layers"]).startswith("LedgerLayer")
