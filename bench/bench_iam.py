"""What IAM enforcement costs the local runtime per AWS call, in one run.

Times DynamoDB GetItem against the emulator through a plain client and through one whose calls are
authorised as a role (the runtime's enforcement hook), interleaved, medians of --repeat rounds;
then the authorisation decision alone (Enforcer.decide), without the round trip.
Last line: enforcement_us_per_call=X decision_us=Y roundtrip_us=Z

    .venv/bin/python bench/bench_iam.py [--calls 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "glue"), str(ROOT / "functions" / "ledger_layer")]

import boto3  # noqa: E402

from sluice.aws.account import ACCOUNT_ID, REGION  # noqa: E402
from sluice.aws.corrections import correct_moto  # noqa: E402
from sluice.aws.emulator import Emulator  # noqa: E402
from sluice.aws.iam import Policy, Principal  # noqa: E402
from sluice.aws.iam_audit import Audit  # noqa: E402
from sluice.aws.iam_hook import Enforcer, acting_as  # noqa: E402

KEY = {"k": {"S": "a"}}


def per_call_us(client: Any, calls: int) -> float:
    began = time.perf_counter()
    for _ in range(calls):
        client.get_item(TableName="t", Key=KEY)
    return (time.perf_counter() - began) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    role = Principal("BenchRole", f"arn:aws:iam::{ACCOUNT_ID}:role/bench", [Policy("p", {"Statement": [
        {"Effect": "Allow", "Action": "dynamodb:GetItem",
         "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/t"}]})])
    correct_moto()
    with Emulator() as aws:
        aws.point_process_here()
        dynamodb = aws.client("dynamodb")
        dynamodb.create_table(TableName="t", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")
        dynamodb.put_item(TableName="t", Item=KEY)
        plain = boto3.session.Session().client("dynamodb")
        session = boto3.session.Session()
        Enforcer(Audit()).install(session)
        with acting_as(role):
            checked = session.client("dynamodb")
            per_call_us(plain, 50), per_call_us(checked, 50)  # warm both
            rounds = [(per_call_us(plain, args.calls), per_call_us(checked, args.calls))
                      for _ in range(args.repeat)]
        enforcer = Enforcer(Audit())
        params = {"TableName": "t", "Key": KEY}
        began = time.perf_counter()
        for _ in range(10_000):
            enforcer.decide(role, "dynamodb", "GetItem", params, {})
        decision = (time.perf_counter() - began) / 10_000 * 1e6
    roundtrip = statistics.median(p for p, _ in rounds)
    overhead = statistics.median(c - p for p, c in rounds)
    print(f"GetItem, {args.calls} calls x {args.repeat} rounds: plain {roundtrip:.0f} us/call, "
          f"enforced {statistics.median(c for _, c in rounds):.0f} us/call")
    print(f"enforcement_us_per_call={overhead:.0f} decision_us={decision:.1f} roundtrip_us={roundtrip:.0f}")


if __name__ == "__main__":
    main()
