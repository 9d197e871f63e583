"""The local runtime's floors (docs/architecture.md, "Repository layout"): sluice/ has no import
circle; the emulated services (sluice/aws) import nothing of the deploy (sluice/stack) or of the
runtime above them, and the deploy nothing of the runtime; the emulator and the account are a
ground floor that knows no service, so a service's corrections are applied from above
(sluice.aws.corrections), never registered by the emulator importing it."""

from __future__ import annotations

import ast
from pathlib import Path

from sluice import ROOT

PACKAGE = ROOT / "sluice"
# What each part may import of sluice, besides itself (the package's face: ROOT, STATE_DIR).
MAY_IMPORT = {
    "sluice.aws": ("sluice.aws.", "sluice.timeline"),
    "sluice.stack": ("sluice.aws.", "sluice.stack.", "sluice.timeline"),
}
GROUND = {"sluice.aws.account": set(), "sluice.aws.moto_patch": set(),
          "sluice.aws.emulator": {"sluice.aws.account", "sluice.aws.moto_patch"}}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each module of sluice/ -> the modules of sluice/ it imports (anywhere in its code)."""
    modules = {_module(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                          for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_sluice_has_no_import_circle():
    assert _circles(_imports()) == []


def test_a_lower_floor_never_imports_a_higher_one():
    wrong = [(module, imported) for module, imports in _imports().items()
             for part, allowed in MAY_IMPORT.items() if module.startswith(part + ".")
             for imported in imports if imported != "sluice" and not imported.startswith(allowed)]
    assert wrong == []


def test_the_emulator_and_the_account_know_no_service():
    graph = _imports()
    beyond = {module: graph[module] - allowed for module, allowed in GROUND.items()}
    assert beyond == {module: set() for module in GROUND}


def test_a_circle_is_found():
    """The check above can fail: a loop of three is one circle."""
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
