"""PNG pictures of one symbol-day's liquidation heatmap and end-of-day liquidation map (matplotlib, Agg).

Colour normalisation (fixed, so pictures compare across days and symbols): the colour of a cell is its
liquidation notional as a share of a reference open interest (the day's end OI), on a log scale from
`VMIN_SHARE_OF_OI` (0.001 % of OI per bin, darkest) to `VMAX_SHARE_OF_OI` (1 % of OI per bin, brightest),
with the perceptually uniform `inferno` colour map. Cells below the minimum are left at the background.
Both sides are summed in the heatmap (longs sit below the mark, shorts above it).
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field

import numpy as np

from liq_pipeline.model.grid import PriceGrid

VMIN_SHARE_OF_OI = 1e-5
VMAX_SHARE_OF_OI = 1e-2
COLORMAP = "inferno"
#: Price window shown around the day's mark range (±15 %): levels further out are off the picture.
WINDOW_REL = 0.15
BACKGROUND = "#0b0b12"
LONG_COLOR = "#35c3f2"
SHORT_COLOR = "#f2545b"
MARK_COLOR = "#ffffff"


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

    @property
    def title(self) -> str:
        return f"{self.symbol} {self.day} liquidation heatmap ({self.variant})"

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


def heatmap_png(pic: HeatmapPicture, width_in: float = 11.0, height_in: float = 6.0) -> bytes:
    """Heatmap PNG: UTC time × price, colour = notional share of OI per bin (module docstring), mark price
    line in white, zone bands (end of day) as translucent strips on the right edge."""
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

    cmap = plt.get_cmap(COLORMAP).with_extremes(under=BACKGROUND, bad=BACKGROUND)
    fig, ax = plt.subplots(figsize=(width_in, height_in), facecolor=BACKGROUND)
    ax.set_facecolor(BACKGROUND)
    masked = np.ma.masked_less_equal(share.T, 0)
    mesh = ax.pcolormesh(x, y, masked, cmap=cmap, norm=LogNorm(VMIN_SHARE_OF_OI, VMAX_SHARE_OF_OI, clip=False),
                         shading="flat", rasterized=True)
    if pic.mark_time.size:
        ax.plot(mdates.date2num(pic.mark_time.astype("datetime64[ms]").astype(dt.datetime)), pic.mark_price,
                color=MARK_COLOR, lw=1.0, label="mark price")
    span = x[-1] - x[0]
    for z in pic.zones:
        color = LONG_COLOR if z.side == "long" else SHORT_COLOR
        ax.fill_between([x[-1] - 0.04 * span, x[-1]], z.price_low, z.price_high, color=color, alpha=0.55, lw=0)
        ax.axhspan(z.price_low, z.price_high, color=color, alpha=0.08, lw=0)
    ax.set_ylim(y[0], y[-1])
    ax.set_xlim(x[0], x[-1])
    ax.xaxis.set_major_locator(mdates.HourLocator(interval=3))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.set_xlabel(f"time (UTC), {pic.day}", color="white")
    ax.set_ylabel("price (USDT)", color="white")
    ax.tick_params(colors="white")
    for spine in ax.spines.values():
        spine.set_color("#444455")
    ax.set_title(pic.title, color="white")
    cbar = fig.colorbar(mesh, ax=ax, pad=0.01, extend="both")
    cbar.set_label(f"liquidation notional per bin / OI (${pic.oi_ref_usd:,.0f}), log scale", color="white")
    cbar.ax.tick_params(colors="white")
    if pic.mark_time.size:
        ax.legend(loc="upper left", facecolor=BACKGROUND, edgecolor="#444455", labelcolor="white", fontsize=8)
    fig.tight_layout()
    return _figure_png(fig)


def liquidation_map_png(pic: HeatmapPicture, width_in: float = 11.0, height_in: float = 5.0) -> bytes:
    """End-of-day liquidation map PNG: notional per bin (longs below the mark, shorts above) as bars, and the
    cumulative notional that a move from the mark to each price would liquidate as lines."""
    import matplotlib.pyplot as plt

    price, long_usd, short_usd = pic.end_levels()
    mark = pic.last_mark()
    fig, ax = plt.subplots(figsize=(width_in, height_in), facecolor=BACKGROUND)
    ax.set_facecolor(BACKGROUND)
    bins = np.arange(price.size) + pic.window_bins()[0]
    width = pic.grid.high(bins) - pic.grid.low(bins)
    ax.bar(price, long_usd / 1e6, width=width, color=LONG_COLOR, label="long liquidations")
    ax.bar(price, short_usd / 1e6, width=width, color=SHORT_COLOR, label="short liquidations")
    ax2 = ax.twinx()
    if np.isfinite(mark):
        below = price <= mark
        cum_long = np.cumsum(long_usd[below][::-1])[::-1]  # from each price up to the mark
        cum_short = np.cumsum(short_usd[~below])
        ax2.plot(price[below], cum_long / 1e6, color=LONG_COLOR, lw=1.2)
        ax2.plot(price[~below], cum_short / 1e6, color=SHORT_COLOR, lw=1.2)
        ax.axvline(mark, color=MARK_COLOR, lw=1.0, ls="--", label=f"mark {mark:,.2f}")
    for z in pic.zones:
        ax.axvspan(z.price_low, z.price_high, color=LONG_COLOR if z.side == "long" else SHORT_COLOR, alpha=0.12, lw=0)
    for a, label in ((ax, "notional per bin (M USD)"), (ax2, "cumulative from mark (M USD)")):
        a.tick_params(colors="white")
        a.set_ylabel(label, color="white")
        for spine in a.spines.values():
            spine.set_color("#444455")
    ax.set_xlabel("price (USDT)", color="white")
    ax.set_title(f"{pic.symbol} liquidation map, end of {pic.day} ({pic.variant})", color="white")
    ax.legend(loc="upper left", facecolor=BACKGROUND, edgecolor="#444455", labelcolor="white", fontsize=8)
    fig.tight_layout()
    return _figure_png(fig)
