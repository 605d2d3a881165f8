"""The position distribution and the liquidation levels of one symbol-day, computed without Dagster.

Both are read off each variant's end book (the one book engine, model/flow.py, run by flow_book): the
distribution is the book per entry-price bin scaled so Σ(long + short) = OI at the end of the day, the
levels are the book per liquidation-price bin (the same cells as the heatmap's last snapshot of the day).
"""

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.config import MODEL
from liq_pipeline.model import variants
from liq_pipeline.model.grid import grid_for
from liq_pipeline.model.margin import BracketTable, table_for
from liq_pipeline.model.positions import (
    Distribution,
    PositionSignals,
    oi_delta,
)
from liq_pipeline.pipeline.flow_day import flow_distribution, flow_levels
from liq_pipeline.warehouse.readers.profile import (
    stored_mark,
)
from liq_pipeline.warehouse.readers.signals import signals_from_warehouse
from liq_pipeline.warehouse.trade_sizes import day_size_choice


def as_of_for(day: dt.date) -> dt.datetime:
    """The as-of instant of partition `day`: the end of the day, D+1 00:00 naive UTC (exclusive)."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time())


def signals_frame(symbol: str, day: dt.date, s: PositionSignals) -> pd.DataFrame:
    """The model.position_signals row of the day."""
    return pd.DataFrame({
        "symbol": [symbol], "day": [day], "as_of": [s.as_of], "mark_price": [s.mark_price], "oi_usd": [s.oi_usd],
        "oi_24h_ago_usd": [s.oi_24h_ago_usd], "oi_delta": [oi_delta(s)], "funding_rate_8h": [s.funding_rate_8h],
        "flags": ["; ".join(s.flags)],
    }).astype({"mark_price": "float64", "oi_usd": "float64", "oi_24h_ago_usd": "float64", "oi_delta": "float64",
               "funding_rate_8h": "float64"})


@dataclass
class DistributionDay:
    """Every variant's distribution of one symbol-day, in the model.position_distribution layout (`frame`)
    and per variant (`dists`), with the signals it was scaled by."""

    signals: PositionSignals
    frame: pd.DataFrame
    dists: dict[str, Distribution]


def distribution_day(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> DistributionDay:
    """Open interest over entry-price bins and sides per variant, scaled so Σ(long + short) = OI at the end
    of the day. LookupError naming the asset to materialize when an input is missing."""
    as_of = as_of_for(day)
    signals = signals_from_warehouse(con, symbol, as_of, inclusive=False)
    frames, dists = [], {}
    for name in variants.NAMES:  # every variant's end book per entry bin (one engine: model/flow.py)
        fd = flow_distribution(con, symbol, day, grid_for(symbol), signals.oi_usd, name)
        if fd.empty:
            raise LookupError(f"{symbol} {day}: no model.flow_book rows for {name}; materialize flow_book first")
        total = (fd["long_usd"] + fd["short_usd"]).to_numpy()
        share = np.divide(fd["long_usd"].to_numpy(), total, out=np.full(total.size, 0.5), where=total > 0)
        frames.append(pd.DataFrame({
            "symbol": symbol, "day": day, "variant": name, "as_of": as_of, "bin_id": fd["bin_id"].to_numpy(),
            "price_mid": fd["price_mid"].to_numpy(), "long_usd": fd["long_usd"].to_numpy(),
            "short_usd": fd["short_usd"].to_numpy(), "long_share_pre_funding": share}))
        dists[name] = Distribution(name, fd["long_usd"].to_numpy(), fd["short_usd"].to_numpy(), share, signals.flags)
    frame = pd.concat(frames, ignore_index=True)
    return DistributionDay(signals, frame, dists)


@dataclass
class LevelsDay:
    """Every variant's liquidation levels of one symbol-day (model.liquidation_levels layout) with what the
    metadata shows: per-variant totals, the mark at as_of, the bracket table, sizes and consumption source."""

    frame: pd.DataFrame
    summary: list[dict]
    mark_now: float | None
    brackets: BracketTable
    brackets_note: str
    sizes_from: str
    candles_note: str
    size_flag: str | None = None
    flags: list[str] = field(default_factory=list)


def levels_day(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date,
               tables: list[BracketTable] | None = None) -> LevelsDay:
    """Liquidation notional at risk per price bin, side and variant as of the end of the day: each variant's
    end book by the liquidation price of its cells, scaled as its map."""
    as_of = as_of_for(day)
    grid = grid_for(symbol)
    choice = table_for(symbol, day, tables)
    size_choice = day_size_choice(con, symbol, day, MODEL.size_buckets)
    mark_now = stored_mark(con, symbol, day)
    frames, summary = [], []
    for name in variants.NAMES:
        # Every variant's levels are its end book (the same engine and cells as its heatmap's last snapshot).
        lv = flow_levels(con, symbol, day, grid, name)
        frames.append(lv.assign(symbol=symbol, day=day, variant=name, as_of=as_of))
        summary.append({"variant": name, "long_usd": float(lv.loc[lv["side"] == "long", "notional_usd"].sum()),
                        "short_usd": float(lv.loc[lv["side"] == "short", "notional_usd"].sum()),
                        "consumed_usd": "see flow_book", "unpriced_usd": 0.0})
    candles_note = "the book engine consumes along the mark path (flow_book)"
    return LevelsDay(pd.concat(frames, ignore_index=True), summary, mark_now, choice.table, choice.note,
                     size_choice.source, candles_note, size_choice.flag if size_choice.is_prior else None)
