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
