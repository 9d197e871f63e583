"""The emulator keeps what AWS would keep, and frees the rest: a long burst must not grow it."""

from __future__ import annotations

import gc

from moto.dynamodb.models.dynamo_type import Item
from moto.sqs.models import Message


def _alive(kind: type) -> int:
    gc.collect()
    return sum(isinstance(o, kind) for o in gc.get_objects())


def test_rewritten_items_and_deleted_messages_are_freed(aws, ledger_table):
    table = aws.resource("dynamodb").Table(ledger_table)
    queue = aws.client("sqs").create_queue(QueueName="freed")["QueueUrl"]
    items, messages = _alive(Item), _alive(Message)
    for n in range(200):  # one ledger item rewritten, as a file's item is on each state change
        table.put_item(Item={"file_id": "f-1", "state": "PENDING", "attempts": n})
        table.update_item(Key={"file_id": "f-1"}, UpdateExpression="SET attempts = :n",
                          ExpressionAttributeValues={":n": n + 1})
        aws.client("sqs").send_message(QueueUrl=queue, MessageBody=str(n))
    for _ in range(20):
        received = aws.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
        for message in received.get("Messages", []):
            aws.client("sqs").delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    assert table.scan()["Count"] == 1
    assert _alive(Item) - items <= 5  # moto recorded all 400 copies for its dashboard, forever
    assert _alive(Message) - messages <= 5


def test_index_queries_answer_as_moto_does_page_by_page(aws, ledger_table):
    """sluice/aws/dynamodb.py reads one partition key value of an index instead of the whole table:
    the same items, in the same order, with the same LastEvaluatedKey, as moto's own query."""
    import random

    from sluice.aws.dynamodb import ANSWER_AS_MOTO

    table = aws.resource("dynamodb").Table(ledger_table)
    rng = random.Random(7)
    with table.batch_writer() as batch:
        for n in range(400):  # ties on updated_at, as claims made in one millisecond have
            item = {"file_id": f"s3://raw/k{rng.randrange(10**6)}#{n}",
                    "state": rng.choice(["PENDING", "CLAIMED"]),
                    "updated_at": f"2026-11-25T10:00:{rng.randrange(30):02d}.000+00:00"}
            if item["state"] == "CLAIMED":
                item["run_id"] = f"run-{rng.randrange(4)}"
            batch.put_item(Item=item)
    by_state = {"IndexName": "ByState", "ExpressionAttributeNames": {"#s": "state"}}
    queries = [
        {**by_state, "KeyConditionExpression": "#s = :v", "ExpressionAttributeValues": {":v": "PENDING"},
         "Limit": 37},
        {"IndexName": "ByState", "KeyConditionExpression": "#s = :v AND updated_at < :t",
         "ExpressionAttributeNames": {"#s": "state"}, "Limit": 11, "ScanIndexForward": False,
         "ExpressionAttributeValues": {":v": "CLAIMED", ":t": "2026-11-25T10:00:20"}},
        {"IndexName": "ByRun", "KeyConditionExpression": "run_id = :r",
         "ExpressionAttributeValues": {":r": "run-2"}, "Limit": 5},
        {**by_state, "KeyConditionExpression": "#s = :v",
         "ExpressionAttributeValues": {":v": "PENDING", ":c": "2026-11-25T10:00:10"}, "Limit": 50,
         "FilterExpression": "updated_at <= :c"},
    ]

    def pages(query: dict) -> list:
        out, kwargs = [], dict(query)
        while True:
            page = table.query(**kwargs)
            out.append(([i["file_id"] for i in page["Items"]], page.get("LastEvaluatedKey")))
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    for query in queries:
        fast = pages(query)
        ANSWER_AS_MOTO.set()
        try:
            assert fast == pages(query), query["KeyConditionExpression"]
        finally:
            ANSWER_AS_MOTO.clear()
        assert sum(len(ids) for ids, _ in fast) > 0
