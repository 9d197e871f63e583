"""What `sluice demo` prints first: timeline lines that stay whole without a terminal, Lambda
results in words, and the notification emails read back from the outbox as they were sent."""

from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from sluice.aws.account import REGION
from sluice.aws.sns import EmailOutbox, read_outbox
from sluice.timeline import Timeline, describe_result

RUN = {"run_id": "20261125T101500Z-ab12cd34", "job_run_id": "jr_4f2a9c0e1b7d3a5e6f8091a2b3c4d5e6",
       "manifest_uri": "s3://sluice-dev-artifacts/runs/20261125T101500Z-ab12cd34/manifest.json",
       "files": 4, "bytes": 3 * 1024 * 1024}


def test_a_timeline_line_is_not_wrapped_without_a_terminal(capsys):
    uri = "s3://sluice-dev-raw-123456789012-us-east-1/orders/region=eu/" + "x" * 80 + ".csv"
    Timeline().emit("s3", f"put {uri} [bold] {{\"a\": [1]}}")  # captured: not a terminal, 80 columns
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.rstrip("\n").endswith(f"put {uri} [bold] {{\"a\": [1]}}")  # text, not markup


@pytest.mark.parametrize(("result", "said"), [
    ({"runs": [RUN]}, "started 1 run: 20261125T101500Z-ab12cd34 (4 files, 3.0 MiB) as job run jr_4f2a9c0e1…"),
    ({"runs": [RUN, {**RUN, "run_id": "r-2", "files": 1, "bytes": 900}]},
     "started 2 runs: 20261125T101500Z-ab12cd34 (4 files, 3.0 MiB) as job run jr_4f2a9c0e1…; "
     "r-2 (1 file, 900 B) as job run jr_4f2a9c0e1…"),
    ({"runs": []}, "no run started (nothing to claim, or no free slot)"),
    ({"released": {"PENDING": 3, "FAILED": 1, "DONE": 0}}, "released the run's files: 3 PENDING, 1 FAILED"),
    ({"sweep": "crawler already running"}, "sweep: crawler already running"),
    ({"ignored": "not our job"}, "ignored: not our job"),
    ({"runs": [], "email": {"about": "r-1", "outcome": "PARTIAL", "sent": True}},
     "no run started (nothing to claim, or no free slot); emailed r-1: PARTIAL"),
    ({"released": {"PENDING": 2}, "email": {"about": "r-2", "outcome": "FAILED", "sent": False}},
     "released the run's files: 2 PENDING; already emailed r-2: FAILED"),
])
def test_lambda_results_in_words(result, said):
    assert describe_result(result) == said


def test_an_unknown_result_is_shown_whole():
    result = {"something": "new", "detail": "y" * 300}
    assert describe_result(result) == json.dumps(result)
    assert describe_result(None) == "null"


@pytest.fixture
def outbox(tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the session emulator's, if a test started it
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        arn = sns.create_topic(Name="sluice-dev-notifications",
                               Attributes={"DisplayName": "Sluice"})["TopicArn"]
        aws = SimpleNamespace(client=lambda service: boto3.client(service, region_name=REGION))
        yield EmailOutbox(aws, arn, tmp_path / "outbox", Timeline(quiet=True))


def test_read_outbox_gives_back_what_was_sent(outbox):
    first = "Sluice run 20261125T101500Z-ab12cd34 SUCCEEDED: 4 files, 28 in, 25 out\n\n"
    body = first + "région=eu ü-ñ 東京 " + "s3://sluice-dev-processed/orders/year=2026/" * 4 + "\n"
    outbox.write("ops@example.com", body)  # published without a Subject, as EventBridge publishes
    outbox.write("ops@example.com", "Sluice run r-2 FAILED\n", subject="ALARM: a subject of its own")
    [one, two] = read_outbox(outbox.outbox)
    assert (one.subject, one.body, one.recipient) == ("AWS Notification Message", body, "ops@example.com")
    assert one.sender == "Sluice <no-reply@sns.amazonaws.com>"
    assert two.subject == "ALARM: a subject of its own" and one.path.name < two.path.name
    assert one.text == f"{one.subject}\n{body}"
    assert b"\xe6\x9d\xb1\xe4\xba\xac" not in one.path.read_bytes()  # the file is encoded; the reader decodes


def test_no_outbox_yet_is_no_email(tmp_path):
    assert read_outbox(tmp_path / "outbox") == []
