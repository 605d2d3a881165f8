"""Pictures: the heatmap and liquidation-map PNGs decode, are not blank, and show the data; the colour
scale lets the densest levels stand out; zones outside the window are not drawn; one colour convention;
the HTML report offers every variant and works offline."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io

import matplotlib.image as mpimg
import numpy as np
import pytest

from liq_pipeline.model.grid import grid_for
from liq_pipeline.model.variants import NAMES as VARIANTS
from liq_pipeline.plots import markdown_image, price_label
from liq_pipeline.plots.heatmap import (
    VMAX_SHARE_OF_OI,
    VMIN_SHARE_OF_OI,
    HeatmapPicture,
    ZoneBand,
    color_limits,
    heatmap_png,
    liquidation_map_png,
    visible_zones,
)
from liq_pipeline.plots.report import heatmap_report_html, write_heatmap_report

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


@pytest.mark.parametrize("scale", ["percentile", "fixed"])
def test_heatmap_png_shows_the_levels(scale):
    """The same frame without levels has far fewer coloured pixels: the data is drawn, not only axes."""
    full = _decode(heatmap_png(dataclasses.replace(_picture(True), color_scale=scale)))
    empty = _decode(heatmap_png(dataclasses.replace(_picture(False), color_scale=scale)))
    coloured = lambda img: (np.ptp(img, axis=2) > 0.2).mean()  # noqa: E731  (saturated = colour map)
    assert coloured(full) > 4 * coloured(empty) + 0.05


def test_markdown_image_embeds_png():
    md = markdown_image(heatmap_png(_picture()), "heatmap")
    assert md.startswith("![heatmap](data:image/png;base64,iVBORw0KGgo")


def test_html_report_offers_every_variant_and_works_offline(tmp_path):
    pics = [dataclasses.replace(_picture(), variant=v) for v in VARIANTS]
    path = write_heatmap_report(pics, tmp_path / "reports", default_variant="hybrid")
    assert path.name == "heatmap-BTCUSDT-2026-01-05.html"
    html = path.read_text()
    # plotly.js written once beside the reports (works offline, ~4 MB not repeated in every report).
    assert (path.parent / "plotly.min.js").stat().st_size > 1_000_000
    assert '<script charset="utf-8" src="plotly.min.js"></script>' in html and 'src="http' not in html
    assert "Plotly.newPlot" in html and "93,000.00" in html  # the figure and the zone table
    for v in VARIANTS:  # one menu entry per variant
        assert f'"label":"{v}"' in html
    assert len(heatmap_report_html(pics)) > 1_000_000  # the standalone page (liq --format html) inlines it


def test_percentile_scale_makes_the_densest_cells_bright_on_a_quiet_day():
    """A day whose levels are all far below the fixed scale's top still spans the colour map."""
    rng = np.random.default_rng(1)
    share = np.where(rng.random((96, 300)) < 0.5, 10 ** rng.uniform(-7, -5.5, (96, 300)), 0.0)
    share[40:44, 100:103] = 2e-4  # a dense cluster, 50× below the fixed upper bound
    lo, hi, text = color_limits(share, "percentile")
    assert lo < hi <= 2e-4 and share[40, 100] >= hi and "p50" in text
    assert color_limits(share, "fixed")[:2] == (VMIN_SHARE_OF_OI, VMAX_SHARE_OF_OI)
    with pytest.raises(ValueError, match="colour scale"):
        color_limits(share, "rainbow")


def test_zones_outside_the_price_window_are_not_drawn():
    pic = dataclasses.replace(_picture(), zones=[ZoneBand("long", 1, 93_000, 94_000, 5e7),
                                                 ZoneBand("short", 2, 150_000, 151_000, 4e7),
                                                 ZoneBand("short", 1, 114_000, 130_000, 4e7)])
    shown = visible_zones(pic, 85_000.0, 115_000.0)
    assert [(z.side, z.rank, lo, hi) for z, lo, hi in shown] == [("long", 1, 93_000, 94_000),
                                                                ("short", 1, 114_000, 115_000.0)]


def test_one_colour_convention_for_longs_and_shorts():
    from liq_pipeline import plots
    from liq_pipeline.plots import heatmap, liquidation_map, report

    for module in (heatmap, liquidation_map, report):
        assert (module.LONG_COLOR, module.SHORT_COLOR) == (plots.LONG_COLOR, plots.SHORT_COLOR)
    assert price_label(98_765.4321) == "98,765" and price_label(2.5) == "2.50"


def test_picture_without_oi_reference_is_rejected():
    pic = _picture()
    bad = HeatmapPicture(**{**pic.__dict__, "oi_ref_usd": 0.0})
    with pytest.raises(ValueError, match="reference OI"):
        heatmap_png(bad)


def _figure_json(html: str) -> dict:
    """The figure of a report page (the arguments of Plotly.newPlot)."""
    import json

    start = html.index("Plotly.newPlot(")
    data_start = html.index("[", start)
    decoder = json.JSONDecoder()
    data, end = decoder.raw_decode(html, data_start)
    layout, _ = decoder.raw_decode(html, html.index("{", end))
    return {"data": data, "layout": layout}


def test_html_report_reads_in_dollars_with_price_on_one_shared_axis_and_a_readable_menu():
    fig = _figure_json(heatmap_report_html([dataclasses.replace(_picture(), variant=v) for v in ("hybrid", "flow")],
                                           inline=False))
    heat = next(t for t in fig["data"] if t["type"] == "heatmap")
    assert heat["colorbar"]["ticktext"] and all(t.startswith("$") for t in heat["colorbar"]["ticktext"])
    assert "USD" in heat["colorbar"]["title"]["text"] and "OI" not in heat["colorbar"]["title"]["text"]
    bars = [t for t in fig["data"] if t["type"] == "bar"]
    assert bars and all(b["orientation"] == "h" for b in bars)
    axes = {b["yaxis"] for b in bars}
    assert axes == {"y2"} and fig["layout"]["yaxis2"]["matches"] == heat.get("yaxis", "y") == "y"  # one price axis
    assert fig["layout"]["xaxis2"]["title"]["text"] == "notional per bin (USD)"  # price is not on x
    menu = fig["layout"]["updatemenus"][0]
    assert menu["bgcolor"] == "#22223a" and menu["font"]["color"] == "#eeeeff"  # light on dark, not white on white


def test_usd_ticks_and_labels():
    from liq_pipeline.plots.heatmap import usd_label, usd_ticks

    assert usd_ticks(3e3, 6e4) == [5e3, 1e4, 2e4, 5e4]
    assert [usd_label(v) for v in (500, 2e4, 1.5e6, 2e9)] == ["$500", "$20k", "$1.5M", "$2B"]
    assert usd_ticks(1.1e4, 1.5e4) == [1.1e4, 1.5e4]  # fewer than two inside: both ends
