"""Pictures: the heatmap and liquidation-map PNGs decode, are not blank, and show the data; the HTML
report is self-contained."""

from __future__ import annotations

import datetime as dt
import io

import matplotlib.image as mpimg
import numpy as np
import pytest

from liq_pipeline.model.grid import grid_for
from liq_pipeline.plots import markdown_image
from liq_pipeline.plots.heatmap import HeatmapPicture, ZoneBand, heatmap_png, liquidation_map_png
from liq_pipeline.plots.report import write_heatmap_report

GRID = grid_for("BTCUSDT")
DAY = dt.date(2026, 1, 5)


def _picture(with_levels: bool = True) -> HeatmapPicture:
    T = 96
    step_end = np.datetime64("2026-01-05T00:15", "ms") + np.arange(T) * np.timedelta64(15, "m")
    mark = 100_000 * (1 + 0.01 * np.sin(np.arange(T) / 10))
    long_bins = np.arange(GRID.bin_id(90_000.0), GRID.bin_id(97_000.0))
    short_bins = np.arange(GRID.bin_id(103_000.0), GRID.bin_id(110_000.0))
    bins = np.concatenate([long_bins, short_bins])
    side = np.concatenate([np.ones(long_bins.size, int), -np.ones(short_bins.size, int)])
    n = 1e6 * (1 + np.cos(np.arange(bins.size) / 7) ** 2)
    steps = np.repeat(np.arange(T), bins.size) if with_levels else np.zeros(0, int)
    return HeatmapPicture(
        symbol="BTCUSDT", day=DAY, variant="hybrid", grid=GRID, step_end=step_end, step_minutes=15,
        cell_step=steps, cell_side=np.tile(side, T) if with_levels else np.zeros(0, int),
        cell_bin=np.tile(bins, T) if with_levels else np.zeros(0, np.int64),
        cell_notional_usd=np.tile(n, T) * np.linspace(0.5, 1.5, T).repeat(bins.size) if with_levels else np.zeros(0),
        mark_time=step_end, mark_price=mark, oi_ref_usd=1e9,
        zones=[ZoneBand("long", 1, 93_000, 94_000, 5e7), ZoneBand("short", 1, 105_000, 106_000, 4e7)])


def _decode(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(io.BytesIO(png), format="png")[..., :3]


@pytest.mark.parametrize("render", [heatmap_png, liquidation_map_png])
def test_pngs_decode_and_are_not_blank(render):
    img = _decode(render(_picture()))
    assert img.shape[0] > 300 and img.shape[1] > 600
    assert img.std() > 0.05  # not a flat image
    # Dark background: most pixels are dark, but the data adds bright ones.
    luminance = img.mean(axis=2)
    assert np.median(luminance) < 0.3
    assert (luminance > 0.6).mean() > 0.005


def test_heatmap_png_shows_the_levels():
    """The same frame without levels has far fewer coloured pixels: the data is drawn, not only axes."""
    full = _decode(heatmap_png(_picture(True)))
    empty = _decode(heatmap_png(_picture(False)))
    coloured = lambda img: (np.ptp(img, axis=2) > 0.2).mean()  # noqa: E731  (saturated = colour map)
    assert coloured(full) > 5 * coloured(empty) + 0.05


def test_markdown_image_embeds_png():
    md = markdown_image(heatmap_png(_picture()), "heatmap")
    assert md.startswith("![heatmap](data:image/png;base64,iVBORw0KGgo")


def test_html_report_is_self_contained(tmp_path):
    path = write_heatmap_report(_picture(), tmp_path / "reports")
    assert path.name == "heatmap-BTCUSDT-2026-01-05.html"
    html = path.read_text()
    assert 'script src="http' not in html and len(html) > 1_000_000  # plotly.js inlined
    assert "Plotly.newPlot" in html and "93,000.00" in html  # the figure and the zone table


def test_picture_without_oi_reference_is_rejected():
    pic = _picture()
    bad = HeatmapPicture(**{**pic.__dict__, "oi_ref_usd": 0.0})
    with pytest.raises(ValueError, match="reference OI"):
        heatmap_png(bad)
