"""IAM enforced locally: the evaluator, the ARNs a call is authorised on, the hook that answers a
denied call as AWS does, and the principals deployed from template.yaml."""

from __future__ import annotations

import threading

import boto3
import pytest
from botocore.exceptions import ClientError

from sluice.aws.account import ACCOUNT_ID
from sluice.aws.awslambda import as_role
from sluice.aws.iam import Decision, Policy, Principal, evaluate
from sluice.aws.iam_audit import Audit
from sluice.aws.iam_hook import Enforcer, acting_as
from sluice.aws.iam_requests import authorization
from sluice.stack.deploy import deploy
from sluice.stack.resolve import local_parameters

TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT_ID}:table/ledger"
BUCKET = "arn:aws:s3:::raw"


def role(*statements: dict) -> Principal:
    return Principal("TestRole", f"arn:aws:iam::{ACCOUNT_ID}:role/test",
                     [Policy("inline", {"Version": "2012-10-17", "Statement": list(statements)})])


def allow(action, resource="*", **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


CASES = [
    # (why, statements, action, resource, context, allowed)
    ("default deny", [], "s3:GetObject", f"{BUCKET}/a", {}, False),
    ("action wildcard", [allow("s3:Get*", f"{BUCKET}/*")], "s3:GetObject", f"{BUCKET}/a/b.csv", {}, True),
    ("action names ignore case", [allow("S3:getobject", f"{BUCKET}/*")], "s3:GetObject", f"{BUCKET}/a", {},
     True),
    ("resource ARNs do not", [allow("s3:GetObject", "arn:aws:s3:::RAW/*")], "s3:GetObject", f"{BUCKET}/a",
     {}, False),
    ("? is one character", [allow("s3:GetObject", f"{BUCKET}/day=0?/*")], "s3:GetObject",
     f"{BUCKET}/day=07/f.csv", {}, True),
    ("? is not two", [allow("s3:GetObject", f"{BUCKET}/day=0?/*")], "s3:GetObject",
     f"{BUCKET}/day=107/f.csv", {}, False),
    ("a dot is a dot", [allow("s3:GetObject", "arn:aws:s3:::my.bucket/*")], "s3:GetObject",
     "arn:aws:s3:::myxbucket/k", {}, False),
    ("object grant is not a bucket grant", [allow("s3:ListBucket", f"{BUCKET}/*")], "s3:ListBucket", BUCKET,
     {}, False),
    ("NotAction allows the rest", [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}],
     "s3:PutObject", f"{BUCKET}/a", {}, True),
    ("NotAction excludes its own", [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}],
     "iam:CreateRole", "*", {}, False),
    ("NotResource", [{"Effect": "Allow", "Action": "s3:*", "NotResource": f"{BUCKET}/secret/*"}],
     "s3:GetObject", f"{BUCKET}/secret/k", {}, False),
    ("NotResource elsewhere", [{"Effect": "Allow", "Action": "s3:*", "NotResource": f"{BUCKET}/secret/*"}],
     "s3:GetObject", f"{BUCKET}/open/k", {}, True),
    ("explicit deny wins", [allow("s3:*"), deny("s3:DeleteObject", f"{BUCKET}/*")], "s3:DeleteObject",
     f"{BUCKET}/a", {}, False),
    ("table grant does not cover its index", [allow("dynamodb:Query", TABLE)], "dynamodb:Query",
     f"{TABLE}/index/ByRun", {}, False),
    ("index grant", [allow("dynamodb:Query", f"{TABLE}/index/*")], "dynamodb:Query", f"{TABLE}/index/ByRun",
     {}, True),
    ("StringEquals holds", [allow("cloudwatch:PutMetricData", Condition={"StringEquals": {
        "cloudwatch:namespace": "Glue"}})], "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "Glue"},
     True),
    ("StringEquals fails", [allow("cloudwatch:PutMetricData", Condition={"StringEquals": {
        "cloudwatch:namespace": "Glue"}})], "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "Mine"},
     False),
    ("a missing key fails a positive operator", [allow("cloudwatch:PutMetricData", Condition={
        "StringEquals": {"cloudwatch:namespace": "Glue"}})], "cloudwatch:PutMetricData", "*", {}, False),
    ("a negated operator fails on a match", [allow("s3:GetObject", Condition={
        "StringNotEquals": {"aws:PrincipalAccount": ACCOUNT_ID}})], "s3:GetObject", f"{BUCKET}/a", {}, False),
    ("ArnNotLike passes another ARN", [allow("sns:Publish", Condition={"ArnNotLike": {
        "aws:SourceArn": "arn:aws:events:*:*:rule/other-*"}})], "sns:Publish", "*",
     {"aws:SourceArn": "arn:aws:events:us-east-1:1:rule/sluice-job"}, True),
    ("a missing key passes a negated operator", [allow("s3:GetObject", Condition={
        "StringNotEquals": {"s3:ExistingObjectTag/x": "y"}})], "s3:GetObject", f"{BUCKET}/a", {}, True),
    ("IfExists passes a missing key", [allow("s3:GetObject", Condition={
        "StringEqualsIfExists": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}})], "s3:GetObject",
     f"{BUCKET}/a", {}, True),
    ("condition key names ignore case", [allow("kms:Decrypt", Condition={
        "StringEquals": {"KMS:viaservice": "sns.us-east-1.amazonaws.com"}})], "kms:Decrypt", "*",
     {"kms:ViaService": "sns.us-east-1.amazonaws.com"}, True),
    ("StringLike", [allow("s3:ListBucket", BUCKET, Condition={"StringLike": {"s3:prefix": "orders/*"}})],
     "s3:ListBucket", BUCKET, {"s3:prefix": "orders/2024/"}, True),
    ("ArnLike per part", [allow("sns:Publish", Condition={"ArnLike": {
        "aws:SourceArn": "arn:aws:events:*:*:rule/sluice-*"}})], "sns:Publish", "*",
     {"aws:SourceArn": f"arn:aws:events:us-east-1:{ACCOUNT_ID}:rule/sluice-job"}, True),
    ("ArnEquals any of a list", [allow("sns:Publish", Condition={"ArnEquals": {
        "aws:SourceArn": ["arn:aws:events:us-east-1:1:rule/a", "arn:aws:events:us-east-1:1:rule/b"]}})],
     "sns:Publish", "*", {"aws:SourceArn": "arn:aws:events:us-east-1:1:rule/c"}, False),
    ("TLS-only deny does not fire locally", [allow("s3:*"), deny("s3:*", Condition={
        "Bool": {"aws:SecureTransport": "false"}})], "s3:GetObject", f"{BUCKET}/a", {}, True),
    ("Null: key absent", [allow("s3:GetObject", Condition={"Null": {"aws:SourceArn": "true"}})],
     "s3:GetObject", f"{BUCKET}/a", {}, True),
    ("Null: key present", [allow("s3:GetObject", Condition={"Null": {"aws:SourceArn": "true"}})],
     "s3:GetObject", f"{BUCKET}/a", {"aws:SourceArn": "arn:aws:s3:::x"}, False),
]


