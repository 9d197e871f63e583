"""DynamoDB: the ledger's table lives in moto; this is where moto's DynamoDB is made to behave as
AWS's does."""

from __future__ import annotations

import bisect
import threading
from decimal import Decimal
from typing import Any

from sluice.aws.moto_patch import replace, serialise

# --- where moto differs from AWS ------------------------------------------------------------

def correct_moto() -> None:
    """Apply this service's corrections to moto (idempotent; sluice.aws.corrections)."""
    _atomic_dynamodb_writes()
    _index_queries_read_one_key()


def _atomic_dynamodb_writes() -> None:
    """DynamoDB applies a conditional write atomically; moto's threaded server checks the condition
    and writes without a lock, so two concurrent claims of one ledger item could both succeed.
    Serialise moto's item writes, which is what makes the emulator's conditions mean what
    DynamoDB's do."""
    from moto.dynamodb.models import DynamoDBBackend

    serialise(DynamoDBBackend, ("put_item", "update_item", "delete_item", "transact_write_items", "get_item",
                                "query", "scan"), threading.RLock())


def _index_queries_read_one_key() -> None:
    """A Query on a global secondary index reads the items of one partition key value, in sort
    key order, starting after ExclusiveStartKey (DynamoDB developer guide, "Querying tables":
    the partition key condition selects one partition; results come back sorted by the sort
    key). moto reads *every* item of the table for each page, compares them with its typed
    values, sorts them all and walks to the start key: 0.3-0.5 s a page on a 10,000-file
    ledger, under the lock above, so one claim loop or busy-check stalled every other ledger
    call (the 10,000-file burst spent minutes there). Same answer, less work: the items of the
    one key value are picked with plain comparisons, sorted by the index's key order and cut
    at the start key before moto's own code pages, filters and projects them. Anything but a
    one-attribute partition key of type S, N or B goes to moto unchanged."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.models.table import Table

    def one_key_query(original: Any) -> Any:
        def query(self: Table, hash_key: Any, range_comparison: Any, range_objs: Any, limit: Any,
                  exclusive_start_key: Any, scan_index_forward: Any, projection_expressions: Any,
                  index_name: Any = None, consistent_read: Any = False, filter_expression: Any = None,
                  hash_key_conditions: Any = None, range_key_conditions: Any = None,
                  **filter_kwargs: Any) -> Any:
            def moto(start_key: Any = exclusive_start_key, forward: Any = scan_index_forward) -> Any:
                return original(self, hash_key, range_comparison, range_objs, limit, start_key, forward,
                                projection_expressions, index_name, consistent_read, filter_expression,
                                hash_key_conditions=hash_key_conditions,
                                range_key_conditions=range_key_conditions, **filter_kwargs)

            index = next((i for i in self.all_indexes() if i.name == index_name), None)
            order = _index_order(self, index) if index is not None else None
            if (ANSWER_AS_MOTO.is_set() or order is None or filter_kwargs
                    or len(hash_key_conditions or []) != 1
                    or (range_key_conditions and len(range_key_conditions) > 1)
                    or _native(hash_key_conditions[0][1]) is None):
                return moto()
            name, wanted = hash_key_conditions[0]
            wanted_native = _native(wanted)
            keyed: list[tuple[tuple, Item]] = []
            for item in self.all_items():
                if isinstance(item, Item) and _native(item.attrs.get(name)) == wanted_native:
                    key = _sort_key(item, order)
                    if key is None:  # an attribute of a type we do not order: moto does
                        return moto()
                    keyed.append((key, item))
            keyed.sort(key=lambda pair: pair[0])
            natives, items = [key for key, _ in keyed], [item for _, item in keyed]
            if exclusive_start_key:  # keep what comes after the start key in the scan's direction
                start = tuple(_native(DynamoType(exclusive_start_key[a])) or (0, "")
                              if a in exclusive_start_key else (0, "") for a in order)
                items = (items[bisect.bisect_right(natives, start):] if scan_index_forward is not False
                         else items[:bisect.bisect_left(natives, start)])
            if scan_index_forward is False:
                items.reverse()
            if range_comparison is None and limit:  # a page, and one more to say whether there is a next
                items = items[:limit + 1]
            # This call only: moto's own filtering, paging and projection over the items, already in
            # the index's order (instance attributes shadow the methods, under the lock above).
            setattr(self, "all_items", lambda: items)  # noqa: B010
            setattr(self, "sorted_items", lambda hash_attrs, range_attrs, found: found)  # noqa: B010
            try:
                return moto(start_key=None, forward=True)
            finally:
                del self.all_items, self.sorted_items

        return query

    replace(Table, "query", one_key_query)


# Set: index queries take moto's own path (a test compares both answers).
ANSWER_AS_MOTO = threading.Event()


def _index_order(table: Any, index: Any) -> list[str] | None:
    """The attributes moto orders an index's items by: its partition key, its sort key, then the
    table's partition and sort keys (moto's Table._generate_attr_to_sort_by)."""
    hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
    ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
    if len(hashes) != 1 or len(ranges) > 1:
        return None
    return [*hashes, *ranges, table.hash_key_attr, *([table.range_key_attr] if table.range_key_attr else [])]


def _sort_key(item: Any, order: list[str]) -> tuple | None:
    parts = []
    for attribute in order:
        value = item.attrs.get(attribute)
        native = (0, "") if value is None else _native(value)
        if native is None:
            return None
        parts.append(native)
    return tuple(parts)


def _native(value: Any) -> tuple | None:
    """A key attribute as a plain comparable value: numbers as Decimal, strings and binary as they
    are (DynamoDB orders strings by UTF-8 bytes, which is code point order). None: not a key type."""
    if value is None:
        return None
    if value.type == "N":
        return (1, Decimal(value.value))
    if value.type in ("S", "B"):
        return (2 if value.type == "S" else 3, value.value)
    return None
