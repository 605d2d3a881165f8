"""pipeline/workers.py: without worker processes a task (here a picture) runs at once, its error kept for
the caller; with them the same functions give the same bytes, and an error in a worker reaches the caller."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from liq_pipeline.model.grid import grid_for
from liq_pipeline.pipeline import workers
from liq_pipeline.plots.heatmap import HeatmapPicture, ZoneBand
from liq_pipeline.plots.liquidation_map import liquidation_map_markdown
from liq_pipeline.plots.report import draw_heatmap_day

GRID = grid_for("BTCUSDT")


def _picture(variant: str) -> HeatmapPicture:
    T = 24
    step_end = np.datetime64("2026-01-05T01:00", "ms") + np.arange(T) * np.timedelta64(60, "m")
    bins = np.concatenate([np.arange(GRID.bin_id(95_000.0), GRID.bin_id(99_000.0)),
                           np.arange(GRID.bin_id(101_000.0), GRID.bin_id(105_000.0))])
    side = np.where(np.arange(bins.size) < bins.size // 2, 1, -1)
    return HeatmapPicture(
        symbol="BTCUSDT", day=dt.date(2026, 1, 5), variant=variant, grid=GRID, step_end=step_end, step_minutes=60,
        cell_step=np.repeat(np.arange(T), bins.size), cell_side=np.tile(side, T), cell_bin=np.tile(bins, T),
        cell_notional_usd=np.tile(1e6 * (1 + np.cos(np.arange(bins.size) / 5) ** 2), T),
        mark_time=step_end, mark_price=100_000 * (1 + 0.005 * np.sin(np.arange(T) / 4)), oi_ref_usd=1e9,
        zones=[ZoneBand("long", 1, 96_000, 96_500, 3e7)])


def _levels_args():
    lp, sp = np.linspace(90_000, 99_000, 40), np.linspace(101_000, 110_000, 40)
    return (lp, np.full(40, 2e6), sp, np.full(40, 1e6), 100_000.0, "BTCUSDT liquidation map", None, "alt")


def test_without_worker_processes_a_picture_is_drawn_at_once_and_errors_wait_for_the_caller():
    assert workers.workers() == 1
    done = workers.submit(liquidation_map_markdown, *_levels_args())
    assert done.done() and done.result().startswith("![alt](data:image/png;base64,")
    failed = workers.submit(liquidation_map_markdown, *_levels_args()[:-1])  # a missing argument
    with pytest.raises(TypeError):
        failed.result()


def test_worker_processes_give_the_same_pictures_and_report(tmp_path):
    pics = [_picture("flow"), _picture("ofi")]
    here_levels = liquidation_map_markdown(*_levels_args())
    here_day = draw_heatmap_day(pics[0], pics, "flow", tmp_path / "here")
    with workers.running_in(2):
        assert workers.workers() == 2
        levels = workers.submit(liquidation_map_markdown, *_levels_args())
        day = workers.submit(draw_heatmap_day, pics[0], pics, "flow", tmp_path / "pool")
        failed = workers.submit(liquidation_map_markdown, *_levels_args()[:-1])
        assert levels.result() == here_levels
        drawn = day.result()
        with pytest.raises(TypeError):
            failed.result()
    assert workers.workers() == 1
    assert drawn["heatmap"] == here_day["heatmap"] and drawn["liquidation_map"] == here_day["liquidation_map"]
    assert drawn["report"] == str((tmp_path / "pool" / "heatmap-BTCUSDT-2026-01-05.html").resolve())
    assert (tmp_path / "pool" / "heatmap-BTCUSDT-2026-01-05.html").stat().st_size > 10_000
