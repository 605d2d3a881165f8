"""The package's import graph: no circles, no arrow from a lower room to a higher one (docs/design.md), and no
import of a module or name of ours that does not exist.

A small AST walk over liq_pipeline/: every `import` and `from … import` (at module level or inside a function,
both are arrows), plus string constants that name one of our modules (`importlib.import_module("…")`,
`python -m …`): a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from liq_pipeline_tests.support.source_ast import parse_file

PACKAGE = Path(__file__).resolve().parents[2] / "liq_pipeline"

#: Rank of each room (the first part of the module name under liq_pipeline). A module may import its own room
#: and any room of a lower or equal rank, never a higher one. Equal ranks are peers with no ordering.
RANKS = {
    "config": 0, "params": 0, "partitions": 0, "reference": 0,
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


def _imports(tree: ast.AST) -> list[tuple[str, str | None, int]]:
    """Every import of ours as (module, imported name or None, line): `import a.b` gives (a.b, None),
    `from a import b` gives (a, b) (b a submodule or a name defined in a), and a string constant naming one of
    our modules ('liq_pipeline.x', 'liq_pipeline.x:attr', 'liq_pipeline.x --opt') gives (liq_pipeline.x, '')
    (a module, or a module's attribute)."""
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("liq_pipeline."):
            found.append((node.value.split()[0].split(":")[0], "", node.lineno))
    return [f for f in found if f[0] == "liq_pipeline" or f[0].startswith("liq_pipeline.")]


def _top_level_names(tree: ast.Module) -> set[str] | None:
    """The names a module defines at its top level (functions, classes, assignments, imports, also inside
    top-level if/try blocks); None when it can define any name (`from x import *`, a module `__getattr__`)."""
    names: set[str] = set()

    def visit(statements: list[ast.stmt]) -> bool:
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if node.name == "__getattr__":
                    return False
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                if any(a.name == "*" for a in node.names):
                    return False
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                blocks = [node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])]
                blocks += [h.body for h in getattr(node, "handlers", [])]
                if not all(visit(block) for block in blocks):
                    return False
        return True

    return names if visit(tree.body) else None


def scan(package: Path = PACKAGE) -> tuple[dict[str, set[str]], list[str]]:
    """(module → the modules of ours it imports, the imports that name no module or name of ours).

    A `from pkg import name` counts as pkg.name when that is a module, else as pkg, whose top level must then
    define `name`; an `import a.b` and a `from a.b import …` need the module a.b itself. An import the package
    cannot satisfy (a typo, a module removed or moved) is reported, never dropped."""
    files = {module_name(p, package): p for p in package.rglob("*.py")}
    trees = {module: parse_file(path) for module, path in files.items()}
    defined: dict[str, set[str] | None] = {}

    def defines(module: str, name: str) -> bool:
        if module not in defined:
            defined[module] = _top_level_names(trees[module])
        return defined[module] is None or name in defined[module]

    def resolve(module: str, name: str | None) -> str | None:
        """The module of ours an import reaches, None when there is none."""
        if name and f"{module}.{name}" in files:
            return f"{module}.{name}"
        if name == "" and module not in files:  # a string naming a module's attribute: 'liq_pipeline.x.attr'
            parent, _, attr = module.rpartition(".")
            return parent if parent in files and defines(parent, attr) else None
        if module not in files:
            return None
        return module if not name or defines(module, name) else None

    graph: dict[str, set[str]] = {}
    missing: list[str] = []
    for module, tree in trees.items():
        targets = set()
        for target, name, line in _imports(tree):
            reached = resolve(target, name)
            if reached is None:
                what = f"{target}.{name}" if name else target
                missing.append(f"{files[module].relative_to(package.parent)}:{line} imports {what}: "
                               "no such module or name in the package")
            targets.add(reached)
        graph[module] = {t for t in targets if t and t not in (module, "liq_pipeline")}
    return graph, missing


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module → the modules of ours it imports (see `scan`)."""
    return scan(package)[0]


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


def test_every_import_of_ours_names_an_existing_module():
    assert scan()[1] == []


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


@pytest.mark.parametrize("source, missing", [
    # a typo'd submodule, in each import form
    ({"cli/a.py": "from liq_pipeline.warehouse import readerz", "warehouse/__init__.py": "",
      "warehouse/readers.py": ""}, ["liq_pipeline.warehouse.readerz"]),
    ({"cli/a.py": "import liq_pipeline.warehouse.readerz", "warehouse/__init__.py": ""},
     ["liq_pipeline.warehouse.readerz"]),
    ({"cli/a.py": "def f():\n    from liq_pipeline.warehouse.readerz import load", "warehouse/__init__.py": ""},
     ["liq_pipeline.warehouse.readerz.load"]),
    # a removed module named in a string (importlib, `python -m`), and a name its module no longer defines
    ({"cli/a.py": "MODULES = ('liq_pipeline.apps.gone',)", "apps/__init__.py": ""}, ["liq_pipeline.apps.gone"]),
    ({"cli/a.py": "from liq_pipeline.model.b import gone", "model/b.py": "def kept(): pass"},
     ["liq_pipeline.model.b.gone"]),
    # what exists resolves: a submodule, a defined name (also under `if`/`try`), a 'module:attr' string
    ({"cli/a.py": "from liq_pipeline.model import b\nfrom liq_pipeline.model.b import f, G, H\n"
                  "X = 'liq_pipeline.model.b:f'\nY = 'liq_pipeline.model.b.f'",
      "model/__init__.py": "", "model/b.py": "def f(): pass\nif True:\n    G = 1\ntry:\n    import os as H\n"
                                             "except ImportError:\n    H = None"}, []),
])
def test_the_walk_catches_a_missing_module(tmp_path, source, missing):
    package = tmp_path / "liq_pipeline"
    for rel, text in source.items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(text)
    _, found = scan(package)
    assert [line.split(" imports ")[1].split(":")[0] for line in found] == missing
    assert all(line.startswith("liq_pipeline/cli/a.py:") for line in found)
