"""Parse a source file for the tests that walk our code's AST (import graph, SQL location, test layout).

CPython 3.11.7 (this machine's Python) can raise "SystemError: AST constructor recursion depth mismatch"
from ast.parse when a garbage collection in the middle of building the tree runs a finalizer of another
thread's objects (python/cpython#106905, fixed in 3.11.8; seen here with a SQLAlchemy pool finalizer of a
Dagster test running on the same xdist worker). The collector is held off while the tree is built, which
removes that path; the tree is the same."""

import ast
import gc
from pathlib import Path


def parse_file(path: Path) -> ast.Module:
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(Path(path).read_text(), str(path))
    finally:
        if enabled:
            gc.enable()
