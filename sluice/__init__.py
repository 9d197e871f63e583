"""Sluice's local runtime: the whole pipeline of template.yaml, offline, on one machine.

The runtime runs the checked-out code as the cloud runs it: the ledger layer is importable as
Lambda's /opt/python makes it, and glue/ as the job's --extra-py-files makes it.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout: template.yaml, functions/, glue/, samples/
STATE_DIR = ROOT / ".sluice"  # the local runtime's state: runtime.json, iam.json, snapshot/, outbox/
for _path in (ROOT / "functions" / "ledger_layer", ROOT / "glue"):
    if str(_path) not in sys.path:
        sys.path.append(str(_path))
