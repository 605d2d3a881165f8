"""The answers users wait for load no heavy library: `liq --help`, `liq heatmap --help` and `liq zones --help`
import neither numpy, pandas, pyarrow nor Dagster (make bench times them; this only checks what they load), and
`liq heatmap` / `liq zones` answered from the answer files load only the standard library's lighter modules:
not `dataclasses` (with `inspect`, about 10 ms of CPU of a cold start), nor `shutil` (bz2 and lzma, 2 ms), nor
the add-on commands (docs/answer-files.md, "Cost")."""

import argparse
import subprocess
import sys

import pytest

from liq_pipeline.cli import args as cli_args
from liq_pipeline.cli import main as cli

HEAVY = ("numpy", "pandas", "pyarrow", "dagster", "duckdb")
#: Standard-library modules a cold answer does without (each a few ms of CPU), and the add-on command modules.
NOT_ON_THE_COLD_PATH = (*HEAVY, "dataclasses", "inspect", "shutil", "typing", "liq_pipeline.params",
                        *cli.COMMAND_MODULES)


def _run_liq(argv: list[str], watch: tuple[str, ...], env: dict | None = None) -> tuple[str, list[str]]:
    """(stdout of `liq argv` run as the console script runs it, in a fresh interpreter; the `watch` modules it
    loaded)."""
    code = ("import runpy, sys; sys.argv = ['liq'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('liq_pipeline.cli.main', run_name='__main__')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            f"print('\\nLOADED', sorted(m for m in {watch!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    head, _, loaded = out.stdout.rpartition("\nLOADED ")
    return head, eval(loaded)  # noqa: S307 (our own printed list)


@pytest.mark.parametrize("argv", [["--help"], ["heatmap", "--help"], ["zones", "--help"]])
def test_help_imports_no_heavy_library(argv):
    out, loaded = _run_liq(argv, HEAVY)
    assert "usage: liq" in out
    assert loaded == [], f"liq {' '.join(argv)} imported {loaded}"


@pytest.fixture
def answered(tmp_path, monkeypatch):
    """A warehouse with its answer files (the hand-made one of the CLI tests), and the environment to ask it."""
    from liq_pipeline_tests.support.cli_warehouse import write_cli_warehouse

    monkeypatch.setenv("LIQ_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LIQ_SYMBOLS", raising=False)
    warehouse = write_cli_warehouse(tmp_path)
    assert cli.main(["write-answers", "--warehouse", warehouse]) == 0
    return warehouse


@pytest.mark.parametrize("argv", [["heatmap", "BTCUSDT"], ["heatmap", "BTCUSDT", "--at", "2026-01-05T12:10",
                                                                  "--format", "json"],
                                  ["zones", "BTCUSDT"], ["zones", "BTCUSDT", "--format", "json"]])
def test_cold_answers_from_the_answer_files_load_only_light_modules(answered, argv):
    out, loaded = _run_liq([*argv, "--warehouse", answered], NOT_ON_THE_COLD_PATH)
    assert "BTCUSDT" in out  # an answer, not an error
    assert loaded == [], f"liq {' '.join(argv)} imported {loaded}"


def test_the_formatter_gives_argparse_s_own_help(monkeypatch):
    """HelpFormatter finds the width without shutil: the same help text as argparse's formatter, at any width."""
    for columns in ("57", "101", "", "0", "x"):
        monkeypatch.setenv("COLUMNS", columns)
        import shutil

        assert cli_args.terminal_columns() == shutil.get_terminal_size().columns
        for argv in (["heatmap"], ["zones"], []):
            ours = cli.build_parser(load_plugins=False)
            theirs = cli.build_parser(load_plugins=False)
            for p in (theirs, *theirs._subparsers._group_actions[0].choices.values()):
                p.formatter_class = argparse.HelpFormatter
            if argv:
                ours, theirs = (p._subparsers._group_actions[0].choices[argv[0]] for p in (ours, theirs))
            assert ours.format_help() == theirs.format_help()


@pytest.mark.parametrize("argv", [["heatmap", "BTCUSDT", "--at", "2026-01-05T12:00", "--format", "json", "--top", "3"],
                                  ["heatmap", "ETHUSDT", "--variant", "ofi", "--min-usd", "0"],
                                  ["zones", "BTCUSDT", "--day", "2026-01-05", "--top", "2"]])
def test_the_command_s_own_parser_parses_as_the_whole_one(argv):
    only, whole = (cli.build_parser(load_plugins=False, only=argv[0]), cli.build_parser(load_plugins=False))
    assert vars(only.parse_args(argv)) == vars(whole.parse_args(argv))


def test_a_bad_argument_gives_the_same_line_with_the_command_s_parser(capsys):
    lines = []
    for parser in (cli.build_parser(load_plugins=False, only="heatmap"), cli.build_parser(load_plugins=False)):
        with pytest.raises(SystemExit):
            parser.parse_args(["heatmap", "BTCUSDT", "--top", "0"])
        lines.append(capsys.readouterr().err)
    assert lines[0] == lines[1] and "liq heatmap: argument --top: must be a whole number >= 1" in lines[0]
