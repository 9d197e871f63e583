"""The local Athena's pure parts: the tables a SELECT names, the catalog's types as Arrow types,
values as Athena writes them in a result file, and that file read back (NULL is not '')."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from sluice.aws.athena_results import athena_text, athena_type, csv_rows, csv_text, json_value
from sluice.aws.athena_tables import (
    QueryError,
    ScanBudget,
    ScanLimitExceeded,
    TableName,
    hive_type,
    referenced_tables,
)


def _parse(sql: str) -> dict:
    return json.loads(duckdb.connect().execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])


@pytest.mark.parametrize(("sql", "tables"), [
    ("SELECT * FROM orders", ["db.orders"]),
    ("SELECT * FROM other.orders o JOIN orders p ON o.id = p.id", ["other.orders", "db.orders"]),
    ("SELECT * FROM AwsDataCatalog.db.Orders", ["db.orders"]),
    ('SELECT * FROM "db"."orders"', ["db.orders"]),
    ("WITH recent AS (SELECT * FROM orders) SELECT * FROM recent", ["db.orders"]),
    ("SELECT * FROM orders WHERE id IN (SELECT id FROM raw.orders)", ["db.orders", "raw.orders"]),
    ("SELECT o.id, x FROM orders o CROSS JOIN UNNEST(o.tags) AS u(x)", ["db.orders"]),
    ("SELECT 1", []),
])
def test_the_tables_a_select_names(sql, tables):
    assert [str(t) for t in referenced_tables(sql, "db", _parse)] == tables


@pytest.mark.parametrize(("sql", "error"), [
    ("DROP TABLE orders", "NOT_SUPPORTED"),
    ("INSERT INTO orders VALUES (1)", "NOT_SUPPORTED"),
    ("SELECT * FROM orders WHERE", "SYNTAX_ERROR"),
    ("SELECT * FROM hive.db.orders", "CATALOG_NOT_FOUND"),
])
def test_what_is_not_a_select_of_the_catalog_is_refused_by_name(sql, error):
    with pytest.raises(QueryError, match=error):
        referenced_tables(sql, "db", _parse)


@pytest.mark.parametrize(("hive", "arrow"), [
    ("string", pa.string()), ("varchar(20)", pa.string()), ("bigint", pa.int64()), ("int", pa.int32()),
    ("smallint", pa.int16()), ("tinyint", pa.int8()), ("double", pa.float64()), ("float", pa.float32()),
    ("boolean", pa.bool_()), ("date", pa.date32()), ("timestamp", pa.timestamp("us")),
    ("decimal(10,2)", pa.decimal128(10, 2)), ("decimal", pa.decimal128(10, 0)), ("binary", pa.binary()),
    ("array<string>", pa.list_(pa.string())),
    ("map<string,array<int>>", pa.map_(pa.string(), pa.list_(pa.int32()))),
    ("struct<id:bigint,geo:struct<lat:double,lon:double>,tags:array<string>>",
     pa.struct([("id", pa.int64()), ("geo", pa.struct([("lat", pa.float64()), ("lon", pa.float64())])),
                ("tags", pa.list_(pa.string()))])),
])
def test_catalog_types_as_arrow_types(hive, arrow):
    assert hive_type(hive) == arrow


@pytest.mark.parametrize("bad", ["uniontype<int,string>", "array<int", "struct<a int>", "interval"])
def test_a_type_athena_does_not_read_is_refused(bad):
    with pytest.raises(QueryError, match="NOT_SUPPORTED"):
        hive_type(bad)


def test_result_types_in_athenas_names():
    assert athena_type(hive_type("struct<k:bigint,l:array<string>>")) == "row(k bigint, l array(varchar))"
    assert athena_type(pa.float64()) == "double" and athena_type(pa.string()) == "varchar"


@pytest.mark.parametrize(("value", "text"), [
    (None, None), (True, "true"), (3, "3"), (Decimal("12.30"), "12.30"),
    (dt.datetime(2026, 11, 24, 10, 15, 0, 123456), "2026-11-24 10:15:00.123"),
    (dt.date(2026, 11, 24), "2026-11-24"),
    ({"k": 1, "l": ["a", None]}, "{k=1, l=[a, null]}"),
    ([("a", 1)], "{a=1}"),  # a map, as Arrow gives it
])
def test_values_as_athena_writes_them(value, text):
    assert athena_text(value) == text


def test_json_keeps_nested_values_nested():
    assert json_value({"k": Decimal("1.50"), "m": [("a", [1])], "t": dt.date(2026, 1, 2)}) == {
        "k": "1.50", "m": {"a": [1]}, "t": "2026-01-02"}


def test_the_result_file_tells_null_from_empty_and_keeps_quotes_and_newlines():
    rows = [["id", "note"], ["1", None], ["2", ""], ["3", 'say "hi",\nthen go']]
    text = csv_text(rows)
    assert text.splitlines()[:3] == ['"id","note"', '"1",', '"2",""']
    assert csv_rows(text) == rows


def test_the_scan_budget_refuses_the_read_that_would_pass_the_cutoff():
    budget = ScanBudget(limit=100)
    budget.spend(60, "b/k1")
    with pytest.raises(ScanLimitExceeded):
        budget.spend(41, "b/k2")
    assert budget.exceeded and budget.scanned == 60
    unlimited = ScanBudget()
    unlimited.spend(10**12, "b/k")
    assert not unlimited.exceeded


def test_table_names_print_as_athena_names_them():
    assert str(TableName("db", "orders")) == "db.orders"
