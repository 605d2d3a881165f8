"""The suite is laid out like the package: every test file sits in the folder of the part of liq_pipeline it
tests, helpers live in `support/` (or a folder's conftest.py), and no test file imports another test file."""

from __future__ import annotations

import ast

from liq_pipeline_tests.support.paths import REPO
from liq_pipeline_tests.support.source_ast import parse_file

TESTS = REPO / "liq_pipeline_tests"
PACKAGE = REPO / "liq_pipeline"
# Folders that are not a sub-package of liq_pipeline, and why they exist.
OTHER_FOLDERS = {
    "definitions": "the package's top-level Dagster modules: definitions.py, partitions.py, schedules.py",
    "project": "cross-cutting checks: docs commands, import graph, this layout, config, the bench harness",
    "e2e": "the browser tests of the Dagster UI",
    "support": "helpers and data files shared by the tests (no tests)",
}
ROOT_TEST_FILES: set[str] = set()  # none: a test file in the root is one not yet put in its folder


def test_no_test_file_sits_in_the_root():
    stray = sorted(p.name for p in TESTS.glob("test_*.py") if p.name not in ROOT_TEST_FILES)
    assert not stray, f"move these into the folder of what they test (git mv): {stray}"


def test_every_folder_mirrors_a_sub_package_or_is_a_listed_one():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders, "no test folders found"
    strays = folders - packages - set(OTHER_FOLDERS)
    assert not strays, f"test folders that mirror no sub-package of liq_pipeline: {sorted(strays)}"
    for folder in folders:
        assert (TESTS / folder / "__init__.py").exists()


def test_support_holds_no_tests():
    tests = sorted(p.name for p in (TESTS / "support").rglob("test_*.py"))
    assert not tests, f"support/ is for helpers; these are tests: {tests}"


def imported_test_modules(path) -> list[str]:
    """The modules of this suite whose name starts with test_ that a file imports."""
    found = []
    for node in ast.walk(parse_file(path)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found += [n for n in names if n.startswith("liq_pipeline_tests.") and ".test_" in n]
    return found


def test_no_test_file_imports_another_test_file():
    offenders = {str(p.relative_to(TESTS)): mods for p in sorted(TESTS.rglob("*.py"))
                 if (mods := imported_test_modules(p))}
    assert not offenders, f"move shared helpers into liq_pipeline_tests/support/ or a conftest.py: {offenders}"


def test_the_import_check_sees_both_import_forms(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from liq_pipeline_tests.market.test_parsers import write\n"
                      "from liq_pipeline_tests.model import test_heatmap\n"
                      "import liq_pipeline_tests.cli.test_cli\n"
                      "from liq_pipeline_tests.support.raw_runs import materialize\n"
                      "from dagster._core.test_utils import create_run_for_test\n")
    found = imported_test_modules(sample)
    assert "liq_pipeline_tests.market.test_parsers" in found and "liq_pipeline_tests.model.test_heatmap" in found
    assert "liq_pipeline_tests.cli.test_cli" in found
    assert not any("raw_runs" in n or "dagster" in n for n in found)
