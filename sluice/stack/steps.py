"""The deploy, in the steps everyone takes: `make deploy` against AWS (tools/deploy.py) and the
local runtime against the emulator (sluice.runtime). A step the documented deploy lacks is one the
local runtime lacks too, so `make run` fails the way the first deploy on AWS would.

1. build: the template as SAM makes it (`sam build`; locally, the SAM translator);
2. deploy: the stack (`sam deploy`, guided the first time; locally, sluice.stack.deploy) - its
   name, Region and outputs are what the next step writes to;
3. publish: what `sam deploy` does not upload (it uploads only the local paths a template's
   CodeUri/ContentUri-like properties name, "sam deploy" and "aws cloudformation package"; EtlJob's
   ScriptLocation is an s3:// URI): the job's script, its modules zip and datasets.toml, to the
   stack's own artifacts bucket (sluice.stack.publish).

    >>> done = []
    >>> class Steps:
    ...     def build(self): done.append("build")
    ...     def deploy(self, guided): done.append(f"deploy guided={guided}"); return Target("s", "r", {})
    ...     def publish(self, target): done.append(f"publish to {target.stack_name}"); return []
    >>> deploy_stack(Steps(), guided=True).region, done
    ('r', ['build', 'deploy guided=True', 'publish to s'])
"""

from __future__ import annotations

import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sluice import ROOT

STEPS = ("build", "deploy", "publish")


@dataclass(frozen=True)
class Target:
    """The stack a deploy made: where its next step writes."""

    stack_name: str
    region: str
    outputs: dict[str, str] = field(default_factory=dict)
    profile: str | None = None


class Steps(Protocol):
    def build(self) -> None: ...
    def deploy(self, guided: bool) -> Target: ...
    def publish(self, target: Target) -> list[str]: ...


def deploy_stack(steps: Steps, guided: bool = False) -> Target:
    """Build, deploy, publish: a stack whose first file is processed and emailed."""
    steps.build()
    target = steps.deploy(guided)
    steps.publish(target)
    return target


@dataclass(frozen=True)
class SavedDeploy:
    """What samconfig.toml holds for one environment, as `sam deploy --guided` saves it: its
    answers go to [<env>.deploy.parameters] (stack_name, region, profile, parameter_overrides) and
    the region also to [<env>.global.parameters]; a command's own section wins over global."""

    stack_name: str | None
    region: str | None
    profile: str | None
    parameter_overrides: dict[str, str]

    @classmethod
    def read(cls, env: str = "default", config: Path = ROOT / "samconfig.toml") -> SavedDeploy:
        settings = tomllib.loads(config.read_text()).get(env, {}) if config.exists() else {}
        deploy = settings.get("deploy", {}).get("parameters", {})
        shared = settings.get("global", {}).get("parameters", {})

        def saved(key: str) -> str | None:
            value = deploy.get(key, shared.get(key))
            return str(value) if value else None

        overrides = dict(item.split("=", 1) for item in shlex.split(saved("parameter_overrides") or ""))
        return cls(saved("stack_name"), saved("region"), saved("profile"), overrides)