@pytest.mark.parametrize(("statements", "action", "resource", "context", "allowed"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_identity_policy_evaluation(statements, action, resource, context, allowed):
    assert evaluate(role(*statements), action, resource, context).allowed is allowed


def test_the_decision_names_its_statement():
    principal = role({"Sid": "Read", **allow("s3:GetObject", f"{BUCKET}/*")},
                     {"Sid": "NoSecrets", **deny("s3:GetObject", f"{BUCKET}/secret/*")})
    assert evaluate(principal, "s3:GetObject", f"{BUCKET}/a").statement == "inline/Read"
    assert evaluate(principal, "s3:GetObject", f"{BUCKET}/secret/a").statement == "inline/NoSecrets"
    assert evaluate(principal, "s3:PutObject", f"{BUCKET}/a").reason == "implicit deny"


def test_an_operator_not_evaluated_locally_is_refused_not_passed():
    principal = role(allow("s3:GetObject", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))
    with pytest.raises(ValueError, match="IpAddress"):
        evaluate(principal, "s3:GetObject", f"{BUCKET}/a", {"aws:SourceIp": "10.1.2.3"})


QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}:ingest"
S3_SERVICE = Principal("s3.amazonaws.com", "s3.amazonaws.com", service="s3.amazonaws.com")
QUEUE_POLICY = {"Statement": [{
    "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage",
    "Resource": QUEUE, "Condition": {"ArnEquals": {"aws:SourceArn": BUCKET},
                                     "StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}}]}


@pytest.mark.parametrize(("source", "account", "allowed"), [
    (BUCKET, ACCOUNT_ID, True), ("arn:aws:s3:::elsewhere", ACCOUNT_ID, False),
    (BUCKET, "999999999999", False)])
def test_a_resource_policy_lets_a_service_in_on_its_conditions(source, account, allowed):
    context = {"aws:SourceArn": source, "aws:SourceAccount": account}
    assert evaluate(S3_SERVICE, "sqs:SendMessage", QUEUE, context, QUEUE_POLICY).allowed is allowed


def test_a_resource_policy_allow_suffices_within_the_account_and_its_deny_wins():
    principal = role()
    named = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": principal.arn},
                            "Action": "sqs:ReceiveMessage", "Resource": QUEUE}]}
    assert evaluate(principal, "sqs:ReceiveMessage", QUEUE, resource_policy=named).allowed
    denying = {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": QUEUE}]}
    assert not evaluate(role(allow("sqs:*")), "sqs:ReceiveMessage", QUEUE, resource_policy=denying).allowed


def test_a_key_policy_must_enable_iam_policies():
    key = f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/k"
    principal = role(allow("kms:Decrypt", key))
    only_events = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                                  "Action": "kms:*", "Resource": "*"}]}
    enabling = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                               "Action": "kms:*", "Resource": "*"}]}
    assert not evaluate(principal, "kms:Decrypt", key, resource_policy=only_events).allowed
    assert evaluate(principal, "kms:Decrypt", key, resource_policy=enabling).allowed
    assert not evaluate(role(), "kms:Decrypt", key, resource_policy=enabling).allowed


