"""PNG pictures of one symbol-day's liquidation heatmap and end-of-day liquidation map (matplotlib, Agg).

Colour: a cell's liquidation notional in USD, on a log scale with the perceptually uniform `inferno` colour
map; the colour bar reads dollars. The limits are chosen on the share of a reference open interest (the
day's end OI). Two scales (`LIQ_HEATMAP_COLOR_SCALE`):
- `percentile` (default): from the 50th to the 99.5th percentile of the picture's non-empty cells, so the
  densest levels stand out on every day, however concentrated or spread the book is;
- `fixed`: from `VMIN_SHARE_OF_OI` (0.001 % of OI per bin) to `VMAX_SHARE_OF_OI` (1 %), the same on every
  day and symbol, for comparing brightness across pictures.
Cells below the lower bound are left at the background. Both sides are summed in the heatmap (longs sit
below the mark, shorts above it); colours of longs and shorts are those of `liq_pipeline.plots`.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import os
from dataclasses import dataclass, field

import numpy as np

from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.plots import BACKGROUND, LONG_COLOR, MARK_COLOR, SHORT_COLOR, figure_note, price_label

__all__ = ["BACKGROUND", "LONG_COLOR", "MARK_COLOR", "SHORT_COLOR"]

VMIN_SHARE_OF_OI = 1e-5
VMAX_SHARE_OF_OI = 1e-2
COLOR_SCALES = ("percentile", "fixed")
#: Percentiles of the non-empty cells mapped to the ends of the colour map by the `percentile` scale.
PERCENTILE_RANGE = (50.0, 99.5)
COLORMAP = "inferno"
#: Price window shown around the day's mark range (±15 %): levels further out are off the picture.
WINDOW_REL = 0.15
GRID_COLOR = "#444455"


def default_color_scale() -> str:
    """`LIQ_HEATMAP_COLOR_SCALE`: `percentile` (default) or `fixed`."""
    scale = os.environ.get("LIQ_HEATMAP_COLOR_SCALE", "").strip() or "percentile"
    if scale not in COLOR_SCALES:
        raise ValueError(f"LIQ_HEATMAP_COLOR_SCALE must be one of {', '.join(COLOR_SCALES)}, got {scale!r}")
    return scale


def usd_label(v: float) -> str:
    """A dollar amount as a short colour-bar label: $500, $20k, $1.5M, $2B."""
    a = abs(v)
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if a >= div:
            return f"${v / div:.3g}{unit}"
    return f"${v:.3g}"


def usd_ticks(lo_usd: float, hi_usd: float) -> list[float]:
    """1-2-5 dollar ticks inside [lo_usd, hi_usd] (both ends when fewer than two fall inside)."""
    if not (hi_usd > lo_usd > 0):
        return []
    ticks = [m * 10.0**k for k in range(math.floor(math.log10(lo_usd)), math.ceil(math.log10(hi_usd)) + 1)
             for m in (1, 2, 5)]
    inside = [t for t in ticks if lo_usd <= t <= hi_usd]
    return inside if len(inside) >= 2 else [lo_usd, hi_usd]


def color_limits(share: np.ndarray, scale: str) -> tuple[float, float, str]:
    """(lower, upper) share of OI mapped to the ends of the colour map, and how they were chosen."""
    if scale not in COLOR_SCALES:
        raise ValueError(f"colour scale must be one of {', '.join(COLOR_SCALES)}, got {scale!r}")
    positive = share[share > 0]
    if scale == "fixed" or positive.size == 0:
        return VMIN_SHARE_OF_OI, VMAX_SHARE_OF_OI, f"fixed scale {VMIN_SHARE_OF_OI * 100:g}%–{VMAX_SHARE_OF_OI * 100:g}% of OI"
    lo, hi = np.percentile(positive, PERCENTILE_RANGE)
    if not hi > lo:
        lo, hi = hi / 10, hi
    return float(lo), float(hi), f"p{PERCENTILE_RANGE[0]:g}–p{PERCENTILE_RANGE[1]:g} of this picture's cells"


@dataclass(frozen=True)
class ZoneBand:
    side: str  # "long" / "short"
    rank: int
    price_low: float
    price_high: float
    notional_usd: float


@dataclass(frozen=True)
class HeatmapPicture:
    """Everything a picture of one symbol-day (one variant) needs. Times naive UTC datetime64; USD."""

    symbol: str
    day: dt.date
    variant: str
    grid: PriceGrid
    step_end: np.ndarray  # (T,) snapshot times
    step_minutes: int
    cell_step: np.ndarray  # (R,) index into step_end
    cell_side: np.ndarray  # (R,) +1 long / -1 short
    cell_bin: np.ndarray  # (R,)
    cell_notional_usd: np.ndarray  # (R,)
    mark_time: np.ndarray  # (M,)
    mark_price: np.ndarray  # (M,)
    oi_ref_usd: float
    zones: list[ZoneBand] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: When the zones were measured, shown in the legend ("end of day", "12:00 UTC").
    zones_as_of: str = "end of day"
    #: `percentile` or `fixed` (module docstring).
    color_scale: str = field(default_factory=default_color_scale)

    @property
    def title(self) -> str:
        return f"{self.symbol} {self.day} liquidation heatmap ({self.variant})"

    @property
    def last_time(self) -> str:
        """The last snapshot shown, as HH:MM UTC (24:00 for the end of the day)."""
        end = self.step_end[-1].astype("datetime64[m]").astype(dt.datetime)
        return "24:00" if end.date() > self.day else f"{end:%H:%M}"

    def window_bins(self) -> tuple[int, int]:
        """Bin ids shown: the mark range ±WINDOW_REL, else every bin with notional."""
        if self.mark_price.size and np.isfinite(self.mark_price).any():
            lo = np.nanmin(self.mark_price) * (1 - WINDOW_REL)
            hi = np.nanmax(self.mark_price) * (1 + WINDOW_REL)
            return int(self.grid.bin_id(lo)), int(self.grid.bin_id(hi))
        if self.cell_bin.size == 0:
            raise ValueError(f"{self.title}: no levels and no mark price to draw")
        return int(self.cell_bin.min()), int(self.cell_bin.max())

    def share_matrix(self) -> tuple[np.ndarray, int]:
        """(T, nbins) notional share of `oi_ref_usd` per step and bin (sides summed), and the first bin id."""
        b0, b1 = self.window_bins()
        m = np.zeros((self.step_end.size, b1 - b0 + 1))
        inside = (self.cell_bin >= b0) & (self.cell_bin <= b1)
        np.add.at(m, (self.cell_step[inside], self.cell_bin[inside] - b0), self.cell_notional_usd[inside])
        return m / self.oi_ref_usd, b0

    def end_levels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Last snapshot inside the window: (bin mid price, long USD, short USD) per bin, ascending."""
        b0, b1 = self.window_bins()
        last = self.cell_step == (self.step_end.size - 1)
        sel = last & (self.cell_bin >= b0) & (self.cell_bin <= b1)
        bins = np.arange(b0, b1 + 1)
        long_usd = np.zeros(bins.size)
        short_usd = np.zeros(bins.size)
        is_long = self.cell_side[sel] > 0
        np.add.at(long_usd, self.cell_bin[sel][is_long] - b0, self.cell_notional_usd[sel][is_long])
        np.add.at(short_usd, self.cell_bin[sel][~is_long] - b0, self.cell_notional_usd[sel][~is_long])
        return self.grid.mid(bins), long_usd, short_usd

    def last_mark(self) -> float:
        ok = np.isfinite(self.mark_price)
        return float(self.mark_price[ok][-1]) if ok.any() else float("nan")


