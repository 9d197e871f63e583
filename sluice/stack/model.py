"""What the local deploy produces: the Stack (names, ARNs, functions, event source mappings, rule
targets, roles and resource policies) that the local runtime and the emulated services run from.
Each service keeps its own records (sluice.aws.awslambda.Function, sluice.aws.sqs_event_source.
EventSourceMapping, sluice.aws.events.RuleTarget, sluice.aws.iam.Principal); the Stack holds them."""

from __future__ import annotations

from dataclasses import dataclass, field

from sluice.aws.awslambda import Function
from sluice.aws.events import RuleTarget
from sluice.aws.iam import Principal
from sluice.aws.sqs_event_source import EventSourceMapping


@dataclass
class Stack:
    names: dict[str, str] = field(default_factory=dict)  # logical id -> name / URL / ARN (Ref)
    arns: dict[str, str] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)
    mappings: list[EventSourceMapping] = field(default_factory=list)
    rule_targets: list[RuleTarget] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    resources: dict[str, dict] = field(default_factory=dict)  # resolved properties
    roles: dict[str, Principal] = field(default_factory=dict)  # role logical id -> its policies
    # function, crawler and job logical id -> the role it runs as
    principals: dict[str, Principal] = field(default_factory=dict)
    resource_policies: dict[str, dict] = field(default_factory=dict)  # resource ARN -> document
    registered_locations: list[str] = field(default_factory=list)  # S3 ARNs registered with Lake Formation

    def function_environment(self) -> dict[str, str]:
        """Every function's variables, merged: handlers run in this one process, so two functions
        may not give one variable different values."""
        merged: dict[str, str] = {}
        for fn in self.functions.values():
            for key, value in fn.environment.items():
                if merged.get(key, value) != value:
                    raise ValueError(f"functions disagree on {key}: {merged[key]!r} vs {value!r}")
                merged[key] = value
        return merged