GLUE = f"arn:aws:glue:us-east-1:{ACCOUNT_ID}"


@pytest.mark.parametrize(("service", "operation", "params", "expected"), [
    ("s3", "ListObjectsV2", {"Bucket": "raw", "Prefix": "a/"}, [("s3:ListBucket", BUCKET)]),
    ("s3", "GetObject", {"Bucket": "raw", "Key": "a/b.csv"}, [("s3:GetObject", f"{BUCKET}/a/b.csv")]),
    ("s3", "HeadObject", {"Bucket": "raw", "Key": "k", "VersionId": "v"},
     [("s3:GetObjectVersion", f"{BUCKET}/k")]),
    ("s3", "UploadPart", {"Bucket": "raw", "Key": "k", "PartNumber": 1, "UploadId": "u"},
     [("s3:PutObject", f"{BUCKET}/k")]),
    ("s3", "DeleteObjects", {"Bucket": "raw", "Delete": {"Objects": [{"Key": "a"}, {"Key": "b"}]}},
     [("s3:DeleteObject", f"{BUCKET}/a"), ("s3:DeleteObject", f"{BUCKET}/b")]),
    ("dynamodb", "UpdateItem", {"TableName": "ledger", "Key": {}}, [("dynamodb:UpdateItem", TABLE)]),
    ("dynamodb", "Query", {"TableName": "ledger", "IndexName": "ByState"},
     [("dynamodb:Query", f"{TABLE}/index/ByState")]),
    ("glue", "GetPartitions", {"DatabaseName": "db", "TableName": "t"},
     [("glue:GetPartitions", f"{GLUE}:catalog"), ("glue:GetPartitions", f"{GLUE}:database/db"),
      ("glue:GetPartitions", f"{GLUE}:table/db/t")]),
    ("glue", "CreateTable", {"DatabaseName": "db", "TableInput": {"Name": "t"}},
     [("glue:CreateTable", f"{GLUE}:catalog"), ("glue:CreateTable", f"{GLUE}:database/db"),
      ("glue:CreateTable", f"{GLUE}:table/db/t")]),
    ("glue", "GetTables", {"DatabaseName": "db"},
     [("glue:GetTables", f"{GLUE}:catalog"), ("glue:GetTables", f"{GLUE}:database/db"),
      ("glue:GetTables", f"{GLUE}:table/db/*")]),
    ("glue", "ListCrawls", {"CrawlerName": "raw"}, [("glue:ListCrawls", f"{GLUE}:crawler/raw")]),
    ("glue", "GetJobRuns", {"JobName": "etl"}, [("glue:GetJobRuns", f"{GLUE}:job/etl")]),
    ("sqs", "DeleteMessageBatch", {"QueueUrl": f"http://127.0.0.1:5000/{ACCOUNT_ID}/ingest", "Entries": []},
     [("sqs:DeleteMessage", QUEUE)]),
    ("sns", "Publish", {"TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": "m"},
     [("sns:Publish", "arn:aws:sns:us-east-1:1:t")]),
    ("events", "PutEvents", {"Entries": [{"Source": "x"}]},
     [("events:PutEvents", f"arn:aws:events:us-east-1:{ACCOUNT_ID}:event-bus/default")]),
    ("athena", "StartQueryExecution", {"QueryString": "select 1"}, [("athena:StartQueryExecution", "*")]),
])
def test_what_a_call_is_authorised_on(service, operation, params, expected):
    assert authorization(service, operation, params, ACCOUNT_ID, "us-east-1") == expected


