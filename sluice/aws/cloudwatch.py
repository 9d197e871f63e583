"""CloudWatch alarms, evaluated from their metrics as CloudWatch evaluates them.

moto stores metric data and alarms but never evaluates an alarm. Here an evaluator thread does,
every few seconds: for each alarm it reads its metric's statistic for each period of the
evaluation range, decides the state by the rules of "Using Amazon CloudWatch alarms" (CloudWatch
user guide, "Evaluating an alarm" and "How alarm state is evaluated when data is missing"), and
sets it on the alarm (SetAlarmState), where `sluice status` and DescribeAlarms read it. On a change
of state, CloudWatch publishes to the alarm's actions as cloudwatch.amazonaws.com: that delivery is
authorised against the topic policy and the topic's key policy, and a denial is audited (it fails
`make run`). The notification itself is not written to the outbox: CloudWatch formats it for email
itself, in a form this runtime does not reproduce.

    >>> spec = AlarmSpec("dlq", "AWS/SQS", "ApproximateNumberOfMessagesVisible", (), "Maximum", 60, 1, 1,
    ...                  1.0, "GreaterThanOrEqualToThreshold", "ignore")
    >>> decide(spec, [None, 0.0, 2.0], "OK"), decide(spec, [2.0, 0.0, None], "ALARM")
    ('ALARM', 'OK')
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice.aws import iam_hook
from sluice.aws.account import ACCOUNT_ID, REGION
from sluice.aws.moto_patch import replace, utc
from sluice.timeline import Timeline

# "CloudWatch attempts to retrieve a higher number of data points than specified by Evaluation
# Periods" - five for an alarm of three in the page's examples: two more than the alarm evaluates.
EXTRA_PERIODS = 2

_COMPARE = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


@dataclass(frozen=True)
class AlarmSpec:
    name: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str  # Sum | Maximum | Minimum | Average | SampleCount
    period: int  # seconds
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    treat_missing: str  # missing | ignore | breaching | notBreaching

    @classmethod
    def of(cls, alarm: dict[str, Any]) -> AlarmSpec:
        """From a DescribeAlarms MetricAlarms entry."""
        return cls(alarm["AlarmName"], alarm["Namespace"], alarm["MetricName"],
                   tuple((d["Name"], d["Value"]) for d in alarm.get("Dimensions", [])),
                   alarm["Statistic"], int(alarm["Period"]), int(alarm["EvaluationPeriods"]),
                   int(alarm.get("DatapointsToAlarm") or alarm["EvaluationPeriods"]),
                   float(alarm["Threshold"]), alarm["ComparisonOperator"],
                   alarm.get("TreatMissingData") or "missing")

    def breaching(self, value: float) -> bool:
        return _COMPARE[self.comparison](value, self.threshold)


def decide(spec: AlarmSpec, values: list[float | None], current: str) -> str:
    """The alarm's state from the values of its evaluation range, oldest first (None: no data for
    that period), and its current state. As the user guide states it:
    - at least Evaluation Periods real values: the most recent of them decide;
    - fewer: every real value counts, and the rest are filled by the missing-data treatment
      (breaching, notBreaching); with `missing` or `ignore` nothing is filled: the real values give
      ALARM if enough breach, OK if any does not, and otherwise INSUFFICIENT_DATA (`missing`) or
      the current state (`ignore`) - as the page's tables show, but for the one row that goes to
      ALARM on a single old breaching point with `missing`, which is not reproduced;
    - ALARM when at least Datapoints to Alarm of the evaluated points breach, else OK."""
    real = [v for v in values if v is not None]
    n, m = spec.evaluation_periods, spec.datapoints_to_alarm
    if len(real) >= n:
        flags = [spec.breaching(v) for v in real[-n:]]
    else:
        flags = [spec.breaching(v) for v in real]
        if spec.treat_missing in ("breaching", "notBreaching"):
            flags += [spec.treat_missing == "breaching"] * (n - len(real))
        elif sum(flags) < m and all(flags):  # only breaching points, too few of them (or none)
            return current if spec.treat_missing == "ignore" else "INSUFFICIENT_DATA"
    return "ALARM" if sum(flags) >= m else "OK"


def evaluation_range(spec: AlarmSpec, now: datetime) -> list[tuple[datetime, datetime]]:
    """The periods to read, oldest first: aligned to the period (a 60 s period starts on the
    minute), the newest being the one under way."""
    seconds = spec.period
    start = datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, UTC)
    count = spec.evaluation_periods + EXTRA_PERIODS
    return [(start - timedelta(seconds=seconds * k), start - timedelta(seconds=seconds * (k - 1)))
            for k in range(count - 1, -1, -1)]


def period_values(cloudwatch: Any, spec: AlarmSpec, now: datetime) -> list[float | None]:
    """The alarm's statistic for each period of its evaluation range (None: no data), from one
    read of the range at one-second grain, combined per period as CloudWatch combines them."""
    periods = evaluation_range(spec, now)
    points = cloudwatch.get_metric_statistics(
        Namespace=spec.namespace, MetricName=spec.metric, Dimensions=[{"Name": k, "Value": v} for k, v in
                                                                      spec.dimensions],
        StartTime=periods[0][0], EndTime=periods[-1][1], Period=1,
        Statistics=["Sum", "Maximum", "Minimum", "SampleCount"])["Datapoints"]
    values: list[float | None] = []
    for start, end in periods:
        inside = [p for p in points if start <= utc(p["Timestamp"]) < end]
        values.append(_combined(spec.statistic, inside) if inside else None)
    return values


def _combined(statistic: str, points: list[dict[str, Any]]) -> float:
    count = sum(p["SampleCount"] for p in points)
    total = sum(p["Sum"] for p in points)
    return {"Sum": total, "Maximum": max(p["Maximum"] for p in points),
            "Minimum": min(p["Minimum"] for p in points), "SampleCount": count,
            "Average": total / count if count else 0.0}[statistic]


def alarm_states(cloudwatch: Any) -> list[dict[str, str]]:
    """Each alarm's name, state and the reason given with it (DescribeAlarms)."""
    pages = cloudwatch.get_paginator("describe_alarms").paginate()
    alarms = [a for page in pages for a in page["MetricAlarms"]]
    return [{"name": a["AlarmName"], "state": a["StateValue"], "reason": a.get("StateReason", "")}
            for a in sorted(alarms, key=lambda a: a["AlarmName"])]


