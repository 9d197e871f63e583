"""The engine under the local Athena: DuckDB, for the SELECT alone. The SQL is parsed by DuckDB
(for the tables it names), each catalog table is a view in a catalog named as Athena's
(awsdatacatalog.<database>.<table>), and an engine error is given in Athena's words
(SYNTAX_ERROR, SEMANTIC_ERROR...). The SQL dialect is DuckDB's, not Trino's.
"""

from __future__ import annotations

import json
from typing import Any

from sluice.aws.athena_tables import TableName


def parse(sql: str) -> dict:
    """The statement's syntax tree, as DuckDB serialises it (what the tables it names are read from)."""
    import duckdb

    text = duckdb.connect().execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    return json.loads(text[0]) if text else {"error": True, "error_message": "empty query"}


def engine(datasets: dict[TableName, Any], database: str) -> Any:
    """A DuckDB connection for the SELECT, each catalog table a view in a catalog named as Athena's
    (awsdatacatalog.<database>.<table>). DuckDB's access to files, extensions and settings is
    off: a query reads the catalog's tables and nothing else, and downloads nothing."""
    import duckdb

    con = duckdb.connect(config={"enable_external_access": "false", "autoinstall_known_extensions": "false",
                                 "autoload_known_extensions": "false"})
    con.execute("ATTACH ':memory:' AS awsdatacatalog")
    con.execute("USE awsdatacatalog")
    for schema in sorted({database, *(t.database for t in datasets)}):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted(schema)}")
    for index, (name, dataset) in enumerate(datasets.items()):
        con.register(f"sluice_table_{index}", dataset)
        con.execute(f"CREATE VIEW {quoted(name.database)}.{quoted(name.name)} AS "
                    f"SELECT * FROM temp.main.sluice_table_{index}")
    con.execute(f"USE awsdatacatalog.{quoted(database)}")
    con.execute("SET lock_configuration = true")
    return con


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def is_engine_error(error: Exception) -> bool:
    import duckdb

    return isinstance(error, duckdb.Error)


def engine_message(error: Exception) -> str:
    kind = type(error).__name__
    prefix = {"ParserException": "SYNTAX_ERROR", "BinderException": "SEMANTIC_ERROR",
              "CatalogException": "SEMANTIC_ERROR", "PermissionException": "PERMISSION_DENIED"}.get(kind,
                                                                                                 "QUERY_FAILED")
    return f"{prefix}: {str(error).splitlines()[0] if str(error) else kind}"
