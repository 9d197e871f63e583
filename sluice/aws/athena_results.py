"""A query's result, as Athena gives it: each value in Athena's text (what a result file holds and
GetQueryResults returns), each column's type in Athena's names (ResultSetMetadata), the result
file itself - a header, then every value quoted, NULL left empty - and that file read back, telling
NULL from ''; and the values as `sluice query --json` prints them.

    >>> rows = [["id", "tags"], ["1", athena_text(["a", None])], ["2", None]]
    >>> print(csv_text(rows), end="")
    "id","tags"
    "1","[a, null]"
    "2",
    >>> csv_rows(csv_text(rows)) == rows
    True
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa


def column_types(table: pa.Table) -> list[dict[str, str]]:
    """ResultSetMetadata.ColumnInfo of a result, in Athena's type names."""
    return [{"Name": f.name, "Type": athena_type(f.type)} for f in table.schema]


def athena_type(kind: pa.DataType) -> str:
    if pa.types.is_struct(kind):
        return "row(" + ", ".join(f"{f.name} {athena_type(f.type)}" for f in kind) + ")"
    if pa.types.is_map(kind):
        return f"map({athena_type(kind.key_type)}, {athena_type(kind.item_type)})"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"array({athena_type(kind.value_type)})"
    if pa.types.is_decimal(kind):
        return f"decimal({kind.precision},{kind.scale})"
    names = {pa.int8(): "tinyint", pa.int16(): "smallint", pa.int32(): "integer", pa.int64(): "bigint",
             pa.float32(): "real", pa.float64(): "double", pa.bool_(): "boolean", pa.date32(): "date",
             pa.binary(): "varbinary"}
    if pa.types.is_timestamp(kind):
        return "timestamp"
    return names.get(kind, "varchar")


def athena_text(value: Any) -> str | None:
    """A value as Athena writes it in a result file: NULL is no value; rows {a=1, b=[x, y]},
    arrays [1, 2], maps {k=v}; timestamps with milliseconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_inner(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        if value and all(isinstance(x, tuple) and len(x) == 2 for x in value):  # a map, from Arrow
            return "{" + ", ".join(f"{k}={_inner(v)}" for k, v in value) + "}"
        return "[" + ", ".join(_inner(v) for v in value) + "]"
    if hasattr(value, "isoformat") and hasattr(value, "hour"):
        return value.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(value, bytes):
        return value.hex(" ")
    return str(value)


def _inner(value: Any) -> str:
    text = athena_text(value)
    return "null" if text is None else text


def json_value(value: Any) -> Any:
    """A value for --json: nested values stay JSON objects and arrays."""
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(x, tuple) and len(x) == 2 for x in value):
            return {str(k): json_value(v) for k, v in value}
        return [json_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)  # Decimal keeps its digits


def csv_text(rows: list[list[str | None]]) -> str:
    """Athena's result file: a header, then every value in double quotes (NULL left empty)."""

    def field_text(value: str | None) -> str:
        return "" if value is None else '"' + value.replace('"', '""') + '"'

    return "".join(",".join(field_text(v) for v in row) + "\n" for row in rows)


def text_rows(table: pa.Table) -> list[list[str | None]]:
    columns = [column.to_pylist() for column in table.columns]  # by position: names may repeat
    return [list(table.column_names), *([athena_text(v) for v in row] for row in zip(*columns, strict=True))]


def csv_rows(text: str) -> list[list[str | None]]:
    """The rows of a result file, telling NULL (an empty field) from '' (a quoted empty one)."""
    rows: list[list[str | None]] = []
    row: list[str | None] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == '"':
            value, i = [], i + 1
            while i < n:
                if text[i] == '"' and text[i + 1:i + 2] == '"':
                    value.append('"')
                    i += 2
                elif text[i] == '"':
                    i += 1
                    break
                else:
                    value.append(text[i])
                    i += 1
            row.append("".join(value))
        else:
            row.append(None)
        if i >= n or text[i] == "\n":
            rows.append(row)
            row = []
        i += 1  # past the comma or the line's end
    return rows
