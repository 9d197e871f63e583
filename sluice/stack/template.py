"""template.yaml, read and translated offline: the one description of the pipeline.

The SAM translator turns the Serverless resources into plain CloudFormation (functions, roles,
event source mappings, rules), the same transform CloudFormation applies on `sam deploy`. Tests
assert the wiring on its output; the local runtime deploys from it.

    >>> app = SamApp.load()
    >>> app.resources["FileLedger"]["Type"]
    'AWS::DynamoDB::Table'
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from sluice import ROOT
from sluice.aws.account import REGION

TEMPLATE = ROOT / "template.yaml"

# The translator insists on S3 locations for code; local paths stand in under this fake bucket,
# which is what `sam validate` does too.
LOCAL_CODE_BUCKET = "sluice-local-code"
_CODE_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}


class _NoManagedPolicies:
    """The translator asks IAM for managed policy ARNs only when a template names one by name."""

    def load(self) -> dict[str, str]:
        return {}


@dataclass
class SamApp:
    """The template as written (`source`) and as CloudFormation sees it (`resources`)."""

    source: dict[str, Any]
    translated: dict[str, Any]
    code_paths: dict[str, Path] = field(default_factory=dict)  # logical id -> local code folder

    @classmethod
    def load(cls, path: Path = TEMPLATE, region: str = REGION) -> SamApp:
        source = yaml_parse(path.read_text())
        to_translate = copy.deepcopy(source)
        code_paths: dict[str, Path] = {}
        for logical_id, resource in to_translate["Resources"].items():
            prop = _CODE_PROPERTIES.get(resource["Type"])
            if prop and isinstance(resource["Properties"].get(prop), str):
                local = resource["Properties"][prop]
                code_paths[logical_id] = (path.parent / local).resolve()
                resource["Properties"][prop] = f"s3://{LOCAL_CODE_BUCKET}/{local.strip('/')}"
        os.environ.setdefault("AWS_DEFAULT_REGION", region)  # the translator resolves pseudo params
        translated = transform(to_translate, {}, _NoManagedPolicies())
        return cls(source=source, translated=translated, code_paths=code_paths)

    @property
    def resources(self) -> dict[str, Any]:
        return self.translated["Resources"]

    @property
    def parameters(self) -> dict[str, Any]:
        return self.source.get("Parameters", {})

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {lid: r for lid, r in self.resources.items() if r["Type"] == resource_type}

    def parameter_defaults(self) -> dict[str, Any]:
        return {name: spec.get("Default") for name, spec in self.parameters.items()}
