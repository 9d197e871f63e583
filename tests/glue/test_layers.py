"""The job's modules import each other in one direction: the house reads top-down."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import sluice_glue


def test_the_jobs_modules_import_each_other_in_one_direction():
    """The house reads top-down (job -> table_run -> table_write -> small_write -> output, ...): a
    module that a lower one must import back is a circle (docs/etl-job.md's module table)."""
    package = Path(sluice_glue.__file__).parent
    modules = {p.stem: p for p in package.glob("*.py") if p.stem != "__init__"}
    imports = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "sluice_glue":
                found |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sluice_glue."):
                found.add(node.module.split(".")[1])
        imports[name] = found
    order = list(graphlib.TopologicalSorter(imports).static_order())  # CycleError on a circle
    assert order.index("output") < order.index("small_write") < order.index("table_write") \
        < order.index("table_run") < order.index("job")
