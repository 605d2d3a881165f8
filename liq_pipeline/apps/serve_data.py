"""What the `liq serve` page shows, as plain data: the heatmap of a lookback across day partitions (USD per
price bin and snapshot, longs and shorts apart), candles, realized liquidations, the leverage filter, and
the liquidation map of one instant (levels, cumulative from the mark, zones). No web code here: apps/serve.py
turns these into HTTP answers.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from liq_pipeline import config
from liq_pipeline.model import variants as variant_registry
from liq_pipeline.model.grid import grid_for
from liq_pipeline.model.zones import find_zones
from liq_pipeline.warehouse import heatmap_view as wv

#: Lookbacks the page offers, by name.
LOOKBACKS: dict[str, dt.timedelta] = {"12h": dt.timedelta(hours=12), "1d": dt.timedelta(days=1),
                                      "3d": dt.timedelta(days=3), "1w": dt.timedelta(days=7),
                                      "1m": dt.timedelta(days=30)}
#: At most this many snapshots (columns) are sent for a lookback: a longer one shows every k-th snapshot.
MAX_COLUMNS = 400
#: At most this many candles per lookback (their width is rounded up to one of CANDLE_MINUTES).
MAX_CANDLES = 300
CANDLE_MINUTES = (1, 5, 15, 30, 60, 120, 240, 360, 720, 1440)
#: Price window: the lookback's candle range ± this share (levels further out are off the page).
WINDOW_REL = 0.15
#: The newest snapshot is "live" when it is at most this old (two heatmap steps); older data is labelled with
#: its age and never called "now".
LIVE_MAX_AGE = dt.timedelta(minutes=2 * config.MODEL.heatmap_step_minutes)
#: Zones shown per side at an instant.
TOP_ZONES = 5

#: The leverage mix whose buckets (config.FLOW.leverages) the page's leverage filter offers: the default variant's.
FLOW_MIX = variant_registry.BY_NAME[variant_registry.DEFAULT].leverage_mix


class ViewError(ValueError):
    """A request the page cannot answer (unknown symbol, bad date, nothing materialized): said in words."""


@dataclass(frozen=True)
class Query:
    symbol: str
    variant: str
    start: dt.datetime  # exclusive
    end: dt.datetime  # inclusive
    lookback: str  # a LOOKBACKS name or "range"
    leverages: tuple[float, ...]  # selected buckets (all when empty)


def parse_query(params: dict[str, str], catalog: list[wv.Materialized]) -> Query:
    """The page's state from URL parameters: symbol, variant, lookback (12h/1d/3d/1w/1m, or `range` with
    from/to dates, inclusive), end (ISO time; default the newest snapshot), lev (comma-separated leverages)."""
    if not catalog:
        raise ViewError("no heatmap materialized yet: run `make demo`, or materialize liquidation_heatmap")
    symbols = sorted({m.symbol for m in catalog})
    symbol = (params.get("symbol") or symbols[0]).upper()
    if symbol not in symbols:
        raise ViewError(f"no heatmap for symbol {symbol!r}: materialized symbols are {', '.join(symbols)}")
    variants = [m.variant for m in catalog if m.symbol == symbol]
    variant = params.get("variant") or (variant_registry.DEFAULT if variant_registry.DEFAULT in variants else variants[0])
    if variant not in variants:
        raise ViewError(f"no {variant!r} heatmap for {symbol}: materialized variants are {', '.join(variants)}")
    entry = next(m for m in catalog if m.symbol == symbol and m.variant == variant)
    lookback = params.get("lookback") or "1d"
    if lookback == "range":
        first, last = _date(params, "from"), _date(params, "to")
        if last < first:
            raise ViewError(f"range: 'to' {last} is before 'from' {first}")
        start, end = dt.datetime.combine(first, dt.time()), dt.datetime.combine(last + dt.timedelta(days=1), dt.time())
    elif lookback in LOOKBACKS:
        end = parse_time(params.get("end")) if params.get("end") else entry.latest_snapshot
        start = end - LOOKBACKS[lookback]
    else:
        raise ViewError(f"lookback {lookback!r}: one of {', '.join(LOOKBACKS)} or range")
    return Query(symbol, variant, start, end, lookback, _leverages(params.get("lev", "")))


def _date(params: dict[str, str], key: str) -> dt.date:
    try:
        return dt.date.fromisoformat(params.get(key) or "")
    except ValueError:
        raise ViewError(f"range: {key!r} must be a date like 2026-01-05, got {params.get(key)!r}") from None


def parse_time(text: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ViewError(f"end {text!r} is not an ISO time like 2026-01-05T12:00 (UTC)") from None
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t


def _leverages(text: str) -> tuple[float, ...]:
    known = config.FLOW.leverages
    try:
        chosen = tuple(sorted({float(x.rstrip("x")) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise ViewError(f"lev {text!r}: comma-separated leverages among {', '.join(f'{v:g}' for v in known)}") from None
    unknown = [v for v in chosen if v not in known]
    if unknown:
        raise ViewError(f"lev: {', '.join(f'{v:g}' for v in unknown)} not among the book's leverage buckets "
                        f"{', '.join(f'{v:g}' for v in known)}")
    return () if len(chosen) == len(known) else chosen


def catalog_json(catalog: list[wv.Materialized], now: dt.datetime) -> dict:
    """What is materialized, per symbol and variant, with the newest snapshot's age."""
    return {"symbols": sorted({m.symbol for m in catalog}), "lookbacks": list(LOOKBACKS) + ["range"],
            "leverages": list(config.FLOW.leverages), "default_variant": variant_registry.DEFAULT,
            "leverage_variants": [v for v in variant_registry.NAMES if variant_registry.BY_NAME[v].leverage_mix == FLOW_MIX],
            "entries": [{"symbol": m.symbol, "variant": m.variant, "first_day": m.first_day.isoformat(),
                         "last_day": m.last_day.isoformat(), **latest_label(m.latest_snapshot, now)}
                        for m in catalog]}