class AlarmEvaluator:
    """The runtime's CloudWatch: evaluates every alarm every `every` seconds (CloudWatch: every
    minute) and authorises each state change's notification."""

    def __init__(self, aws: Any, timeline: Timeline, topic_keys: dict[str, str] | None = None,
                 every: float = 10.0) -> None:
        self.cloudwatch = aws.client("cloudwatch")
        self.timeline = timeline
        self.topic_keys = topic_keys or {}  # topic ARN -> the KMS key it is encrypted with
        self.every = every
        self.transitions: list[tuple[str, str, str]] = []  # (alarm, from, to)

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        return [threading.Thread(target=self._loop, args=(stop,), daemon=True, name="cloudwatch-alarms")]

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.every):
            try:
                self.evaluate(datetime.now(UTC))
            except Exception as error:  # the evaluator outlives a failed read
                self.timeline.emit("error", f"cloudwatch: alarm evaluation failed: {error!r}")

    def evaluate(self, now: datetime) -> None:
        for page in self.cloudwatch.get_paginator("describe_alarms").paginate():
            for alarm in page["MetricAlarms"]:
                spec = AlarmSpec.of(alarm)
                values = period_values(self.cloudwatch, spec, now)
                state = decide(spec, values, alarm["StateValue"])
                if state != alarm["StateValue"]:
                    self._change(alarm, state, values)

    def _change(self, alarm: dict[str, Any], state: str, values: list[float | None]) -> None:
        spec = AlarmSpec.of(alarm)
        shown = ", ".join("-" if v is None else f"{v:g}" for v in values)
        reason = (f"{spec.statistic} of {spec.metric} per {spec.period} s [{shown}] against "
                  f"{spec.comparison} {spec.threshold:g} ({spec.datapoints_to_alarm} of "
                  f"{spec.evaluation_periods}, missing data: {spec.treat_missing})")
        self.cloudwatch.set_alarm_state(AlarmName=spec.name, StateValue=state, StateReason=reason[:1023])
        self.transitions.append((spec.name, alarm["StateValue"], state))
        if "ALARM" in (state, alarm["StateValue"]):  # a first OK after creation is no news
            self.timeline.emit("error" if state == "ALARM" else "runtime",
                               f"alarm {spec.name}: {alarm['StateValue']} -> {state}")
        actions = {"ALARM": "AlarmActions", "OK": "OKActions", "INSUFFICIENT_DATA": "InsufficientDataActions"}
        for topic in alarm.get(actions[state], []):
            self._authorise(alarm["AlarmArn"], topic)

    def _authorise(self, alarm_arn: str, topic: str) -> None:
        """CloudWatch publishes as cloudwatch.amazonaws.com: the topic policy must let it (with the
        alarm as aws:SourceArn), and the topic's key policy must let it use the key."""
        enforcer = iam_hook.active()
        if enforcer is None:
            return
        keys = {"aws:SourceArn": alarm_arn, "aws:SourceAccount": ACCOUNT_ID}
        wanted = [("sns:Publish", topic)]
        if key := self.topic_keys.get(topic):
            wanted += [("kms:GenerateDataKey", key), ("kms:Decrypt", key)]
        for action, resource in wanted:
            if not enforcer.delivery("cloudwatch.amazonaws.com", f"delivery.{alarm_arn.rsplit(':', 1)[-1]}",
                                     action, resource, keys).allowed:
                self.timeline.emit("error", f"alarm notification to {topic} denied: {action} on {resource}")
                return


def alarm_arn(name: str) -> str:
    return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{name}"


# --- where moto differs from AWS ------------------------------------------------------------

def correct_moto() -> None:
    """Apply this service's corrections to moto (idempotent; sluice.aws.corrections)."""
    _new_alarms_have_insufficient_data()


def _new_alarms_have_insufficient_data() -> None:
    """A new alarm is INSUFFICIENT_DATA until it is first evaluated ("Alarm states": "The alarm has
    just started, the metric is not available, or not enough data is available"); moto made it OK,
    which would hide an alarm that was never evaluated."""
    from moto.cloudwatch.models import Alarm

    def with_insufficient_data(original: Any) -> Any:
        def init(self: Alarm, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            self.state_value = "INSUFFICIENT_DATA"

        return init

    replace(Alarm, "__init__", with_insufficient_data)
