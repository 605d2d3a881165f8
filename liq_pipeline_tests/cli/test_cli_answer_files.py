"""`liq heatmap` and `liq zones` answer from the answer files (docs/answer-files.md): the same answers as the
warehouse, with the warehouse gone or locked by a writer, and a clear exit-2 line for a bad file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from liq_pipeline.cli import main as cli
from liq_pipeline.warehouse import answer_files as af
from liq_pipeline_tests.support.cli_warehouse import DAY, SYMBOL

QUERIES = [["heatmap", SYMBOL, "--format", "json"], ["heatmap", SYMBOL, "--at", "2026-01-05T12:10", "--format", "json"],
           ["heatmap", SYMBOL, "--at", "2026-01-06T00:00"], ["heatmap", SYMBOL, "--top", "1"],
           ["zones", SYMBOL], ["zones", SYMBOL, "--day", "2026-01-05", "--format", "json", "--top", "2"]]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def answers(warehouse, capsys):
    """The hand-made warehouse with its answer files written by `liq write-answers`."""
    code, out, _ = run(capsys, "write-answers", "--warehouse", warehouse)
    assert code == 0 and "wrote 2 answer files" in out
    return af.folder_for(warehouse)


@pytest.mark.parametrize("argv", QUERIES)
def test_answer_files_give_the_warehouse_answer(warehouse, capsys, argv):
    code, from_db, note = run(capsys, *argv, "--warehouse", warehouse)
    assert code == 0 and "read from the warehouse" in note  # no files yet: the warehouse, and it says so
    assert run(capsys, "write-answers", "--warehouse", warehouse)[0] == 0
    code, from_files, note = run(capsys, *argv, "--warehouse", warehouse)
    assert code == 0 and note == ""
    assert from_files == from_db


def test_answers_need_no_warehouse_once_the_files_exist(answers, warehouse, capsys):
    Path(warehouse).rename(Path(warehouse).with_suffix(".gone"))
    code, out, _ = run(capsys, "heatmap", SYMBOL, "--at", "2026-01-05T12:20", "--format", "json", "--warehouse", warehouse)
    assert code == 0 and json.loads(out)["snapshot_time"] == "2026-01-05T12:15:00"
    assert run(capsys, "zones", SYMBOL, "--warehouse", warehouse)[0] == 0


def test_answers_while_a_writer_holds_the_warehouse(answers, warehouse, capsys):
    """A Dagster run holds DuckDB's write lock: the answer files still answer; a day without a file says the
    warehouse is locked and which days the files hold."""
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('locked', flush=True); time.sleep(60)", warehouse],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, out, _ = run(capsys, "heatmap", SYMBOL, "--warehouse", warehouse)
        assert code == 0 and "heatmap at 2026-01-05 12:15 UTC" in out
        code, _, err = run(capsys, "heatmap", SYMBOL, "--at", "2026-01-09T12:00", "--warehouse", warehouse)
        assert code == 2 and "locked by a writer" in err
        assert f"(the answer files in {answers} hold {SYMBOL} {DAY})" in err
    finally:
        holder.kill()
        holder.wait()


def test_a_time_outside_the_data_names_the_days_the_files_hold(answers, warehouse, capsys):
    code, _, err = run(capsys, "heatmap", SYMBOL, "--at", "2026-03-01T00:10", "--warehouse", warehouse)
    assert code == 2 and "2026-03-01 (flow): not materialized" in err
    assert f"hold {SYMBOL} {DAY})" in err
    code, _, err = run(capsys, "zones", SYMBOL, "--day", "2026-03-01", "--warehouse", warehouse)
    assert code == 2 and "zones not materialized" in err


@pytest.mark.parametrize(("damage", "words"), [(lambda b: b[: len(b) // 2], "truncated"),
                                               (lambda b: b"garbage" + b[7:], "not a liq heatmap answer file")])
def test_a_bad_heatmap_file_is_one_line_naming_it(answers, warehouse, capsys, damage, words):
    path = af.heatmap_path(answers, SYMBOL, DAY)
    path.write_bytes(damage(path.read_bytes()))
    code, out, err = run(capsys, "heatmap", SYMBOL, "--warehouse", warehouse)
    assert code == 2 and out == ""
    assert err.startswith("liq heatmap: answer file ") and str(path) in err and words in err
    assert len(err.strip().splitlines()) == 1


def test_a_bad_zones_file_and_a_missing_variant_are_one_line(answers, warehouse, capsys):
    code, _, err = run(capsys, "heatmap", SYMBOL, "--variant", "ofi", "--warehouse", warehouse)
    assert code == 2 and "no 'ofi' heatmap in" in err and "(variants: flow)" in err
    path = af.zones_path(answers, SYMBOL, DAY)
    path.write_text(path.read_text()[:30])
    code, _, err = run(capsys, "zones", SYMBOL, "--warehouse", warehouse)
    assert code == 2 and str(path) in err and "corrupt or truncated" in err


def test_rewriting_the_files_is_idempotent(answers, warehouse, capsys):
    before = {p.name: p.read_bytes() for p in (answers / SYMBOL).iterdir()}
    assert run(capsys, "write-answers", "--warehouse", warehouse)[0] == 0
    assert {p.name: p.read_bytes() for p in (answers / SYMBOL).iterdir()} == before
    shutil.rmtree(answers)
    assert run(capsys, "heatmap", SYMBOL, "--warehouse", warehouse)[0] == 0  # the warehouse again
