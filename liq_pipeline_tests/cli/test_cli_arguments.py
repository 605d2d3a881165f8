"""Hostile `liq` arguments (issue 28, case 9): every one is refused with one line naming the argument and exit
code 2, before any work; never a traceback, never a misleading message."""

from __future__ import annotations

import pytest

from liq_pipeline.cli import main as cli
from liq_pipeline_tests.support.cli_warehouse import SYMBOL


def _one_line_exit_2(argv: list[str], capsys) -> str:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and "Error" not in lines[0].split(":")[0]
    return lines[0]


@pytest.mark.parametrize("at", ["0001-01-01T00:00", "9999-12-31T23:59", "1970-01-01T00:00"])
def test_heatmap_at_outside_the_data_range_is_one_line(warehouse, capsys, at):  # noqa: F811
    line = _one_line_exit_2(["heatmap", SYMBOL, "--at", at, "--warehouse", warehouse], capsys)
    assert "--at" in line and "between 2019-01-01 and" in line


@pytest.mark.parametrize("out", ["{tmp}", "/dev/full", "{tmp}/missing-dir/file.html/inner"])
def test_heatmap_output_that_cannot_be_written_is_one_line(warehouse, capsys, tmp_path, out):  # noqa: F811
    if out.endswith("inner"):
        (tmp_path / "missing-dir").mkdir()
        (tmp_path / "missing-dir" / "file.html").write_text("a file, not a folder")
    line = _one_line_exit_2(["heatmap", SYMBOL, "--format", "html", "--out", out.format(tmp=tmp_path),
                             "--warehouse", warehouse], capsys)
    assert "--out" in line


@pytest.mark.parametrize("argv, name", [
    (["zones", SYMBOL, "--top", "0"], "--top"),
    (["zones", SYMBOL, "--top", "-3"], "--top"),
    (["heatmap", SYMBOL, "--top", "0"], "--top"),
    (["heatmap", SYMBOL, "--min-usd", "-1"], "--min-usd"),
    (["heatmap", SYMBOL, "--min-usd", "nan"], "--min-usd"),
    (["heatmap", SYMBOL, "--now", "--budget", "0"], "--budget"),
    (["heatmap", SYMBOL, "--now", "--budget", "inf"], "--budget"),
    (["backtest", SYMBOL, "--start", "2026-01-01", "--end", "2026-01-02", "--bar-minutes", "0"], "--bar-minutes"),
    (["backtest", SYMBOL, "--start", "2026-01-01", "--end", "2026-01-02", "--top-k", "0"], "--top-k"),
    (["backtest", SYMBOL, "--start", "0001-01-01", "--end", "2026-01-02"], "--start"),
    (["backtest", SYMBOL, "--start", "2026-01-03", "--end", "2026-01-02"], "--end"),
    (["import-liquidations", "x.csv", "--bar-seconds", "0"], "--bar-seconds"),
    (["simulate", "--days", "0"], "--days"),
    (["now", SYMBOL, "--top", "0"], "--top"),
    (["record-liquidations", "--max-events", "0"], "--max-events"),
    (["record-liquidations", "--duration", "-1"], "--duration"),
])
def test_non_positive_counts_and_widths_are_one_line_with_exit_2(warehouse, capsys, argv, name):  # noqa: F811
    line = _one_line_exit_2([*argv, *(["--warehouse", warehouse] if argv[0] in ("zones", "heatmap") else [])], capsys)
    assert line.startswith(f"liq {argv[0]}: ") and name in line, line