def _figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, facecolor=fig.get_facecolor())
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _style_axes(ax) -> None:
    ax.set_facecolor(BACKGROUND)
    ax.tick_params(colors="white", labelsize=8)
    for spine in ax.spines.values():
        spine.set_color(GRID_COLOR)


def _price_formatter():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: price_label(v))


def visible_zones(pic: HeatmapPicture, low: float, high: float) -> list[tuple[ZoneBand, float, float]]:
    """Zones that overlap the price window [low, high], clipped to it (a zone outside is not drawn)."""
    return [(z, max(z.price_low, low), min(z.price_high, high)) for z in pic.zones
            if z.price_high > low and z.price_low < high]


def _zone_legend_handles(pic: HeatmapPicture, shown: list) -> list:
    from matplotlib.patches import Patch

    handles = []
    for side, color in (("long", LONG_COLOR), ("short", SHORT_COLOR)):
        n = sum(1 for z, _, _ in shown if z.side == side)
        if n:
            handles.append(Patch(color=color, alpha=0.6,
                                 label=f"{side} liquidation zone{'s' if n > 1 else ''} ({pic.zones_as_of})"))
    return handles


def heatmap_png(pic: HeatmapPicture, width_in: float = 11.0, height_in: float = 6.0) -> bytes:
    """Heatmap PNG: UTC time × price, colour = liquidation notional per bin in USD (module docstring), mark
    price line in white, the zones inside the price window as bands on the right edge labelled L1…/S1…"""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    if not pic.oi_ref_usd > 0:
        raise ValueError(f"{pic.title}: reference OI must be positive, got {pic.oi_ref_usd!r}")
    share, b0 = pic.share_matrix()
    edges_bin = np.arange(b0, b0 + share.shape[1] + 1)
    y = pic.grid.low(edges_bin)
    t_end = pic.step_end.astype("datetime64[ms]")
    t_edges = np.concatenate([[t_end[0] - np.timedelta64(pic.step_minutes, "m")], t_end]).astype(dt.datetime)
    x = mdates.date2num(t_edges)
    vmin, vmax, scale_text = color_limits(share, pic.color_scale)

    cmap = plt.get_cmap(COLORMAP).with_extremes(under=BACKGROUND, bad=BACKGROUND)
    fig, ax = plt.subplots(figsize=(width_in, height_in), facecolor=BACKGROUND)
    _style_axes(ax)
    oi = pic.oi_ref_usd
    masked = np.ma.masked_less_equal(share.T * oi, 0)
    mesh = ax.pcolormesh(x, y, masked, cmap=cmap, norm=LogNorm(vmin * oi, vmax * oi, clip=False), shading="flat",
                         rasterized=True)
    handles = []
    if pic.mark_time.size:
        (line,) = ax.plot(mdates.date2num(pic.mark_time.astype("datetime64[ms]").astype(dt.datetime)),
                          pic.mark_price, color=MARK_COLOR, lw=1.0, label="mark price")
        handles.append(line)
    span = x[-1] - x[0]
    shown = visible_zones(pic, y[0], y[-1])
    for z, lo, hi in shown:
        color = LONG_COLOR if z.side == "long" else SHORT_COLOR
        ax.fill_between([x[-1] - 0.035 * span, x[-1]], lo, hi, color=color, alpha=0.6, lw=0)
        ax.axhspan(lo, hi, color=color, alpha=0.07, lw=0)
        ax.text(x[-1] - 0.04 * span, (lo + hi) / 2, f"{z.side[0].upper()}{z.rank}", color=color, fontsize=7,
                ha="right", va="center", fontweight="bold",
                bbox=dict(boxstyle="round,pad=0.15", facecolor=BACKGROUND, edgecolor="none", alpha=0.75))
    handles += _zone_legend_handles(pic, shown)
    ax.set_ylim(y[0], y[-1])
    ax.set_xlim(x[0], x[-1])
    ax.xaxis.set_major_locator(mdates.HourLocator(interval=3))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.yaxis.set_major_formatter(_price_formatter())
    ax.set_xlabel(f"time (UTC), {pic.day}", color="white")
    ax.set_ylabel("liquidation price (USDT)", color="white")
    ax.set_title(f"{pic.title}, snapshots every {pic.step_minutes} min to {pic.last_time} UTC",
                 color="white", fontsize=11)
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    cbar = fig.colorbar(mesh, ax=ax, pad=0.01, extend="both")
    cbar.set_label("liquidations per price bin, USD (log)", color="white", fontsize=8)
    fig.text(0.99, 0.005, f"bins: {pic.grid.describe()}; colour limits: {scale_text}; OI ${oi / 1e6:,.1f} M",
             color="#aaaabb", fontsize=6.5, ha="right", va="bottom")
    cbar.ax.yaxis.set_major_locator(FixedLocator(usd_ticks(vmin * oi, vmax * oi)))
    cbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: usd_label(v)))
    cbar.ax.yaxis.set_minor_locator(NullLocator())
    cbar.ax.yaxis.set_minor_formatter(NullFormatter())
    cbar.ax.tick_params(colors="white", labelsize=7)
    if handles:
        ax.legend(handles=handles, loc="upper left", facecolor=BACKGROUND, edgecolor=GRID_COLOR,
                  labelcolor="white", fontsize=7, framealpha=0.8)
    fig.tight_layout()
    return _figure_png(fig)