def latest_label(latest: dt.datetime, now: dt.datetime) -> dict:
    """The newest snapshot, its age, and whether it may be called live (never when older than LIVE_MAX_AGE)."""
    age = now - latest
    live = dt.timedelta(0) <= age <= LIVE_MAX_AGE
    return {"latest": latest.isoformat(), "age_s": age.total_seconds(), "live": live,
            "latest_label": (f"live: snapshot {_age(age)} old" if live else
                             f"newest snapshot {latest:%Y-%m-%d %H:%M} UTC, {_age(age)} old (not live)")}


def _age(age: dt.timedelta) -> str:
    s = abs(age.total_seconds())
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.0f} days"


def _b64(a: np.ndarray) -> str:
    """A float32 array, row-major, base64: a week of cells is a few hundred kB instead of megabytes of JSON."""
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def _iso(t: np.ndarray) -> list[str]:
    return np.datetime_as_string(t.astype("datetime64[s]"), unit="s").tolist()


def _candle_minutes(span: dt.timedelta) -> int:
    want = span.total_seconds() / 60 / MAX_CANDLES
    return next((m for m in CANDLE_MINUTES if m >= want), CANDLE_MINUTES[-1])


def _groups(day: np.ndarray, side: np.ndarray) -> np.ndarray:
    """A (day, side) group's number: days since 1970 × 2, + 1 for shorts."""
    return day.astype("datetime64[D]").astype(np.int64) * 2 + (side < 0)


@dataclass(frozen=True)
class LeverageShares:
    """`leverage_share`'s answer as dense tables over the book's (day, side) groups from `first_group` and its
    bins from `first_bin`: `share[g, b]` the selected buckets' share of a bin (NaN where the book holds none),
    `side_share[g]` the side's share that day, `covered[g]` whether the book has the group at all."""
    first_group: int
    first_bin: int
    share: np.ndarray
    side_share: np.ndarray
    covered: np.ndarray


