"""What the deploy's publish step puts next to a deployed stack (sluice.stack.steps), which `make
deploy` (tools/deploy.py) and the local runtime both take: the Glue job's code and settings.

The job's code lives in the stack's artifacts bucket, which its role reads: the entry script
(EtlJob's ScriptLocation, s3://<artifacts>/code/etl_job.py), the modules it imports
(`--extra-py-files s3://<artifacts>/code/sluice_glue.zip`), the per-dataset settings
(`--datasets_uri s3://<artifacts>/code/datasets.toml`) and the lookup tables those settings name
by key (samples/reference/ -> reference/). `sam deploy` uploads none of them: it uploads only the
local paths a template names (CodeUri, ContentUri and the like), and ScriptLocation is an s3:// URI.
(A local ScriptLocation would go to SAM's own managed bucket, which the job role cannot read.)

    >>> PUBLISHED_PREFIXES
    ('code/', 'reference/')
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import Any

from sluice import ROOT

PACKAGES = [ROOT / "glue" / "sluice_glue", ROOT / "functions" / "ledger_layer" / "ledger"]
CODE_KEY = "code/sluice_glue.zip"
SCRIPT = ROOT / "glue" / "etl_job.py"
SCRIPT_KEY = "code/etl_job.py"
DATASETS = ROOT / "datasets.toml"
DATASETS_KEY = "code/datasets.toml"  # EtlJob's --datasets_uri
REFERENCE = ROOT / "samples" / "reference"
REFERENCE_PREFIX = "reference/"  # a lookup_uri without s3:// is a key in the artifacts bucket
# What the publish step owns in the artifacts bucket: the deploy puts it there, so it is not data
# (the local runtime's snapshot leaves it out; the next deploy publishes the checkout's own).
PUBLISHED_PREFIXES = (CODE_KEY.rsplit("/", 1)[0] + "/", REFERENCE_PREFIX)


def package(target: Path) -> Path:
    """The job's modules (sluice_glue and the ledger) zipped for --extra-py-files."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for package_dir in PACKAGES:
            for path in sorted(package_dir.rglob("*.py")):
                archive.write(path, path.relative_to(package_dir.parent))
    return target


def publish_code(s3: Any, bucket: str, zip_path: Path | None = None) -> list[str]:
    """Upload the job's script, its modules' zip (packaged now unless given), datasets.toml and
    the reference tables to `bucket`; the s3:// URIs written. The settings are checked first, so
    a broken datasets.toml stops the deploy instead of failing every run."""
    from sluice_glue import datasets  # the job's own validation (glue/ is on the path, as for the job)

    datasets.load(DATASETS.read_text(), source=str(DATASETS.relative_to(ROOT)))
    with tempfile.TemporaryDirectory() as scratch:
        archive = zip_path or package(Path(scratch) / "sluice_glue.zip")
        uploads = [(SCRIPT, SCRIPT_KEY), (archive, CODE_KEY), (DATASETS, DATASETS_KEY),
                   *((p, f"{REFERENCE_PREFIX}{p.name}") for p in sorted(REFERENCE.glob("*")) if p.is_file())]
        for path, key in uploads:
            s3.upload_file(str(path), bucket, key)
    return [f"s3://{bucket}/{key}" for _, key in uploads]
