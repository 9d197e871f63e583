"""Hive type strings, as the Glue Data Catalog keeps a column's type: parsed, written back, widened.

The catalog holds a column's type as one Hive DDL string (`bigint`, `decimal(10,2)`,
`array<struct<name:string,tags:array<string>>>`, `map<string,int>`). The job needs its tree (to
read a complex value field by field), the local crawler and the job's table registration need to
widen two of them into one ("schema only widens"). One parser and one widening rule for both.

    >>> parse("array<struct<Name:string,at:timestamp>>")
    ('array', ('struct', (('Name', 'string'), ('at', 'timestamp'))))
    >>> widen("struct<a:int>", "struct<a:bigint,b:string>")
    'struct<a:bigint,b:string>'
    >>> widen("bigint", "string"), widen("int", "double"), widen("decimal(10,2)", "decimal(6,4)")
    ('string', 'double', 'decimal(12,4)')
"""

from __future__ import annotations

import re
from typing import Any

# A parsed type: a primitive is its string ("bigint", "decimal(10,2)"); complex types are tuples:
# ("array", element), ("map", key, value), ("struct", ((name, type), ...)).
HiveType = Any

INTEGRAL = ("tinyint", "smallint", "int", "bigint")
FRACTIONAL = ("float", "double")
DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")
MAX_DECIMAL_PRECISION = 38  # Spark's and Athena's ("Data types in Amazon Athena")


def is_complex(type_string: str) -> bool:
    return type_string.strip().lower().startswith(("array<", "map<", "struct<"))


def parse(type_string: str) -> HiveType:
    """The tree of a Hive type string. Field names are kept as written (the catalog may hold them
    in any case); type names are read case-insensitively.

    A field name holding `:`, `,`, `<` or `>` cannot be told apart in a Hive type string (Hive's
    own parser cannot either); such a string raises ValueError."""
    parsed, rest = _parse(type_string.strip())
    if rest.strip():
        raise ValueError(f"not a Hive type: {type_string!r} (left over: {rest!r})")
    return parsed


def _parse(text: str) -> tuple[HiveType, str]:
    lower = text.lower()
    for kind in ("array<", "map<", "struct<"):
        if lower.startswith(kind):
            rest = text[len(kind):]
            if kind == "array<":
                element, rest = _parse(rest)
                return ("array", element), _expect(rest, ">", text)
            if kind == "map<":
                key, rest = _parse(rest)
                value, rest = _parse(_expect(rest, ",", text))
                return ("map", key, value), _expect(rest, ">", text)
            fields: list[tuple[str, HiveType]] = []
            while not rest.startswith(">"):
                name, colon, rest = rest.partition(":")
                if not colon or not name or any(c in name for c in ",<>"):
                    raise ValueError(f"not a Hive type: {text!r}")
                field_type, rest = _parse(rest)
                fields.append((name.strip(), field_type))
                if rest.startswith(","):
                    rest = rest[1:]
            return ("struct", tuple(fields)), rest[1:]
    match = re.match(r"[a-z_]+(\(\s*\d+\s*(,\s*\d+\s*)?\))?", lower)
    if not match:
        raise ValueError(f"not a Hive type: {text!r}")
    return lower[:match.end()].replace(" ", ""), text[match.end():]


def _expect(rest: str, token: str, whole: str) -> str:
    if not rest.startswith(token):
        raise ValueError(f"not a Hive type: {whole!r}")
    return rest[len(token):]


def render(parsed: HiveType) -> str:
    """The Hive type string of a tree (the inverse of parse)."""
    if isinstance(parsed, str):
        return parsed
    if parsed[0] == "array":
        return f"array<{render(parsed[1])}>"
    if parsed[0] == "map":
        return f"map<{render(parsed[1])},{render(parsed[2])}>"
    return "struct<" + ",".join(f"{name}:{render(t)}" for name, t in parsed[1]) + ">"


def widen(a: str, b: str) -> str:
    """The narrowest type both values fit: equal types stay; integers widen to the larger one,
    integers and fractions to double, decimals to a decimal holding both; structs take the union
    of their fields (matched case-insensitively, the first spelling kept), arrays and maps widen
    their parts; anything else is string, which holds every value's text."""
    return render(_widen(parse(a), parse(b)))


def _widen(a: HiveType, b: HiveType) -> HiveType:
    if a == b:
        return a
    if isinstance(a, str) and isinstance(b, str):
        return _widen_primitive(a, b)
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0]:
        if a[0] == "array":
            return ("array", _widen(a[1], b[1]))
        if a[0] == "map":
            return ("map", _widen(a[1], b[1]), _widen(a[2], b[2]))
        fields = {name.lower(): (name, t) for name, t in a[1]}
        for name, t in b[1]:
            kept = fields.get(name.lower())
            fields[name.lower()] = (kept[0], _widen(kept[1], t)) if kept else (name, t)
        return ("struct", tuple(fields.values()))
    return "string"


def _widen_primitive(a: str, b: str) -> str:
    if a in INTEGRAL and b in INTEGRAL:
        return max(a, b, key=INTEGRAL.index)
    numeric = INTEGRAL + FRACTIONAL
    if a in numeric and b in numeric:
        return "double"
    da, db = DECIMAL.fullmatch(a), DECIMAL.fullmatch(b)
    if da and db:
        scale = max(int(da[2]), int(db[2]))
        digits = max(int(da[1]) - int(da[2]), int(db[1]) - int(db[2]))
        return f"decimal({min(digits + scale, MAX_DECIMAL_PRECISION)},{scale})"
    if (da and b in numeric) or (db and a in numeric):
        return "double"
    return "string"