def leverage_share(src, q: Query, grid, days: np.ndarray) -> tuple[LeverageShares, str]:
    """Per day partition, side and price bin: the share of the flow book's notional held by the selected
    leverage buckets, from the book at the end of that day (model.flow_book). Bins the book no longer holds
    take the side's share of that day. One pass over the book (no mask per day and side): each bin's sums
    add its rows in the book's order, as a bincount per (day, side) did, so the shares are the same bits."""
    book = src.flow_book_leverage(q.symbol, q.variant, grid, days.min().astype(dt.date), days.max().astype(dt.date))
    if book["notional_usd"].size == 0:
        raise ViewError("the leverage filter needs the flow book (model.flow_book), which is not materialized "
                        "for these days")
    usd = book["notional_usd"]
    selected = np.isin(np.asarray(config.FLOW.leverages)[book["lev_bucket"]], q.leverages)
    group, bins = _groups(book["day"], book["side"]), book["bin_id"].astype(np.int64)
    g0, b0 = int(group.min()), int(bins.min())
    shape = (int(group.max()) - g0 + 1, int(bins.max()) - b0 + 1)
    cell = (group - g0) * shape[1] + (bins - b0)
    total = np.bincount(cell, weights=usd, minlength=shape[0] * shape[1]).reshape(shape)
    chosen = np.bincount(cell, weights=usd * selected, minlength=shape[0] * shape[1]).reshape(shape)
    held = np.zeros(shape[0] * shape[1], bool)
    held[cell] = True
    held = held.reshape(shape)
    covered = np.zeros(shape[0], bool)
    covered[group - g0] = True
    # The side's share as the sum over the bins it holds, in bin order (what the per-group sum did).
    side_share = np.array([float(chosen[g][held[g]].sum() / total[g][held[g]].sum())
                           if covered[g] and total[g][held[g]].sum() > 0 else 0.0 for g in range(shape[0])])
    share = np.where(held, chosen / np.where(total > 0, total, 1.0), np.nan)
    note = ("leverage filter: each price bin keeps the share the selected leverage buckets hold of it in the flow "
            "book at the end of that day (exact at day ends, the day's mix in between)")
    return LeverageShares(g0, b0, share, side_share, covered), note


def apply_leverage(cell_day: np.ndarray, cell_side: np.ndarray, cell_bin: np.ndarray, notional: np.ndarray,
                   shares: LeverageShares) -> np.ndarray:
    """Cell notional × the selected buckets' share of its (day, side, bin) (`leverage_share`); a bin the book
    does not hold takes its side's share of the day; (day, side) groups the book does not cover keep nothing.
    Two table look-ups per cell, no search."""
    if notional.size == 0:
        return np.zeros_like(notional)
    n_groups, n_bins = shares.share.shape
    # One table of factors, (groups + 1) × (bins + 1): a bin the book does not hold (NaN), and the extra column
    # (bins outside the table), take the side's share; uncovered groups, and the extra row (groups outside the
    # table), keep nothing. Then one look-up per cell.
    factor = np.zeros((n_groups + 1, n_bins + 1))
    factor[:n_groups, :n_bins] = shares.share
    factor[:n_groups, n_bins] = np.nan
    factor[:n_groups] = np.where(np.isnan(factor[:n_groups]), shares.side_share[:, None], factor[:n_groups])
    factor[:n_groups][~shares.covered] = 0.0
    g = _groups(cell_day, cell_side) - shares.first_group
    g[(g < 0) | (g >= n_groups)] = n_groups
    b = np.subtract(cell_bin, shares.first_bin, dtype=np.int64)
    b[(b < 0) | (b >= n_bins)] = n_bins
    return notional * factor.ravel()[g * (n_bins + 1) + b]


