"""Shared fixtures: one moto server per test session, reset before every test."""

from __future__ import annotations

import os

import pytest

from sluice.aws.account import FAKE_CREDENTIALS
from sluice.aws.corrections import correct_moto
from sluice.aws.emulator import Emulator
from sluice.stack.template import SamApp

# No test may ever reach a real AWS account.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update(FAKE_CREDENTIALS)
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "sluice-test")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")


@pytest.fixture(scope="session")
def emulator():
    correct_moto()  # the emulator answers as AWS does, as the runtime's does
    with Emulator() as aws:
        aws.point_process_here()
        yield aws


@pytest.fixture
def aws(emulator: Emulator) -> Emulator:
    """A clean emulated account for this test, the one the process's boto3 clients reach (an
    end-to-end module run earlier in this worker pointed them at its own runtime)."""
    emulator.reset()
    emulator.point_process_here()
    return emulator


@pytest.fixture(scope="session")
def app() -> SamApp:
    """template.yaml, translated offline."""
    return SamApp.load()


def create_ledger_table(aws: Emulator, app: SamApp, name: str) -> str:
    """Create a FileLedger table with the key schema and indexes that template.yaml declares."""
    props = app.resources["FileLedger"]["Properties"]
    aws.client("dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=props["AttributeDefinitions"],
        KeySchema=props["KeySchema"],
        GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"],
    )
    return name


@pytest.fixture
def ledger_table(aws: Emulator, app: SamApp) -> str:
    """The FileLedger table, created as template.yaml declares it."""
    return create_ledger_table(aws, app, "sluice-test-ledger")