# --- the hook, against the emulator ------------------------------------------------------------
@pytest.fixture
def enforced(aws):
    """An enforcer on a session of this test's own (the default session stays unchecked)."""
    aws.client("s3").create_bucket(Bucket="raw")
    aws.client("s3").put_object(Bucket="raw", Key="a/present.csv", Body=b"x")
    session = boto3.session.Session()
    audit = Audit()
    Enforcer(audit).install(session)
    yield session, audit
    Enforcer.uninstall()


READER = role({"Sid": "Read", **allow("s3:GetObject", f"{BUCKET}/*")})
LISTER = role(allow("s3:GetObject", f"{BUCKET}/*"), allow("s3:ListBucket", BUCKET))


@pytest.mark.parametrize(("principal", "operation", "code"), [
    (READER, "get_object", "AccessDenied"), (READER, "head_object", "403"),
    (LISTER, "get_object", "NoSuchKey"), (LISTER, "head_object", "404")])
def test_a_missing_key_is_403_without_list_bucket(enforced, principal, operation, code):
    session, audit = enforced
    with acting_as(principal):
        s3 = session.client("s3")
        getattr(s3, operation)(Bucket="raw", Key="a/present.csv")
        with pytest.raises(ClientError) as error:
            getattr(s3, operation)(Bucket="raw", Key="a/missing.csv")
    assert error.value.response["Error"]["Code"] == code
    # S3 asked for s3:ListBucket only about the missing key
    assert [c.action for c in audit.calls()] == ["s3:GetObject", "s3:GetObject", "s3:ListBucket"]


def test_a_handler_runs_as_its_role(enforced):
    session, audit = enforced

    def handler(event, context):
        return session.client("s3").list_objects_v2(Bucket="raw")["KeyCount"]

    assert as_role(handler, LISTER)({}, None) == 1
    assert [(c.principal, c.action) for c in audit.calls()] == [("TestRole", "s3:ListBucket")]
    with pytest.raises(ClientError):
        as_role(handler, READER)({}, None)


