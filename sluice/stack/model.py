"""What the local deploy produces: the Stack (names, ARNs, functions, event source mappings, rule
targets, roles and resource policies) that the local runtime and the emulated services run from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sluice.aws.iam import Principal


@dataclass
class Function:
    logical_id: str
    name: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout: int
    dead_letter_queue: str | None = None  # the URL of its DeadLetterConfig queue (asynchronous events)


@dataclass
class EventSourceMapping:
    function: str  # logical id
    queue_url: str
    batch_size: int
    batching_window: int
    max_concurrency: int
    report_batch_item_failures: bool


@dataclass
class RuleTarget:
    """An EventBridge rule target the emulator cannot reach (Lambda, SNS), routed through an
    internal queue that moto's own rule matching and input transformer feed."""

    rule: str
    kind: str  # "lambda" | "sns"
    target: str  # function logical id, or topic ARN
    queue_url: str
    schedule: str | None = None  # rate(...) for scheduled rules


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