def view(src, q: Query, now: dt.datetime, catalog: list[wv.Materialized] | None = None) -> dict:
    """The page's heatmap payload for a query (see the module docstring). `usd`: price bin × column, longs
    and shorts summed (longs lie below the mark, shorts above), float32 USD, base64; columns are snapshot
    instants (one in k for long lookbacks). The instant's map (`instant`) keeps the sides apart."""
    grid = grid_for(q.symbol)
    times = src.snapshot_times(q.symbol, q.variant, q.start, q.end)
    if times.size == 0:
        raise ViewError(f"{q.symbol} {q.variant}: no heatmap snapshots between {q.start:%Y-%m-%d %H:%M} and "
                        f"{q.end:%Y-%m-%d %H:%M} UTC")
    stride = max(1, math.ceil(times.size / MAX_COLUMNS))
    shown = times[::-1][::stride][::-1]
    span = q.end - q.start
    cmin = _candle_minutes(span)
    last = src.candles("raw.klines", q.symbol, q.start, q.end, cmin)
    mark = src.candles("raw.mark_price_klines", q.symbol, q.start, q.end, cmin)
    lows = np.concatenate([last["low"], mark["low"]])
    highs = np.concatenate([last["high"], mark["high"]])
    if lows.size:
        b0 = int(grid.bin_id(np.nanmin(lows) * (1 - WINDOW_REL)))
        b1 = int(grid.bin_id(np.nanmax(highs) * (1 + WINDOW_REL)))
    else:
        b0, b1 = -(2**62), 2**62
    cells = src.heatmap_cells(q.symbol, q.variant, shown, b0, b1)
    notes = []
    notional = cells["notional_usd"]
    if q.leverages:
        if variant_registry.BY_NAME[q.variant].leverage_mix != FLOW_MIX:
            raise ViewError(f"the leverage filter's buckets are those of the learned leverage mix: {q.variant} uses "
                            "the seed's fixed mix")
        d = cells["day"]  # the days of its runs: the same set, a pass instead of a hash of every cell
        days = np.unique(d[np.r_[True, d[1:] != d[:-1]]]) if d.size else np.array([], "datetime64[D]")
        if days.size:
            shares, note = leverage_share(src, q, grid, days)
            notional = apply_leverage(cells["day"], cells["side"], cells["bin_id"], notional, shares)
            notes.append(note)
    if cells["bin_id"].size:
        b0, b1 = int(cells["bin_id"].min()), int(cells["bin_id"].max())
    else:
        b0 = b1 = int(grid.bin_id(np.nanmean(lows))) if lows.size else 0
    col = np.searchsorted(shown, cells["snapshot_time"])
    nb = b1 - b0 + 1
    # Each side summed per (bin, column) in the cells' order, as np.add.at did, but in one bincount.
    is_long = cells["side"] > 0
    flat = (cells["bin_id"] - b0) * shown.size + col
    long_m = np.bincount(flat[is_long], notional[is_long], nb * shown.size).reshape(nb, shown.size)
    short_m = np.bincount(flat[~is_long], notional[~is_long], nb * shown.size).reshape(nb, shown.size)
    realized = src.realized_liquidations(q.symbol, q.start, q.end)
    if realized.get("unavailable"):
        notes.append(f"realized liquidations not shown: {realized['unavailable']}")
    latest = {(m.symbol, m.variant): m for m in (catalog or src.materialized())}
    if stride > 1:
        notes.append(f"one snapshot in {stride} shown ({shown.size} of {times.size}) for this lookback")
    return {
        "symbol": q.symbol, "variant": q.variant, "lookback": q.lookback,
        "start": q.start.isoformat(), "end": q.end.isoformat(),
        "times": _iso(shown), "stride": stride, "step_minutes": config.MODEL.heatmap_step_minutes,
        "price_low": grid.low(np.arange(b0, b1 + 1)).round(6).tolist(),
        "price_mid": grid.mid(np.arange(b0, b1 + 1)).round(6).tolist(),
        "bin_label": grid.describe(),
        "usd": _b64(long_m + short_m), "shape": [nb, int(shown.size)],
        "totals_last": {"long_usd": float(long_m[:, -1].sum()), "short_usd": float(short_m[:, -1].sum())},
        "candle_minutes": cmin,
        "candles": {"t": _iso(last["open_time"]), **{k: last[k].tolist() for k in ("open", "high", "low", "close")}},
        "mark": {"t": _iso(mark["open_time"]), "close": mark["close"].tolist()},
        "realized": {"t": _iso(realized["trade_time"]), "side": realized["side"].tolist(),
                     "price": realized["price"].tolist(), "usd": realized["notional_usd"].round(2).tolist(),
                     "count": realized["count"], "total_usd": realized["total_usd"]},
        "leverages": list(q.leverages),
        "notes": notes,
        **latest_label(latest[(q.symbol, q.variant)].latest_snapshot, now),
    }


