"""The `liq` CLI on a hand-made warehouse: heatmap/zones answers, clear exit-2 messages (not materialized,
no warehouse, locked by a writer), picture outputs, simulate/demo wiring and add-on command modules."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import types
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from liq_pipeline.cli import main as cli
from liq_pipeline.warehouse.readonly import format_top_zones
from liq_pipeline_tests.support.cli_warehouse import DAY, GRID, SYMBOL, VARIANT
from liq_pipeline_tests.support.warehouse_rows import insert_frame


def test_heatmap_table_shows_latest_snapshot(warehouse, capsys):
    assert cli.main(["heatmap", SYMBOL, "--warehouse", warehouse]) == 0
    out = capsys.readouterr().out
    assert "2026-01-05 12:15 UTC" in out and "mark 100,000.00" in out
    assert "long liquidations $24,000,000, short liquidations $14,000,000" in out  # the 2x snapshot


def test_heatmap_at_picks_the_snapshot_at_or_before(warehouse, capsys):
    assert cli.main(["heatmap", SYMBOL, "--at", "2026-01-05T12:10", "--format", "json", "--warehouse", warehouse]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["snapshot_time"] == "2026-01-05T12:00:00"
    assert sum(lv["notional_usd"] for lv in data["levels"]) == pytest.approx(19e6)
    assert {lv["side"] for lv in data["levels"]} == {"long", "short"}


def test_unmaterialized_day_gives_exit_2_and_the_command_to_run(warehouse, capsys):
    assert cli.main(["heatmap", SYMBOL, "--at", "2026-01-09T12:00", "--warehouse", warehouse]) == 2
    err = capsys.readouterr().err
    assert "not materialized" in err and "Traceback" not in err
    assert 'dagster asset materialize -m liq_pipeline.definitions --select liquidation_heatmap,liquidation_zones ' \
           '--partition "2026-01-09|BTCUSDT"' in err and "make demo" in err


def test_unknown_symbol_and_bad_time_give_exit_2(warehouse, capsys):
    assert cli.main(["heatmap", "DOGEUSDT", "--warehouse", warehouse]) == 2
    assert "unknown symbol DOGEUSDT" in capsys.readouterr().err
    assert cli.main(["heatmap", SYMBOL, "--at", "noon", "--warehouse", warehouse]) == 2
    assert "not an ISO time" in capsys.readouterr().err
    assert cli.main(["zones", SYMBOL, "--day", "2026-02-01", "--warehouse", warehouse]) == 2
    assert '--partition "2026-02-01|BTCUSDT"' in capsys.readouterr().err


def test_missing_warehouse_gives_exit_2(tmp_path, capsys):
    assert cli.main(["heatmap", SYMBOL, "--warehouse", str(tmp_path / "nope.duckdb")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "make demo" in err
    assert not (tmp_path / "nope.duckdb").exists()  # read-only: never created


def test_warehouse_locked_by_a_writer_gives_exit_2(warehouse, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); "
         "time.sleep(30)", warehouse], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        assert cli.main(["heatmap", SYMBOL, "--warehouse", warehouse]) == 2
        err = capsys.readouterr().err
        assert "locked by a writer" in err and "Traceback" not in err
    finally:
        holder.kill()
        holder.wait()


def test_zones_table_json_and_format_top_zones(warehouse, capsys):
    assert cli.main(["zones", SYMBOL, "--warehouse", warehouse, "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert f"2026-01-05 liquidation zones ({VARIANT})" in out and "97,000.00" in out and "93,000.00" not in out
    assert cli.main(["zones", SYMBOL, "--day", "2026-01-05", "--format", "json", "--warehouse", warehouse]) == 0
    zones = json.loads(capsys.readouterr().out)["zones"]
    assert [(z["side"], z["zone_rank"]) for z in zones][:2] == [("long", 1), ("long", 2)] and len(zones) == 8
    with duckdb.connect(warehouse, read_only=True) as con:
        text = format_top_zones(con, SYMBOL, DAY, VARIANT, n=3)
        assert text.count("\nlong") == 3 and text.count("\nshort") == 3 and "91,000.00" not in text
        missing = format_top_zones(con, SYMBOL, DAY + dt.timedelta(days=1), VARIANT)
        assert "not materialized" in missing and "2026-01-06|BTCUSDT" in missing


def test_png_and_html_outputs(warehouse, tmp_path, capsys):
    png = tmp_path / "out" / "h.png"
    assert cli.main(["heatmap", SYMBOL, "--format", "png", "--out", str(png), "--warehouse", warehouse]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    html = tmp_path / "out" / "h.html"
    assert cli.main(["heatmap", SYMBOL, "--format", "html", "--out", str(html), "--warehouse", warehouse]) == 0
    assert "Plotly.newPlot" in html.read_text()
    assert capsys.readouterr().out.split() == [str(png), str(html)]


def test_simulate_maps_flags_to_sim_config(monkeypatch, tmp_path, capsys):
    import liq_pipeline.sim as simulator

    seen = {}

    def fake_simulate(cfg, progress=print):
        seen["cfg"] = cfg
        return types.SimpleNamespace(to_json=lambda: {"files": 0})

    monkeypatch.setattr(simulator, "simulate", fake_simulate)
    argv = ["simulate", "--symbols", "BTCUSDT,ETHUSDT", "--days", "3", "--seed", "11", "--out", str(tmp_path / "sim"),
            "--start", "2026-01-02", "--trades-per-day", "5000", "--scenario", "cascade", "--taker-open-share", "0.5"]
    assert cli.main(argv) == 0
    cfg = seen["cfg"]
    assert (cfg.symbols, cfg.start, cfg.days, cfg.seed, cfg.out_dir, cfg.trades_per_day) == (
        ("BTCUSDT", "ETHUSDT"), dt.date(2026, 1, 2), 3, 11, tmp_path / "sim", 5000)
    assert (cfg.scenario, cfg.liquidation_impact, cfg.taker_open_share) == (
        "cascade", simulator.SCENARIOS["cascade"]["liquidation_impact"], 0.5)
    assert json.loads(capsys.readouterr().out) == {"files": 0}
    assert cli.main(["simulate", "--start", "Jan 2"]) == 2
    assert cli.main(["simulate", "--scenario", "storm"]) == 2
    assert "unknown scenario 'storm'" in capsys.readouterr().err


def test_demo_calls_run_demo(monkeypatch):
    import liq_pipeline.apps.demo as demo

    monkeypatch.setattr(demo, "run_demo", lambda **kw: 7 if kw == {"days": 31, "seed": 7, "model_days": None,
                                                                 "scenario": "calm"} else 1)
    assert cli.main(["demo"]) == 7
    assert cli.main(["demo", "--model-days", "3"]) == 1  # a different flag reaches run_demo


def test_add_on_command_modules_register_and_missing_ones_are_skipped(monkeypatch, capsys):
    addon = types.ModuleType("liq_test_addon")

    def register(sub):
        p = sub.add_parser("hello")
        p.set_defaults(func=lambda args: print("hello from add-on") or 0)

    addon.register = register
    monkeypatch.setitem(sys.modules, "liq_test_addon", addon)
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("liq_test_missing_module", "liq_test_addon"))
    assert cli.main(["hello"]) == 0
    assert "hello from add-on" in capsys.readouterr().out


def test_add_on_with_a_broken_import_is_not_silently_skipped(monkeypatch, tmp_path):
    (tmp_path / "liq_test_broken.py").write_text("import liq_test_dependency_that_does_not_exist\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("liq_test_broken",))
    with pytest.raises(ModuleNotFoundError, match="liq_test_dependency_that_does_not_exist"):
        cli.main(["--help"])


def test_help_exits_0_and_lists_commands(capsys):
    assert cli.main(["heatmap", "--help"]) == 0
    assert "--variant" in capsys.readouterr().out
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(c in out for c in cli.BUILTIN_COMMANDS)


def test_picture_at_a_time_draws_the_zones_of_that_snapshot(warehouse):
    """No look-ahead: the stored end-of-day zones (e.g. 92,900–93,100, where the 12:00 snapshot has no
    level) are not drawn; the zones come from the snapshot shown."""
    noon = dt.datetime(2026, 1, 5, 12, 0)
    cluster = GRID.mid(GRID.bin_id(98_000.0) + np.arange(5))  # a dense cluster only at 12:00, within a day's reach
    _add_levels(warehouse, cluster, np.full(5, 3e6), noon)
    with cli.connect_read_only(warehouse) as con:
        pic = cli.picture_from_warehouse(con, SYMBOL, DAY, VARIANT, noon)
    assert pic.zones_as_of == "at 12:00 UTC"
    assert [z.side for z in pic.zones] == ["long"]
    assert pic.zones[0].price_low <= cluster[0] and cluster[-1] <= pic.zones[0].price_high
    assert not any(z.price_low <= 93_000 <= z.price_high for z in pic.zones)


def test_pictures_of_different_times_get_their_own_files(warehouse, capsys):
    for at in ("2026-01-05T12:10", "2026-01-05T12:20"):
        assert cli.main(["heatmap", SYMBOL, "--at", at, "--format", "png", "--warehouse", warehouse]) == 0
    paths = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[-1] for p in paths] == [f"heatmap-BTCUSDT-2026-01-05T1200-{VARIANT}.png",
                                                    f"heatmap-BTCUSDT-2026-01-05T1215-{VARIANT}.png"]
    assert all(open(p, "rb").read(4) == b"\x89PNG" for p in paths)


def test_picture_names_carry_the_snapshots_own_day_and_the_fixed_scale_its_own_file(warehouse, capsys, monkeypatch):
    midnight = dt.datetime(2026, 1, 6)  # the last snapshot of 2026-01-05
    assert cli.picture_path(SYMBOL, midnight, VARIANT, "png").name == f"heatmap-BTCUSDT-2026-01-05T2400-{VARIANT}.png"
    assert cli.picture_path(SYMBOL, midnight, VARIANT, "png", "fixed").name == \
        f"heatmap-BTCUSDT-2026-01-05T2400-{VARIANT}-fixed.png"
    for scale in ("percentile", "fixed"):
        assert cli.main(["heatmap", SYMBOL, "--format", "png", "--scale", scale, "--warehouse", warehouse]) == 0
    default, fixed = capsys.readouterr().out.split()
    assert default != fixed and fixed.endswith("-fixed.png")


def test_html_output_shares_one_plotly_file_beside_it(warehouse, tmp_path, capsys):
    for at in ("2026-01-05T12:10", "2026-01-05T12:20"):
        assert cli.main(["heatmap", SYMBOL, "--at", at, "--format", "html", "--warehouse", warehouse]) == 0
    paths = [Path(p) for p in capsys.readouterr().out.split()]
    js = paths[0].parent / "plotly.min.js"
    assert js.stat().st_size > 1_000_000
    for p in paths:
        page = p.read_text()
        assert 'src="plotly.min.js"' in page and len(page) < 1_000_000  # the library is not inlined


def test_json_is_one_level_a_line_so_head_shows_the_start(warehouse, capsys):
    assert cli.main(["heatmap", SYMBOL, "--format", "json", "--warehouse", warehouse]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    lines = out.splitlines()
    assert lines[0] == "{" and lines[1].startswith(' "symbol": "BTCUSDT"')
    assert len(lines) >= len(data["levels"]) + 8 and all(len(line) < 200 for line in lines)
    first_level = next(i for i, line in enumerate(lines) if line.startswith("  {"))
    assert json.loads(lines[first_level].rstrip(",")) == data["levels"][0]


def _add_levels(warehouse: str, prices: np.ndarray, notional: np.ndarray,
                snapshot: dt.datetime = dt.datetime(2026, 1, 5, 12, 15)) -> None:
    bins = GRID.bin_id(prices)
    with duckdb.connect(warehouse) as con:
        insert_frame(con, "model.liquidation_heatmap", pd.DataFrame({
            "symbol": SYMBOL, "day": DAY, "variant": VARIANT, "snapshot_time": snapshot,
            "side": "long", "bin_id": bins, "price": GRID.mid(bins), "notional_usd": notional}))


def test_json_leaves_out_dust_levels_and_says_how_much(warehouse, capsys):
    _add_levels(warehouse, np.array([80_000.0, 81_000.0]), np.array([0.4, 60.0]))
    assert cli.main(["heatmap", SYMBOL, "--format", "json", "--warehouse", warehouse]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["min_usd"] == cli.DUST_USD and len(data["levels"]) == 4
    assert data["below_min"] == {"levels": 2, "notional_usd": pytest.approx(60.4)}
    assert cli.main(["heatmap", SYMBOL, "--format", "json", "--min-usd", "0", "--warehouse", warehouse]) == 0
    assert len(json.loads(capsys.readouterr().out)["levels"]) == 6


def test_output_into_a_closed_pipe_ends_quietly(warehouse):
    """`liq … | head`: the reader leaves early; no BrokenPipeError traceback, exit code 141 (SIGPIPE)."""
    _add_levels(warehouse, np.linspace(60_000, 90_000, 3000), np.full(3000, 1e4))  # > one pipe buffer of JSON
    cmd = (f"{sys.executable} -m liq_pipeline.cli heatmap {SYMBOL} --format json --warehouse {warehouse} | head -c 50;"
           " echo \"exit=${PIPESTATUS[0]}\"")
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in out.stderr and "BrokenPipeError" not in out.stderr, out.stderr
    assert out.stdout.startswith("{") and out.stdout.rstrip().endswith("exit=141")
