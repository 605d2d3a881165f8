"""The answers users wait for load no heavy library: `liq --help`, `liq heatmap --help` and `liq zones --help`
import neither numpy, pandas, pyarrow nor Dagster (make bench times them; this only checks what they load)."""

import subprocess
import sys

import pytest

HEAVY = ("numpy", "pandas", "pyarrow", "dagster", "duckdb")


@pytest.mark.parametrize("argv", [["--help"], ["heatmap", "--help"], ["zones", "--help"]])
def test_help_imports_no_heavy_library(argv):
    code = ("import runpy, sys; sys.argv = ['liq'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('liq_pipeline.cli.main', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", f"liq {' '.join(argv)} imported {out.stdout.splitlines()[-1]}"
