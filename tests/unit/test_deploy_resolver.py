"""The local deploy's intrinsic functions resolve as CloudFormation resolves them (table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.stack.model import Stack
from sluice.stack.resolve import Resolver
from sluice.stack.template import SamApp


@pytest.fixture(scope="module")
def resolve(app: SamApp) -> Resolver:
    stack = Stack(names={"ArtifactsBucket": "arts"},
                  arns={"FileLedger": "arn:aws:dynamodb:us-east-1:1:table/t"})
    return Resolver(app, {"DedupKeys": "", "LookupUri": "s3://ref-bucket/reference/countries.csv",
                           "AWS::StackName": "s"}, stack)


CASES: list[tuple[str, Any, Any]] = [
    ("NoValue drops a map key", {"a": 1, "b": {"Ref": "AWS::NoValue"}}, {"a": 1}),
    ("NoValue drops a list item", [1, {"Ref": "AWS::NoValue"}, 2], [1, 2]),
    ("If on a false condition", {"k": {"Fn::If": ["HasDedupKeys", "x", {"Ref": "AWS::NoValue"}]}}, {}),
    ("If on a true condition", {"Fn::If": ["HasLookup", "yes", "no"]}, "yes"),
    ("Sub with a resource and a local variable",
     {"Fn::Sub": ["${ArtifactsBucket}/${Path}", {"Path": "p"}]}, "arts/p"),
    ("Sub with an attribute", {"Fn::Sub": "${FileLedger.Arn}/index/ByRun"},
     "arn:aws:dynamodb:us-east-1:1:table/t/index/ByRun"),
    ("Split and Select", {"Fn::Select": [1, {"Fn::Split": ["s3://", {"Ref": "LookupUri"}]}]},
     "ref-bucket/reference/countries.csv"),
    ("Equals and Not", {"Fn::Not": [{"Fn::Equals": [{"Ref": "DedupKeys"}, ""]}]}, False),
    ("Join", {"Fn::Join": ["-", ["a", {"Ref": "AWS::Region"}]]}, "a-us-east-1"),
]


@pytest.mark.parametrize(("node", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_intrinsics(resolve: Resolver, node: Any, expected: Any) -> None:
    assert resolve(node) == expected
