"""EventBridge's input transformer in the emulator, as strict as AWS documents it: a string value is
put in unescaped ("EventBridge doesn't escape values extracted by Input Path"), so a template that
quotes free text is invalid JSON for some messages - the target gets nothing and the rule's
FailedInvocations counts it - while NotifyRule's template stays valid JSON whatever the run's
message holds (run_summary.plain)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sluice.aws.emulator import Emulator
from sluice.stack.template import SamApp

from run_summary import Place, RunEnd, run_report  # isort: skip  (functions/start_job is on sys.path)

MESSAGES = [
    "plain",
    "AnalysisException: [UNRESOLVED_COLUMN.WITH_SUGGESTION] `event_time` cannot be resolved.\n"
    "'Project ['event_time]\n+- Relation [user_id#1,ts#2] csv",
    'quotes " and backslashes \\ and a tab\t and a control \x01 character',
    "unicode naïve Ünïcødé ✓",
    "long " + "x" * 20000,
]


def _rule_to_queue(aws: Emulator, transformer: dict, source: str) -> str:
    sqs, events = aws.client("sqs"), aws.client("events")
    url = sqs.create_queue(QueueName="notify")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="notify", EventPattern=json.dumps({"source": [source]}))
    events.put_targets(Rule="notify", Targets=[{"Id": "t", "Arn": arn, "InputTransformer": transformer}])
    return url


def _failed_invocations(aws: Emulator) -> float:
    now = datetime.now(UTC)
    points = aws.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Events",
        MetricName="FailedInvocations",
        Dimensions=[{"Name": "RuleName", "Value": "notify"}],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        Period=600,
        Statistics=["Sum"],
    )
    return sum(p["Sum"] for p in points["Datapoints"])


@pytest.mark.parametrize("message", MESSAGES, ids=["plain", "multi-line plan", "quotes", "unicode", "long"])
def test_a_run_email_of_any_glue_message_reaches_the_topic_as_composed(
    aws: Emulator, app: SamApp, message: str
) -> None:
    transformer = app.resources["NotifyRule"]["Properties"]["Targets"][0]["InputTransformer"]
    url = _rule_to_queue(aws, transformer, "sluice.test")
    report = run_report(
        RunEnd("jr_1", "FAILED", message), "run-1", None, Place("p", "db", "etl"), {"PENDING": 1}
    )
    answer = aws.client("events").put_events(
        Entries=[
            {"Source": "sluice.test", "DetailType": report.detail_type, "Detail": json.dumps(report.detail)}
        ]
    )
    assert answer["FailedEntryCount"] == 0
    [delivered] = aws.client("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    # The topic's message is the target input as it is: the JSON string, quotes included.
    assert delivered["Body"] == json.dumps(report.message, ensure_ascii=False)
    assert json.loads(delivered["Body"]) == report.message and _failed_invocations(aws) == 0


@pytest.mark.parametrize("message", MESSAGES[1:3], ids=["multi-line plan", "quotes"])
def test_a_template_quoting_free_text_fails_to_deliver_as_on_aws(aws: Emulator, message: str) -> None:
    """Finding 3: the old JobStateRule template put Glue's message between quotes."""
    url = _rule_to_queue(
        aws,
        {"InputPathsMap": {"message": "$.detail.message"}, "InputTemplate": '"Glue says: <message>"'},
        "aws.glue",
    )
    answer = aws.client("events").put_events(
        Entries=[
            {
                "Source": "aws.glue",
                "DetailType": "Glue Job State Change",
                "Detail": json.dumps({"message": message}),
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0  # PutEvents took it; the delivery is what fails
    assert aws.client("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []) == []
    assert _failed_invocations(aws) == 1


def test_an_unquoted_variable_comes_out_as_json_and_time_as_iso_8601(aws: Emulator) -> None:
    url = _rule_to_queue(
        aws,
        {
            "InputPathsMap": {"m": "$.detail.message", "t": "$.time"},
            "InputTemplate": '{"message": <m>, "at": "<t>"}',
        },
        "aws.glue",
    )
    aws.client("events").put_events(
        Entries=[{"Source": "aws.glue", "DetailType": "x", "Detail": json.dumps({"message": 'say "hi"'})}]
    )
    [delivered] = aws.client("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    body = json.loads(delivered["Body"])
    assert body["message"] == 'say "hi"' and datetime.strptime(body["at"], "%Y-%m-%dT%H:%M:%SZ")