#: Why the heatmap's end-of-day map and the `liquidation_levels` map have different totals.
END_STATE_NOTE = ("levels of the heatmap's end state: opened by OI increases at traded prices since the run's "
                  "first day, shrunk by OI decreases, consumed by mark price (the liquidation_levels map "
                  "spreads the whole OI over the 30-day volume profile instead, so its totals differ)")


def liquidation_map_png(pic: HeatmapPicture, width_in: float = 11.0, height_in: float = 5.0) -> bytes:
    """End-of-day liquidation map PNG: notional per bin (longs below the mark, shorts above) as bars, and the
    cumulative notional that a move from the mark to each price would liquidate as lines."""
    import matplotlib.pyplot as plt

    price, long_usd, short_usd = pic.end_levels()
    mark = pic.last_mark()
    fig, ax = plt.subplots(figsize=(width_in, height_in), facecolor=BACKGROUND)
    _style_axes(ax)
    bins = np.arange(price.size) + pic.window_bins()[0]
    edges = np.append(pic.grid.low(bins), pic.grid.high(bins[-1:]))  # contiguous bins: one patch per side
    ax.stairs(long_usd / 1e6, edges, fill=True, color=LONG_COLOR,
              label=f"long liquidations ${long_usd.sum() / 1e6:,.1f} M in view")
    ax.stairs(short_usd / 1e6, edges, fill=True, color=SHORT_COLOR,
              label=f"short liquidations ${short_usd.sum() / 1e6:,.1f} M in view")
    ax2 = ax.twinx()
    _style_axes(ax2)
    if np.isfinite(mark):
        below = price <= mark
        cum_long = np.cumsum(long_usd[below][::-1])[::-1]  # from each price up to the mark
        cum_short = np.cumsum(short_usd[~below])
        ax2.plot(price[below], cum_long / 1e6, color=LONG_COLOR, lw=1.2)
        ax2.plot(price[~below], cum_short / 1e6, color=SHORT_COLOR, lw=1.2)
        ax.axvline(mark, color=MARK_COLOR, lw=1.0, ls="--", label=f"mark {price_label(mark)}")
    lo, hi = pic.grid.low(bins[0]) if bins.size else 0.0, pic.grid.high(bins[-1]) if bins.size else 0.0
    shown = visible_zones(pic, lo, hi)
    for z, zlo, zhi in shown:
        ax.axvspan(zlo, zhi, color=LONG_COLOR if z.side == "long" else SHORT_COLOR, alpha=0.12, lw=0)
    for a, label in ((ax, "notional per bin (M USD)"), (ax2, "cumulative from mark (M USD)")):
        a.set_ylabel(label, color="white")
    ax.xaxis.set_major_formatter(_price_formatter())
    ax.set_xlabel("liquidation price (USDT)", color="white")
    when = f"the end of {pic.day}" if pic.last_time == "24:00" else f"{pic.day} {pic.last_time} UTC"
    ax.set_title(f"{pic.symbol} liquidation map at {when}, from the heatmap ({pic.variant})",
                 color="white", fontsize=11)
    figure_note(fig, 0.01, 0.01, END_STATE_NOTE, color="#aaaabb", fontsize=6.5)
    h1, l1 = ax.get_legend_handles_labels()
    extra = _zone_legend_handles(pic, shown)
    ax.legend(handles=h1 + extra, loc="upper left", facecolor=BACKGROUND, edgecolor=GRID_COLOR,
              labelcolor="white", fontsize=7, framealpha=0.8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _figure_png(fig)
