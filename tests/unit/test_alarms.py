"""CloudWatch alarm evaluation, as the CloudWatch user guide's tables state it ("How alarm state is
evaluated when data is missing"), and the runtime's evaluator on the emulator's metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sluice.aws.cloudwatch import AlarmEvaluator, AlarmSpec, decide, evaluation_range
from sluice.timeline import Timeline

X, OK_, _ = 5.0, 0.0, None  # breaching, not breaching, missing (threshold 1, >=)


def spec(n: int, m: int, treat: str) -> AlarmSpec:
    return AlarmSpec("a", "NS", "M", (), "Maximum", 60, n, m, 1.0, "GreaterThanOrEqualToThreshold", treat)


# The page's rows: data points oldest first, then the state for missing, ignore, breaching, notBreaching.
# ("retain" keeps the current state, here INSUFFICIENT_DATA.)
THREE_OF_THREE = [
    ([OK_, _, X, _, X], ("OK", "OK", "OK", "OK")),
    ([OK_, _, _, _, _], ("OK", "OK", "OK", "OK")),
    ([_, _, _, _, _], ("INSUFFICIENT_DATA", "retain", "ALARM", "OK")),
    ([OK_, X, X, _, X], ("ALARM", "ALARM", "ALARM", "ALARM")),
    ([_, _, _, _, X], ("INSUFFICIENT_DATA", "retain", "ALARM", "OK")),
    # ([X, _, _, _, _], ("ALARM", ...)): the page's one row not reproduced (see decide)
]
TWO_OF_THREE = [
    ([OK_, _, X, _, X], ("ALARM", "ALARM", "ALARM", "ALARM")),
    ([OK_, OK_, X, OK_, X], ("ALARM", "ALARM", "ALARM", "ALARM")),
    ([OK_, _, X, _, _], ("OK", "OK", "ALARM", "OK")),
    ([_, _, _, _, OK_], ("OK", "OK", "ALARM", "OK")),
    ([_, _, _, _, X], ("INSUFFICIENT_DATA", "retain", "ALARM", "OK")),
]


@pytest.mark.parametrize(
    ("m", "points", "states"), [(3, *row) for row in THREE_OF_THREE] + [(2, *row) for row in TWO_OF_THREE]
)
def test_the_user_guides_tables(m, points, states):
    for treat, expected in zip(("missing", "ignore", "breaching", "notBreaching"), states, strict=True):
        current = "INSUFFICIENT_DATA"
        assert decide(spec(3, m, treat), points, current) == (
            current if expected == "retain" else expected
        ), treat


def test_the_evaluation_range_is_period_aligned_and_ends_with_the_period_under_way():
    now = datetime(2026, 11, 25, 10, 0, 42, tzinfo=UTC)
    periods = evaluation_range(spec(1, 1, "ignore"), now)
    assert len(periods) == 3  # the alarm's one period and two more, as CloudWatch retrieves
    assert periods[-1] == (
        datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
        datetime(2026, 11, 25, 10, 1, tzinfo=UTC),
    )
    assert periods[0][0] == datetime(2026, 11, 25, 9, 58, tzinfo=UTC)


def test_the_evaluator_sets_the_state_from_the_metric_and_back(aws):
    cloudwatch = aws.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="sluice-local-dlq",
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": "dlq"}],
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="ignore",
    )
    evaluator = AlarmEvaluator(aws, Timeline(quiet=True))

    def sample(value: float, at: datetime) -> None:
        cloudwatch.put_metric_data(
            Namespace="AWS/SQS",
            MetricData=[
                {
                    "MetricName": "ApproximateNumberOfMessagesVisible",
                    "Dimensions": [{"Name": "QueueName", "Value": "dlq"}],
                    "Value": value,
                    "Timestamp": at,
                }
            ],
        )

    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    evaluator.evaluate(minute + timedelta(seconds=30))
    state = cloudwatch.describe_alarms()["MetricAlarms"][0]["StateValue"]
    assert state == "INSUFFICIENT_DATA"  # no data yet, and ignore keeps the state
    sample(1, minute + timedelta(seconds=10))
    evaluator.evaluate(minute + timedelta(seconds=30))
    assert cloudwatch.describe_alarms()["MetricAlarms"][0]["StateValue"] == "ALARM"
    sample(0, minute + timedelta(seconds=70))  # the next minute: empty again
    evaluator.evaluate(minute + timedelta(seconds=90))
    [alarm] = cloudwatch.describe_alarms()["MetricAlarms"]
    assert alarm["StateValue"] == "OK" and "[-, 1, 0]" in alarm["StateReason"]  # the range it read
    assert evaluator.transitions == [
        ("sluice-local-dlq", "INSUFFICIENT_DATA", "ALARM"),
        ("sluice-local-dlq", "ALARM", "OK"),
    ]
