"""The liquidation-map picture for asset metadata: notional at risk per price, cumulative from the mark.

Bars show liquidation notional per grid bin (longs below the mark, shorts above, in the colours of
`liq_pipeline.plots`, as in every picture); the lines show the cumulative notional a move from the mark to
that price would liquidate; a caption gives the totals and which model they come from. Dark background
as in the usual liquidation maps. Returns PNG bytes (matplotlib, Agg backend).
"""

from __future__ import annotations

import io

import numpy as np

# matplotlib.pyplot is imported where a picture is drawn, not here: the definitions import this module, and every
# process that loads them without drawing (a run worker, the code server, `dagster asset materialize`) would pay
# about 0.5 s of CPU for it (the Agg backend is chosen by liq_pipeline.plots, imported first).
from liq_pipeline.plots import LONG_COLOR, MARK_COLOR, SHORT_COLOR, figure_note, price_label

#: Which model this map shows, and why its totals differ from the heatmap's end-of-day map.
LEVELS_NOTE = ("liquidation_levels: the whole open interest spread over the 30-day volume profile, levels "
               "already crossed by mark dropped (the heatmap's map evolves levels from OI flow instead, so its "
               "totals differ)")


def cumulative_from_mark(price: np.ndarray, notional_usd: np.ndarray, side: int, mark_price: float
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Prices sorted away from the mark and the cumulative notional liquidated by reaching each (USD).

    Longs (`side` +1) are summed from the mark downward, shorts (−1) from the mark upward.
    """
    p = np.asarray(price, dtype=np.float64)
    n = np.asarray(notional_usd, dtype=np.float64)
    order = np.argsort(-p if side > 0 else p, kind="stable")
    if mark_price is not None and np.isfinite(mark_price):
        order = order[(p[order] < mark_price) if side > 0 else (p[order] > mark_price)]
    return p[order], np.cumsum(n[order])


def _bar_width(prices: np.ndarray) -> float:
    """Smallest gap between distinct level prices (about one grid bin), 0.1 % of price for a lone level."""
    diffs = np.diff(np.unique(prices))
    if diffs.size:
        return float(diffs.min())
    return float(abs(prices[0])) * 0.001 if prices.size else 1.0


def _bars(ax, x: np.ndarray, height: np.ndarray, width: float, color: str, label: str) -> None:
    """Bars centred on `x` from 0 to `height` as one collection: the same picture as `ax.bar`, which makes
    one Rectangle artist per bar (hundreds here, most of the picture's drawing time)."""
    from matplotlib.collections import PolyCollection

    x0, x1 = x - width / 2, x + width / 2
    zero = np.zeros_like(x)
    verts = np.stack([np.column_stack(c) for c in ((x0, zero), (x0, height), (x1, height), (x1, zero))], axis=1)
    bars = PolyCollection(verts, facecolors=color, edgecolors="none", alpha=0.75, label=label)
    bars.sticky_edges.y.append(0.0)  # as ax.bar: no margin below zero
    ax.add_collection(bars, autolim=True)
    ax.autoscale_view()


def liquidation_map_png(
    long_price: np.ndarray,
    long_notional_usd: np.ndarray,
    short_price: np.ndarray,
    short_notional_usd: np.ndarray,
    mark_price: float | None,
    title: str,
    bar_width_usd: float | None = None,
    note: str = LEVELS_NOTE,
) -> bytes:
    """A small liquidation-map PNG (about 800×420 px). Prices and notionals in USD."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    lp, ln = np.asarray(long_price, float), np.asarray(long_notional_usd, float)
    sp, sn = np.asarray(short_price, float), np.asarray(short_notional_usd, float)
    with plt.style.context("dark_background"):
        fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
        try:
            width = bar_width_usd or _bar_width(np.concatenate([lp, sp]))
            _bars(ax, lp, ln / 1e6, width, LONG_COLOR, f"long liquidations ${ln.sum() / 1e6:,.1f} M")
            _bars(ax, sp, sn / 1e6, width, SHORT_COLOR, f"short liquidations ${sn.sum() / 1e6:,.1f} M")
            ax2 = ax.twinx()
            if mark_price is not None:
                for side, p, n, color in ((1, lp, ln, LONG_COLOR), (-1, sp, sn, SHORT_COLOR)):
                    cp, cn = cumulative_from_mark(p, n, side, mark_price)
                    if cp.size:
                        ax2.step(np.concatenate([[mark_price], cp]), np.concatenate([[0.0], cn]) / 1e6,
                                 where="post", color=color, lw=1.6)
                ax.axvline(mark_price, color=MARK_COLOR, lw=1.2, ls="--", label=f"mark {price_label(mark_price)}")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: price_label(v)))
            ax.set_xlabel("liquidation price (USD)")
            ax.set_ylabel("notional per bin (M USD)")
            ax2.set_ylabel("cumulative from mark (M USD)")
            ax.set_title(title, fontsize=10)
            ax.legend(loc="upper left", fontsize=7, framealpha=0.3)
            ax.grid(alpha=0.15)
            figure_note(fig, 0.01, 0.01, note, fontsize=6, color="#aaaabb")
            fig.tight_layout(rect=(0, 0.06, 1, 1))
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
        finally:
            plt.close(fig)
    return buf.getvalue()


def liquidation_map_markdown(long_price: np.ndarray, long_notional_usd: np.ndarray, short_price: np.ndarray,
                             short_notional_usd: np.ndarray, mark_price: float | None, title: str,
                             bar_width_usd: float | None, alt: str) -> str:
    """`liquidation_map_png` as a markdown image (the levels' metadata; plots/workers.py draws it)."""
    from liq_pipeline.plots import markdown_image

    return markdown_image(liquidation_map_png(long_price, long_notional_usd, short_price, short_notional_usd,
                                              mark_price, title, bar_width_usd=bar_width_usd), alt)