def test_a_denied_call_answers_as_aws_and_is_audited(enforced):
    session, audit = enforced
    with acting_as(READER), pytest.raises(ClientError) as error:
        session.client("s3").put_object(Bucket="raw", Key="a/new.csv", Body=b"y")
    assert error.value.response["Error"]["Code"] == "AccessDenied"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "is not authorized to perform: s3:PutObject" in error.value.response["Error"]["Message"]
    [denied] = audit.denied()
    assert (denied.principal, denied.action) == ("TestRole", "s3:PutObject")
    assert denied.resource == f"{BUCKET}/a/new.csv"
    listed = session.client("s3").list_objects_v2(Bucket="raw")["Contents"]
    assert "a/new.csv" not in [o["Key"] for o in listed]


def test_calls_outside_any_principal_are_not_checked(enforced):
    session, audit = enforced
    session.client("s3").put_object(Bucket="raw", Key="a/admin.csv", Body=b"z")
    assert audit.calls() == []


def test_a_client_keeps_its_principal_in_threads_it_starts(enforced, tmp_path):
    session, audit = enforced
    with acting_as(READER):
        s3 = session.client("s3")  # made inside: upload_file's worker threads act as READER too
    (tmp_path / "f.csv").write_text("x")
    errors: list[Exception] = []

    def upload() -> None:
        try:
            s3.upload_file(str(tmp_path / "f.csv"), "raw", "a/uploaded.csv")
        except Exception as e:  # the test inspects it
            errors.append(e)

    thread = threading.Thread(target=upload)
    thread.start()
    thread.join()
    assert errors and [c.action for c in audit.denied()] == ["s3:PutObject"]


def test_delete_objects_deletes_what_is_allowed_and_reports_the_rest(enforced):
    session, _ = enforced
    deleter = role(allow("s3:DeleteObject", f"{BUCKET}/tmp/*"))
    for key in ("tmp/1", "keep/2"):
        session.client("s3").put_object(Bucket="raw", Key=key, Body=b"x")
    request = {"Objects": [{"Key": "tmp/1"}, {"Key": "keep/2"}]}
    with acting_as(deleter):
        answer = session.client("s3").delete_objects(Bucket="raw", Delete=request)
    assert [d["Key"] for d in answer["Deleted"]] == ["tmp/1"]
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("keep/2", "AccessDenied")]
    assert len(request["Objects"]) == 2  # the caller's request is left as it was
    keys = [o["Key"] for o in session.client("s3").list_objects_v2(Bucket="raw")["Contents"]]
    assert "keep/2" in keys and "tmp/1" not in keys


def test_unused_grants_are_the_ones_no_call_matched(enforced):
    session, audit = enforced
    with acting_as(LISTER):
        session.client("s3").list_objects_v2(Bucket="raw")
    assert audit.unused_grants() == {"TestRole": [("inline/0", "s3:GetObject", f"{BUCKET}/*")]}


def test_a_grant_first_used_after_it_was_reported_unused_is_then_used():
    """unused_grants matches only the kinds of call made since it was last asked: a grant used
    later leaves the list, one used earlier stays off it."""
    reader = Principal("Reader", "arn:aws:iam::123456789012:role/reader", [Policy("inline", {
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                       "Resource": ["arn:aws:s3:::raw", "arn:aws:s3:::raw/*"]}]})])
    audit = Audit({"Reader": reader})
    allowed = Decision(True, "inline/0", "allowed")
    audit.record(reader, "s3.ListObjectsV2", "s3:ListBucket", "arn:aws:s3:::raw", allowed)
    assert audit.unused_grants()["Reader"] == [
        ("inline/0", "s3:GetObject", "arn:aws:s3:::raw"), ("inline/0", "s3:GetObject", "arn:aws:s3:::raw/*"),
        ("inline/0", "s3:ListBucket", "arn:aws:s3:::raw/*")]
    audit.record(reader, "s3.GetObject", "s3:GetObject", "arn:aws:s3:::raw/a.csv", allowed)
    audit.record(reader, "s3.GetObject", "s3:GetObject", "arn:aws:s3:::raw/b.csv",
                 Decision(False, None, "implicit deny"))  # a denied call uses no grant
    assert audit.unused_grants()["Reader"] == [
        ("inline/0", "s3:GetObject", "arn:aws:s3:::raw"), ("inline/0", "s3:ListBucket", "arn:aws:s3:::raw/*")]
    assert audit.unused_grants()["Reader"] == [
        ("inline/0", "s3:GetObject", "arn:aws:s3:::raw"), ("inline/0", "s3:ListBucket", "arn:aws:s3:::raw/*")]


