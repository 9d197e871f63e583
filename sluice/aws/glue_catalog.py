"""The Glue Data Catalog as AWS keeps it: where moto's tables differ from Glue's.

The catalog itself is moto's; the job's catalog writer and the local crawler (sluice_glue.catalog)
write to it through the API. Two things the writers rely on are Glue's and not moto's, so they
are corrected here (sluice.aws.corrections applies them).
"""

from __future__ import annotations

from typing import Any

from sluice.aws.moto_patch import replace


def correct_moto() -> None:
    """Apply this service's corrections to moto (idempotent; sluice.aws.corrections)."""
    _names_folded_to_lowercase()
    _update_table_checks_the_version()


def _folded(table_input: dict[str, Any]) -> dict[str, Any]:
    descriptor = table_input.get("StorageDescriptor") or {}
    keys = table_input.get("PartitionKeys", [])
    folded = {**table_input, "Name": table_input.get("Name", "").lower(),
              "PartitionKeys": [{**k, "Name": k["Name"].lower()} for k in keys]}
    if descriptor:
        folded["StorageDescriptor"] = {**descriptor, "Columns": [
            {**c, "Name": c["Name"].lower()} for c in descriptor.get("Columns", [])]}
    return folded


def _names_folded_to_lowercase() -> None:
    """Glue stores table names in lowercase ("TableInput": "For Hive compatibility, this is folded
    to lowercase when it is stored") and so it does the names of columns and partition keys (not
    in the API reference; seen on AWS: `eventTime` is stored as `eventtime`, and `id` and `ID` as
    two columns `id`). moto keeps them as given, which let a job that matched a JSON key or a CSV
    header to a column by its exact spelling pass here and read NULLs on AWS."""
    from moto.glue.models import GlueBackend

    def folded_create(create: Any) -> Any:
        def create_table(self: GlueBackend, database_name: str, table_name: str,
                         table_input: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            return create(self, database_name, table_name.lower(), _folded(table_input), *args, **kwargs)

        return create_table

    def folded_update(update: Any) -> Any:
        def update_table(self: GlueBackend, database_name: str, table_name: str,
                         table_input: dict[str, Any]) -> None:
            return update(self, database_name, table_name.lower(), _folded(table_input))

        return update_table

    replace(GlueBackend, "create_table", folded_create)
    replace(GlueBackend, "update_table", folded_update)


def _update_table_checks_the_version() -> None:
    """UpdateTable with a VersionId updates only that version of the table ("The version ID at
    which to update the table contents", UpdateTable, Glue API reference); when another writer
    updated it first, it fails with ConcurrentModificationException ("Two processes are trying to
    modify a resource simultaneously"), as the optimistic locking of AWS's own Glue clients
    (Iceberg's) relies on. moto ignores VersionId and the last writer's schema silently wins."""
    from moto.glue.exceptions import GlueClientError
    from moto.glue.responses import GlueResponse

    def version_checked(original: Any) -> Any:
        def update_table(self: GlueResponse) -> Any:
            version = self.parameters.get("VersionId")
            if version:
                table_name = (self.parameters.get("TableInput") or {}).get("Name", "").lower()
                current = self.glue_backend.get_table(str(self.parameters.get("DatabaseName")), table_name)
                if str(current._current_version) != str(version):
                    raise GlueClientError("ConcurrentModificationException",
                                          f"Table {table_name} was updated to version "
                                          f"{current._current_version} after version {version} was read")
            return original(self)

        return update_table

    replace(GlueResponse, "update_table", version_checked)
