"""Standalone interactive HTML report of one symbol-day heatmap (plotly, JavaScript inlined: works offline).

Same data and the same fixed colour normalisation as the PNGs (plots/heatmap.py): colour = log10 of the
liquidation notional per bin as a share of the day's end OI, from log10(VMIN_SHARE_OF_OI) to
log10(VMAX_SHARE_OF_OI).
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np

from liq_pipeline.plots.heatmap import (
    COLORMAP,
    LONG_COLOR,
    SHORT_COLOR,
    VMAX_SHARE_OF_OI,
    VMIN_SHARE_OF_OI,
    HeatmapPicture,
)


def heatmap_report_html(pic: HeatmapPicture) -> str:
    """One HTML page: heatmap with mark line and zone bands on top, end-of-day liquidation map below."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    share, b0 = pic.share_matrix()
    bins = np.arange(b0, b0 + share.shape[1])
    mid = pic.grid.mid(bins)
    with np.errstate(divide="ignore"):
        z = np.where(share > 0, np.log10(share), np.nan).T  # (bins, T)
    times = pic.step_end.astype("datetime64[ms]").astype(str)
    price, long_usd, short_usd = pic.end_levels()

    fig = make_subplots(rows=2, cols=1, row_heights=[0.65, 0.35], vertical_spacing=0.08,
                        subplot_titles=(pic.title, f"liquidation map, end of {pic.day}"))
    fig.add_trace(go.Heatmap(
        x=times, y=mid, z=z, colorscale=COLORMAP.capitalize(), zmin=math.log10(VMIN_SHARE_OF_OI),
        zmax=math.log10(VMAX_SHARE_OF_OI), customdata=(share.T * pic.oi_ref_usd),
        hovertemplate="%{x} UTC<br>price %{y:,.2f}<br>notional $%{customdata:,.0f}<extra></extra>",
        colorbar=dict(title="log10(notional/OI)", len=0.6, y=0.72),
    ), row=1, col=1)
    if pic.mark_time.size:
        fig.add_trace(go.Scatter(x=pic.mark_time.astype("datetime64[ms]").astype(str), y=pic.mark_price,
                                 mode="lines", line=dict(color="white", width=1), name="mark price"), row=1, col=1)
    for zb in pic.zones:
        color = LONG_COLOR if zb.side == "long" else SHORT_COLOR
        fig.add_hrect(y0=zb.price_low, y1=zb.price_high, fillcolor=color, opacity=0.15, line_width=0, row=1, col=1)
    fig.add_trace(go.Bar(x=price, y=long_usd, marker_color=LONG_COLOR, name="long liquidations"), row=2, col=1)
    fig.add_trace(go.Bar(x=price, y=short_usd, marker_color=SHORT_COLOR, name="short liquidations"), row=2, col=1)
    mark = pic.last_mark()
    if math.isfinite(mark):
        fig.add_vline(x=mark, line_color="white", line_dash="dash", row=2, col=1)
    fig.update_layout(template="plotly_dark", height=900, barmode="overlay", bargap=0,
                      margin=dict(l=60, r=20, t=60, b=40))
    fig.update_yaxes(title_text="price (USDT)", row=1, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=1, col=1)
    fig.update_xaxes(title_text="price (USDT)", row=2, col=1)
    fig.update_yaxes(title_text="notional (USD)", row=2, col=1)
    body = fig.to_html(full_html=False, include_plotlyjs="inline")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in pic.notes)
    zones = "".join(
        f"<tr><td>{zb.side}</td><td>{zb.rank}</td><td>{zb.price_low:,.2f} – {zb.price_high:,.2f}</td>"
        f"<td>${zb.notional_usd:,.0f}</td></tr>" for zb in pic.zones)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(pic.title)}</title>"
        "<style>body{background:#111;color:#ddd;font-family:sans-serif;margin:1em}"
        "td,th{padding:2px 10px;text-align:right}</style></head><body>"
        f"<h2>{html.escape(pic.title)}</h2>"
        f"<p>Colour: liquidation notional per {html.escape(pic.grid.describe())} as a share of the day's end "
        f"open interest (${pic.oi_ref_usd:,.0f}), log scale {VMIN_SHARE_OF_OI:g} … {VMAX_SHARE_OF_OI:g}; "
        f"snapshots every {pic.step_minutes} min; levels consumed on mark price.</p>"
        f"{body}"
        f"<h3>Zones (end of day)</h3><table><tr><th>side</th><th>rank</th><th>range</th><th>notional</th></tr>"
        f"{zones}</table>"
        f"<h3>Notes</h3><ul>{notes or '<li>none</li>'}</ul></body></html>"
    )


def write_heatmap_report(pic: HeatmapPicture, out_dir: Path) -> Path:
    """Write `heatmap-<SYMBOL>-<DAY>.html` under `out_dir` (created if needed); returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"heatmap-{pic.symbol}-{pic.day.isoformat()}.html"
    path.write_text(heatmap_report_html(pic), encoding="utf-8")
    return path
