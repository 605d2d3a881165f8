"""Interactive HTML report of one symbol-day heatmap (plotly), every variant selectable from a menu.

Same data, colours and colour scale as the PNGs (plots/heatmap.py): colour = the liquidation notional per
bin in USD (log), on the picture's percentile range or the fixed range; the colour bar reads dollars. The
end-of-day liquidation map sits to the right of the heatmap on the same price axis. The plotly library is
written once beside the reports (`plotly.min.js`, works offline) unless `inline`.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np

from liq_pipeline.plots import LONG_COLOR, MARK_COLOR, SHORT_COLOR
from liq_pipeline.plots.heatmap import (
    BACKGROUND,
    COLORMAP,
    END_STATE_NOTE,
    HeatmapPicture,
    color_limits,
    usd_label,
    usd_ticks,
    visible_zones,
)

PLOTLY_JS = "plotly.min.js"


def _variant_traces(pic: HeatmapPicture, visible: bool) -> tuple[list, list[dict], str]:
    """(traces, zone shapes, colour-scale text) of one variant: heatmap in column 1, the end-of-day long/short
    notional per bin as horizontal bars in column 2 (same price axis)."""
    import plotly.graph_objects as go

    share, b0 = pic.share_matrix()
    mid = pic.grid.mid(np.arange(b0, b0 + share.shape[1]))
    vmin, vmax, scale_text = color_limits(share, pic.color_scale)
    usd = share * pic.oi_ref_usd
    with np.errstate(divide="ignore"):
        z = np.where(usd > 0, np.log10(usd), np.nan).T.astype(np.float32)  # (bins, T)
    lo_usd, hi_usd = vmin * pic.oi_ref_usd, vmax * pic.oi_ref_usd
    ticks = usd_ticks(lo_usd, hi_usd)
    times = pic.step_end.astype("datetime64[ms]").astype(str)
    price, long_usd, short_usd = pic.end_levels()
    heat = go.Heatmap(
        x=times, y=mid, z=z, zmin=math.log10(lo_usd), zmax=math.log10(hi_usd), colorscale=COLORMAP.capitalize(),
        customdata=np.round(usd.T).astype(np.float32), visible=visible, name=pic.variant,
        hovertemplate="%{x} UTC<br>price %{y:,.2f}<br>notional $%{customdata:,.0f}<extra>" + pic.variant + "</extra>",
        colorbar=dict(title=dict(text=f"liquidations per price bin ({pic.grid.describe()}), USD, log colour", side="top"),
                      orientation="h", x=0.36, xanchor="center", y=-0.12, yanchor="top", len=0.7, thickness=12,
                      tickvals=[math.log10(t) for t in ticks], ticktext=[usd_label(t) for t in ticks]),
        showlegend=False)
    bars = [go.Bar(x=side_usd, y=price, orientation="h", marker_color=color, name=f"{side} liquidations ({pic.variant})",
                   visible=visible, legendgroup=side, hovertemplate="%{x:$,.0f} at %{y:,.2f}<extra></extra>")
            for side, side_usd, color in (("long", long_usd, LONG_COLOR), ("short", short_usd, SHORT_COLOR))]
    lo, hi = float(pic.grid.low(b0)), float(pic.grid.high(b0 + share.shape[1] - 1))
    shapes = [dict(type="rect", xref=f"{axis} domain", x0=0, x1=1, yref="y", y0=zlo, y1=zhi, line_width=0,
                   opacity=0.18, fillcolor=LONG_COLOR if zb.side == "long" else SHORT_COLOR, layer="above")
              for zb, zlo, zhi in visible_zones(pic, lo, hi) for axis in ("x", "x2")]
    return [heat, *bars], shapes, scale_text


def heatmap_report_html(pictures: list[HeatmapPicture] | HeatmapPicture, default_variant: str | None = None,
                        inline: bool = True) -> str:
    """One HTML page for one symbol-day: a variant menu, the heatmap with mark line and zones on top, the
    end-of-day liquidation map below, the zone table and the notes of the selected variant."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    pics = [pictures] if isinstance(pictures, HeatmapPicture) else list(pictures)
    if not pics:
        raise ValueError("no picture to report")
    first = pics[0]
    default = default_variant if default_variant in {p.variant for p in pics} else first.variant
    fig = make_subplots(rows=1, cols=2, column_widths=[0.72, 0.28], shared_yaxes=True, horizontal_spacing=0.02,
                        subplot_titles=("liquidation heatmap (time × price)",
                                        f"liquidation map at the end of {first.day}"))
    per_variant, shapes, scales = [], {}, {}
    for p in pics:
        traces, shapes[p.variant], scales[p.variant] = _variant_traces(p, p.variant == default)
        for i, trace in enumerate(traces):
            fig.add_trace(trace, row=1, col=1 if i == 0 else 2)
        per_variant.append((p.variant, len(traces)))
    if first.mark_time.size:
        fig.add_trace(go.Scatter(
            x=first.mark_time.astype("datetime64[ms]").astype(str), y=first.mark_price, mode="lines",
            line=dict(color=MARK_COLOR, width=1), name="mark price"), row=1, col=1)
    n_mark = 1 if first.mark_time.size else 0
    buttons = []
    for variant, _ in per_variant:
        visible = [v == variant for v, n in per_variant for _ in range(n)] + [True] * n_mark
        buttons.append(dict(label=variant, method="update",
                            args=[{"visible": visible}, {"shapes": shapes[variant]}]))
    mark = first.last_mark()
    mark_shape = ([dict(type="line", xref="x2 domain", x0=0, x1=1, yref="y", y0=mark, y1=mark,
                        line=dict(color=MARK_COLOR, dash="dash", width=1))] if math.isfinite(mark) else [])
    for b in buttons:
        b["args"][1]["shapes"] = b["args"][1]["shapes"] + mark_shape
    fig.update_layout(
        template="plotly_dark", height=760, barmode="overlay", bargap=0, shapes=shapes[default] + mark_shape,
        paper_bgcolor=BACKGROUND, plot_bgcolor=BACKGROUND, margin=dict(l=80, r=30, t=90, b=150),
        # A dark menu with light text: plotly's default light menu on the dark template reads white on white.
        updatemenus=[dict(buttons=buttons, active=[v for v, _ in per_variant].index(default), x=0, xanchor="left",
                          y=1.10, yanchor="bottom", showactive=True, bgcolor="#22223a", bordercolor="#6a6a88",
                          font=dict(color="#eeeeff"))],
        annotations=list(fig.layout.annotations) + [dict(text="variant:", x=0, xref="paper", xanchor="right",
                                                          y=1.115, yref="paper", yanchor="bottom", showarrow=False)],
        legend=dict(orientation="h", x=1, xanchor="right", y=-0.12, yanchor="top"))
    fig.update_yaxes(title_text="liquidation price (USDT)", tickformat=",.0f" if mark >= 1000 else ",.2f", row=1, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=1, col=1)
    fig.update_xaxes(title_text="notional per bin (USD)", row=1, col=2)
    body = fig.to_html(full_html=False, include_plotlyjs="inline" if inline else PLOTLY_JS)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in first.notes)
    zone_rows = "".join(
        f"<tr><td>{p.variant}</td><td>{zb.side}</td><td>{zb.rank}</td><td>{zb.price_low:,.2f} – {zb.price_high:,.2f}</td>"
        f"<td>${zb.notional_usd:,.0f}</td></tr>" for p in pics for zb in p.zones)
    title = f"{first.symbol} {first.day} liquidation heatmap"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{background:#111;color:#ddd;font-family:sans-serif;margin:1em}"
        "td,th{padding:2px 10px;text-align:right}</style></head><body>"
        f"<h2>{html.escape(title)}</h2>"
        f"<p>Variants: {', '.join(v for v, _ in per_variant)} (menu at the top left of the figure). Colour: "
        f"liquidation notional per price bin ({html.escape(first.grid.describe())}) in USD, log scale, limits "
        f"{html.escape(scales[default])} (the day's end open interest: ${first.oi_ref_usd:,.0f}); snapshots every "
        f"{first.step_minutes} min to {first.last_time} UTC; levels consumed on mark price. Long liquidations "
        f"<span style='color:{LONG_COLOR}'>■</span> below the mark, short <span style='color:{SHORT_COLOR}'>■</span> "
        f"above it; shaded bands are the top zones ({html.escape(first.zones_as_of)}).</p>"
        f"{body}"
        f"<p style='font-size:smaller'>The liquidation map shows the {html.escape(END_STATE_NOTE)}.</p>"
        f"<h3>Zones ({html.escape(first.zones_as_of)})</h3><table><tr><th>variant</th><th>side</th><th>rank</th>"
        f"<th>range</th><th>notional</th></tr>{zone_rows}</table>"
        f"<h3>Notes</h3><ul>{notes or '<li>none</li>'}</ul></body></html>"
    )