# --- the principals of template.yaml -----------------------------------------------------------
@pytest.fixture
def stack(aws, app):
    return deploy(aws, app, local_parameters())


def test_each_function_crawler_and_job_runs_as_its_role(stack):
    assert {lid: p.name for lid, p in stack.principals.items()} == {
        "StartCrawlerFunction": "StartCrawlerRole", "StartJobFunction": "StartJobRole",
        "RawCrawler": "CrawlerRole", "EtlJob": "EtlJobRole"}


def test_etl_job_role_marks_files_done_and_queries_only_its_run_index(stack):
    etl, table = stack.principals["EtlJob"], stack.arns["FileLedger"]
    assert evaluate(etl, "dynamodb:UpdateItem", table).statement == "etl/LedgerDone"
    # A Query on an index is authorised against the index ARN: the table's grant does not cover
    # ByRun (the defect the template's LedgerRunFiles statement fixed), and ByState is not granted.
    assert evaluate(etl, "dynamodb:Query", f"{table}/index/ByRun").statement == "etl/LedgerRunFiles"
    assert not evaluate(etl, "dynamodb:Query", f"{table}/index/ByState").allowed
    assert not evaluate(etl, "dynamodb:Query", table).allowed


def test_run_records_and_file_items_are_granted_apart_by_their_leading_key(stack):
    """dynamodb:LeadingKeys: StartJobFunction reads and drops run records (run#...), never file
    items; the job reads file items for its claim check (s3://...), never run records."""
    start_job, etl = stack.principals["StartJobFunction"], stack.principals["EtlJob"]
    table = stack.arns["FileLedger"]
    run, file = {"dynamodb:LeadingKeys": ["run#run-1"]}, {"dynamodb:LeadingKeys": ["s3://raw/a.csv#e"]}
    assert evaluate(start_job, "dynamodb:GetItem", table, run).allowed
    assert evaluate(start_job, "dynamodb:DeleteItem", table, run).allowed
    assert not evaluate(start_job, "dynamodb:DeleteItem", table, file).allowed
    assert not evaluate(start_job, "dynamodb:GetItem", table, file).allowed
    assert evaluate(etl, "dynamodb:BatchGetItem", table, file).allowed
    both = {"dynamodb:LeadingKeys": ["s3://a#e", "run#r"]}
    assert not evaluate(etl, "dynamodb:BatchGetItem", table, both).allowed
    assert authorization("dynamodb", "GetItem", {"TableName": "t", "Key": {"file_id": "run#r"}}) == [
        ("dynamodb:GetItem", f"arn:aws:dynamodb:us-east-1:{ACCOUNT_ID}:table/t")]


def test_the_conditional_lookup_grant_names_the_lookup_object(stack):
    [statement] = [s for s in stack.roles["EtlJobRole"].policies[0].document["Statement"]
                   if s.get("Sid") == "LookupTable"]
    lookup = local_parameters()["LookupUri"].removeprefix("s3://")
    assert statement["Resource"] == f"arn:aws:s3:::{lookup}"


