"""EventBridge's input transformer in the emulator behaves as AWS documents it (escaped strings,
ISO 8601 `$.time`): a job error of any shape still reaches its targets."""

from __future__ import annotations

import json
import re

import pytest

from sluice.aws.emulator import Emulator
from sluice.stack.template import SamApp

MESSAGES = [
    "plain",
    "AnalysisException: [UNRESOLVED_COLUMN.WITH_SUGGESTION] `event_time` cannot be resolved.\n"
    "'Project ['event_time]\n+- Relation [user_id#1,ts#2] csv",
    'quotes " and backslashes \\ and a tab\t and a control \x01 character',
    "long " + "x" * 20000,
]


@pytest.mark.parametrize("message", MESSAGES, ids=["plain", "multi-line plan", "quotes", "long"])
def test_job_state_change_with_any_message_reaches_the_notification_target(aws: Emulator, app: SamApp,
                                                                          message: str) -> None:
    transformer = app.resources["JobStateRule"]["Properties"]["Targets"][0]["InputTransformer"]
    sqs, events = aws.client("sqs"), aws.client("events")
    url = sqs.create_queue(QueueName="notify")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="jobs", EventPattern=json.dumps({"source": ["aws.glue"]}))
    events.put_targets(Rule="jobs", Targets=[{"Id": "t", "Arn": arn, "InputTransformer": transformer}])

    detail = {"jobName": "sluice-etl", "state": "FAILED", "jobRunId": "jr_1", "message": message}
    answer = events.put_events(Entries=[{"Source": "aws.glue", "DetailType": "Glue Job State Change",
                                         "Detail": json.dumps(detail)}])
    assert answer["FailedEntryCount"] == 0

    [delivered] = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    text = json.loads(delivered["Body"])
    assert message in text
    assert re.search(r"ended FAILED at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\.", text), text[:200]