def instant(src, q: Query, at: dt.datetime) -> dict:
    """The liquidation map at the snapshot at or before `at`: USD per bin per side (leverage filter applied),
    the cumulative notional a move from the mark to each price liquidates, the zones, totals and the mark."""
    grid = grid_for(q.symbol)
    times = src.snapshot_times(q.symbol, q.variant, at - dt.timedelta(days=1), at)
    if times.size == 0:
        raise ViewError(f"{q.symbol} {q.variant}: no snapshot at or before {at:%Y-%m-%d %H:%M} UTC")
    t = times[-1:]
    cells = src.heatmap_cells(q.symbol, q.variant, t, -(2**62), 2**62)
    notional = cells["notional_usd"]
    if q.leverages and notional.size:
        if variant_registry.BY_NAME[q.variant].leverage_mix != FLOW_MIX:
            raise ViewError(f"the leverage filter's buckets are those of the learned leverage mix: {q.variant} uses "
                            "the seed's fixed mix")
        shares, _ = leverage_share(src, q, grid, np.unique(cells["day"]))
        notional = apply_leverage(cells["day"], cells["side"], cells["bin_id"], notional, shares)
    when = t[0].astype(dt.datetime)
    mark_c = src.candles("raw.mark_price_klines", q.symbol, when - dt.timedelta(hours=2), when, 1)
    if mark_c["close"].size == 0:
        mark_c = src.candles("raw.klines", q.symbol, when - dt.timedelta(hours=2), when, 1)
    mark = float(mark_c["close"][-1]) if mark_c["close"].size else float("nan")
    price = grid.mid(cells["bin_id"])
    out = {"time": when.isoformat(), "mark": mark if math.isfinite(mark) else None, "sides": {}, "zones": []}
    for name, sign in (("long", 1), ("short", -1)):
        m = (cells["side"] == sign) & (notional > 0)
        p, n = price[m], notional[m]
        order = np.argsort(-p if sign > 0 else p)  # away from the mark: longs downward, shorts upward
        p, n = p[order], n[order]
        if math.isfinite(mark):
            beyond = p < mark if sign > 0 else p > mark
            p, n = p[beyond], n[beyond]
        out["sides"][name] = {"price": p.round(6).tolist(), "usd": n.round(2).tolist(),
                              "cumulative_usd": np.cumsum(n).round(2).tolist(), "total_usd": float(n.sum())}
        if p.size and math.isfinite(mark):
            z = find_zones(p, n, mark)
            out["zones"] += [{"side": name, "rank": int(z.rank[i]), "low": float(z.price_low[i]),
                              "high": float(z.price_high[i]), "peak": float(z.peak_price[i]),
                              "usd": float(z.notional_usd[i]), "kind": str(z.kind[i]),
                              "distance_pct": float(z.distance_pct[i])} for i in range(min(len(z), TOP_ZONES))]
    return out


def live_now(con, symbol: str, client, budget_s: float, now: dt.datetime) -> dict:
    """The live layer's "now" map (liq_pipeline.pipeline.live.heatmap_now: the latest baseline re-weighted with REST
    signals fetched within `budget_s`), per side beyond the live mark, with its age. When the live mark or
    open interest is unavailable the answer says so and carries no map: a stale map is never shown as now."""
    from liq_pipeline.pipeline.live import STALE_FLAGS, heatmap_now
    from liq_pipeline.pipeline.live import short_flag as _short

    result = heatmap_now(con, client, symbol, budget_s=budget_s)
    stale = [f for f in result.flags if f in STALE_FLAGS]
    age = (now - result.signals.as_of).total_seconds()
    head = {"symbol": symbol, "as_of": result.signals.as_of.isoformat(), "age_s": age,
            "warnings": [_short(f) for f in result.flags if f not in STALE_FLAGS]}
    if stale:
        return {**head, "available": False,
                "label": f"live data unavailable ({', '.join(stale)}): no live map, not calling stored data now"}
    lv = result.levels
    sides = {}
    for name in ("long", "short"):
        part = lv[lv["side"] == name]
        sides[name] = {"price": part["price"].round(6).tolist(), "usd": part["notional_usd"].round(2).tolist(),
                       "total_usd": float(part["notional_usd"].sum())}
    return {**head, "available": True, "mark": result.signals.mark_price, "sides": sides,
            "label": f"live map (hybrid on REST signals) as of {result.signals.as_of:%H:%M:%S} UTC, "
                     f"{_age(dt.timedelta(seconds=max(age, 0)))} old; baseline {result.baseline_day}"}