def test_template_grants_name_their_resources(stack):
    start_job, crawler = stack.principals["StartJobFunction"], stack.principals["RawCrawler"]
    topic, raw = stack.names["NotificationTopic"], stack.names["RawBucket"]
    bus = f"arn:aws:events:us-east-1:{ACCOUNT_ID}:event-bus/default"
    assert evaluate(start_job, "events:PutEvents", bus, {"events:source": "sluice.local"}).allowed
    assert not evaluate(start_job, "events:PutEvents", bus, {"events:source": "aws.glue"}).allowed
    assert not evaluate(start_job, "sns:Publish", topic).allowed  # its emails go through NotifyRule
    assert evaluate(crawler, "s3:GetObject", f"arn:aws:s3:::{raw}/orders/x.csv").allowed
    assert not evaluate(crawler, "s3:PutObject", f"arn:aws:s3:::{raw}/orders/x.csv").allowed
    metrics = {"cloudwatch:namespace": "Glue"}
    assert evaluate(stack.principals["EtlJob"], "cloudwatch:PutMetricData", "*", metrics).allowed
    assert not evaluate(stack.principals["EtlJob"], "cloudwatch:PutMetricData", "*",
                        {"cloudwatch:namespace": "Other"}).allowed


def test_resource_policies_let_the_services_deliver(stack):
    queue, raw = stack.arns["IngestQueue"], stack.arns["RawBucket"]
    s3_delivery = {"aws:SourceArn": raw, "aws:SourceAccount": ACCOUNT_ID}
    assert evaluate(S3_SERVICE, "sqs:SendMessage", queue, s3_delivery,
                    stack.resource_policies[queue]).allowed
    events = Principal("events.amazonaws.com", "events.amazonaws.com", service="events.amazonaws.com")
    function = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{stack.functions['StartJobFunction'].name}"
    from_rule = {"aws:SourceArn": stack.arns["StartJobFunctionSweep"]}
    assert evaluate(events, "lambda:InvokeFunction", function, from_rule,
                    stack.resource_policies[function]).allowed
    key = stack.arns["PipelineKey"]
    assert evaluate(events, "kms:GenerateDataKey", key, {"aws:SourceAccount": ACCOUNT_ID},
                    stack.resource_policies[key]).allowed
    topic = stack.names["NotificationTopic"]
    # EventBridge asks with no condition keys at all ("You can't use Condition blocks ...")
    assert evaluate(events, "sns:Publish", topic, {}, stack.resource_policies[topic]).allowed
    service = "cloudwatch.amazonaws.com"
    cloudwatch = Principal(service, service, service=service)
    alarm = {"aws:SourceArn": stack.arns["IngestDLQAlarm"], "aws:SourceAccount": ACCOUNT_ID}
    assert evaluate(cloudwatch, "sns:Publish", topic, alarm, stack.resource_policies[topic]).allowed
    assert evaluate(cloudwatch, "kms:Decrypt", key, alarm, stack.resource_policies[key]).allowed
    elsewhere = {"aws:SourceArn": f"arn:aws:cloudwatch:us-east-1:{ACCOUNT_ID}:alarm:someone-else"}
    assert not evaluate(cloudwatch, "sns:Publish", topic, elsewhere, stack.resource_policies[topic]).allowed


def test_put_events_carries_its_source_and_detail_type_as_condition_keys(stack):
    """EventBridge user guide, "Using IAM policy conditions": events:source and events:detail-type.
    StartJobRole may put this stage's source only (without the key, every report was denied)."""
    from sluice.aws.iam_requests import request_keys

    entries = {"Entries": [{"Source": "sluice.local", "DetailType": "Sluice Run Finished", "Detail": "{}"}]}
    keys = request_keys("events", "PutEvents", entries)
    assert keys == {"events:source": ["sluice.local"], "events:detail-type": ["Sluice Run Finished"]}
    bus = f"arn:aws:events:us-east-1:{ACCOUNT_ID}:event-bus/default"
    assert evaluate(stack.principals["StartJobFunction"], "events:PutEvents", bus, keys).allowed
