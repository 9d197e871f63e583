"""The one AWS account the local runtime emulates, and how a client reaches it: its id and Region
(moto's defaults), the credentials the emulator accepts, how a queue's URL names its ARN, and the
one way the runtime builds a boto3 client for the emulator.

    >>> queue_arn("http://127.0.0.1:4566/123456789012/sluice-local-ingest")
    'arn:aws:sqs:us-east-1:123456789012:sluice-local-ingest'
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account

# Credentials the emulator accepts; set only where nothing else is configured.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}

# The SDK's standard retry mode: a throttled or failed call is retried, as it would be on AWS.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})


def queue_arn(url: str, region: str = REGION) -> str:
    """A queue's ARN from its URL: the URL ends in the owner's account and the queue's name
    (https://sqs.us-east-2.amazonaws.com/123456789012/MyQueue: "Amazon SQS queue and message
    identifiers", SQS developer guide; the emulator's http://127.0.0.1:<port>/<account>/<name>)."""
    account, name = url.rstrip("/").split("/")[-2:]
    return f"arn:aws:sqs:{region}:{account}:{name}"


def fake_session() -> Any:
    """A boto3 session of its own with the emulator's credentials: its clients carry none of the
    hooks the runtime installs on boto3's default session (IAM enforcement, injected faults)."""
    return boto3.session.Session(aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                 aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                                 region_name=REGION)


def client(service: str, endpoint: str | None, session: Any = None) -> Any:
    """A client of `service` at `endpoint`, made by `session` (None: boto3's default session, the
    one the handlers' clients come from, with the runtime's hooks)."""
    session = session or boto3._get_default_session()
    return session.client(service, endpoint_url=endpoint, region_name=REGION, config=CLIENT_CONFIG)


def resource(service: str, endpoint: str | None, session: Any = None) -> Any:
    """A boto3 resource (DynamoDB's Table, say) at `endpoint`, made as `client` makes a client."""
    session = session or boto3._get_default_session()
    return session.resource(service, endpoint_url=endpoint, region_name=REGION, config=CLIENT_CONFIG)
