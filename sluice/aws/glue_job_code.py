"""A Glue job's code, loaded as Glue loads it: its ScriptLocation and its --extra-py-files zip
read from S3 with the job's role (a role that cannot read them fails the run with AccessDenied),
the zip put on the driver's path, and the entry script compiled once per version of its source.
Every module the entry script imports must be Python's, Glue's own, or in --extra-py-files, or the
run fails with ModuleNotFoundError, as on Glue ("Using Python libraries with AWS Glue", Glue
developer guide).
"""

from __future__ import annotations

import ast
import hashlib
import sys
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

# What Glue 5.0 provides itself; any other module the entry script imports must come from
# --extra-py-files ("Using Python libraries with AWS Glue", Glue developer guide).
GLUE_PROVIDED = {"pyspark", "awsglue", "py4j", "boto3", "botocore", "pyarrow", "pandas", "numpy"}


class JobCode:
    """The code of one job. `glue` reads the job's definition (Glue's own client); `s3` reads its
    code (a client acting as the job's role)."""

    def __init__(self, glue: Any, s3: Any, job_name: str) -> None:
        self.glue = glue
        self.s3 = s3
        self.job_name = job_name
        self._code_dir = Path(tempfile.mkdtemp(prefix="sluice-glue-code-"))
        self._script: tuple[str, ModuleType] | None = None  # (digest of its source, module)

    def entry_script(self) -> ModuleType:
        """The job's ScriptLocation as a module, its --extra-py-files on the path."""
        job = self.glue.get_job(JobName=self.job_name)["Job"]
        extra = [u for u in job.get("DefaultArguments", {}).get("--extra-py-files", "").split(",") if u]
        archives = [self._download(uri) for uri in extra]
        for path in archives:
            if str(path) not in sys.path:
                sys.path.append(str(path))  # as Glue puts them on the driver's PYTHONPATH
        location = job["Command"]["ScriptLocation"]
        source = self._download(location).read_bytes()
        digest = hashlib.sha256(source).hexdigest()
        if self._script and self._script[0] == digest:
            return self._script[1]
        _require_packaged(source, location, archives)
        module = ModuleType("sluice_glue_entry")
        module.__file__ = location
        sys.modules["sluice_glue_entry"] = module
        exec(compile(source, location, "exec"), module.__dict__)  # the job's own script, as Glue runs it
        self._script = (digest, module)
        return module

    def _download(self, uri: str) -> Path:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        target = self._code_dir / bucket / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return target


def _require_packaged(source: bytes, location: str, archives: list[Path]) -> None:
    """Every module the entry script imports is Python's, Glue's own, or in --extra-py-files:
    otherwise the run fails on Glue with ModuleNotFoundError, and so it fails here."""
    names: set[str] = set()
    for archive in archives:
        with zipfile.ZipFile(archive) as zipped:
            names |= {n.split("/", 1)[0].removesuffix(".py") for n in zipped.namelist()}
    for node in ast.walk(ast.parse(source)):
        imported = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        for top in (name.split(".", 1)[0] for name in imported):
            if top and top not in sys.stdlib_module_names and top not in GLUE_PROVIDED | names:
                raise ModuleNotFoundError(f"No module named '{top}' ({location} imports it; it is "
                                          f"neither in --extra-py-files nor provided by Glue)")
