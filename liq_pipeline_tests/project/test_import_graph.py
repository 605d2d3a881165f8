"""The package's import graph: no circles, and no arrow from a lower room to a higher one (docs/design.md).

A small AST walk over liq_pipeline/: every `import` and `from … import` (at module level or inside a function,
both are arrows), plus string constants that name one of our modules (`importlib.import_module("…")`,
`python -m …`): a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "liq_pipeline"

#: Rank of each room (the first part of the module name under liq_pipeline). A module may import its own room
#: and any room of a lower or equal rank, never a higher one. Equal ranks are peers with no ordering.
RANKS = {
    "config": 0, "partitions": 0, "reference": 0,
    "model": 1,
    "warehouse": 2,
    "market": 3, "sim": 3, "plots": 3,
    "pipeline": 4,
    "validation": 5,
    "resources": 6, "assets": 7, "schedules": 7,
    "definitions": 8,
    "apps": 9,
    "cli": 10, "deploy": 10,
}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("liq_pipeline."):
            names.add(node.value.split()[0].split(":")[0])
    return {n for n in names if n == "liq_pipeline" or n.startswith("liq_pipeline.")}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module → the modules of ours it imports (a `from pkg import name` counts as pkg.name when that is a
    module, else as pkg)."""
    files = {module_name(p, package): p for p in package.rglob("*.py")}

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in files.items():
        targets = {resolve(n) for n in _imported_names(ast.parse(path.read_text(), str(path)))}
        graph[module] = {t for t in targets if t and t not in (module, "liq_pipeline")}
    return graph


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = room(module), room(target)
            if a != b and RANKS[b] > RANKS[a]:
                bad.append(f"{module} ({a}, rank {RANKS[a]}) imports {target} ({b}, rank {RANKS[b]})")
    return bad


def test_every_room_has_a_rank():
    rooms = {room(m) for m in import_graph()} - {"liq_pipeline"}
    assert rooms <= set(RANKS), f"rooms without a rank in RANKS: {sorted(rooms - set(RANKS))}"


def test_the_package_has_no_import_circle():
    assert circles(import_graph()) == []


def test_no_room_imports_a_higher_room():
    assert upward_imports(import_graph()) == []


@pytest.mark.parametrize("source, circle, upward", [
    ({"model/a.py": "from liq_pipeline.warehouse import b", "warehouse/b.py": ""}, False, True),
    ({"warehouse/a.py": "def f():\n    from liq_pipeline.warehouse import b",
      "warehouse/b.py": "import liq_pipeline.warehouse.a"}, True, False),
    ({"cli/a.py": "import importlib\nimportlib.import_module('liq_pipeline.apps.b')",
      "apps/b.py": "from liq_pipeline.cli import a"}, True, True),
    ({"warehouse/a.py": "from liq_pipeline.model import b", "model/b.py": "import numpy"}, False, False),
])
def test_the_walk_catches_what_it_forbids(tmp_path, source, circle, upward):
    package = tmp_path / "liq_pipeline"
    for rel, text in source.items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(text)
    graph = import_graph(package)
    assert (circles(graph) != []) is circle
    assert (upward_imports(graph) != []) is upward