def write_heatmap_report(pictures: list[HeatmapPicture] | HeatmapPicture, out_dir: Path,
                         default_variant: str | None = None) -> Path:
    """Write `heatmap-<SYMBOL>-<DAY>.html` under `out_dir` (created if needed), with `plotly.min.js` written
    once beside it; returns the report's path."""
    pics = [pictures] if isinstance(pictures, HeatmapPicture) else list(pictures)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_plotly_js(out_dir)
    path = out_dir / f"heatmap-{pics[0].symbol}-{pics[0].day.isoformat()}.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(heatmap_report_html(pics, default_variant, inline=False), encoding="utf-8")
    tmp.replace(path)
    return path


def draw_heatmap_day(pic: HeatmapPicture, pictures: list[HeatmapPicture], default_variant: str,
                     reports_dir: Path) -> dict[str, str]:
    """A day's heatmap and liquidation-map pictures of `pic` (markdown images) and its HTML report of every
    variant's picture (written under `reports_dir`; its path): the heatmap asset's drawing (plots/workers.py)."""
    from liq_pipeline.plots import markdown_image
    from liq_pipeline.plots.heatmap import heatmap_png, liquidation_map_png

    report = write_heatmap_report(pictures, reports_dir, default_variant=default_variant)
    return {"heatmap": markdown_image(heatmap_png(pic), pic.title),
            "liquidation_map": markdown_image(liquidation_map_png(pic), f"{pic.symbol} {pic.day} liquidation map"),
            "report": str(report.resolve())}


def write_plotly_js(out_dir: Path) -> Path:
    """The plotly library beside the reports (once; rewritten when its size differs, e.g. a new version)."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    path = Path(out_dir) / PLOTLY_JS
    if not path.exists() or path.stat().st_size != len(js.encode()):
        tmp = path.with_suffix(".js.tmp")
        tmp.write_text(js, encoding="utf-8")
        tmp.replace(path)
    return path
