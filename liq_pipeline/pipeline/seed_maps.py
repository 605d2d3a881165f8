"""The position distribution and the liquidation levels of one symbol-day, computed without Dagster.

The seed variants come from the window volume profile and the OFI bins (model/positions.py,
liquidation-math.md §8): OI spread over entry prices and sides, projected onto liquidation prices with the
leverage mix and the day's size buckets, levels the mark has crossed since dropped. The `flow` variant's
distribution and levels are its end book (pipeline/flow_day.py), the same engine as its heatmap.
"""

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.config import MODEL
from liq_pipeline.model import variants
from liq_pipeline.model.grid import grid_for
from liq_pipeline.model.levels import LeverageMix
from liq_pipeline.model.margin import LONG, BracketTable, table_for
from liq_pipeline.model.positions import (
    Distribution,
    PositionSignals,
    build_distributions,
    levels_at_risk,
    mark_extremes_since,
    oi_delta,
)
from liq_pipeline.model.profile import window_start
from liq_pipeline.pipeline.flow_day import flow_distribution, flow_levels
from liq_pipeline.warehouse.readers.profile import (
    baseline_with_long_prob,
    distribution_with_last_trade,
    mark_candles,
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
    bins = baseline_with_long_prob(con, symbol, day)
    if bins.empty:
        raise LookupError(f"{symbol} {day}: no volume_profile_baseline + ofi_bins rows; materialize them first")
    dists = build_distributions(bins["price_mid"].to_numpy(), bins["notional_usd"].to_numpy(),
                                bins["long_prob"].to_numpy(), signals, MODEL)
    frame = pd.concat([pd.DataFrame({
        "symbol": symbol, "day": day, "variant": v, "as_of": as_of, "bin_id": bins["bin_id"].to_numpy(),
        "price_mid": bins["price_mid"].to_numpy(), "long_usd": d.long_usd, "short_usd": d.short_usd,
        "long_share_pre_funding": d.long_share_pre_funding}) for v, d in dists.items()], ignore_index=True)
    for name in variants.LEARNED:  # the book engine's variant: its end book per entry bin
        fd = flow_distribution(con, symbol, day, grid_for(symbol), signals.oi_usd)
        if fd.empty:
            raise LookupError(f"{symbol} {day}: no model.flow_book rows; materialize flow_book first")
        total = (fd["long_usd"] + fd["short_usd"]).to_numpy()
        frame = pd.concat([frame, pd.DataFrame({
            "symbol": symbol, "day": day, "variant": name, "as_of": as_of, "bin_id": fd["bin_id"].to_numpy(),
            "price_mid": fd["price_mid"].to_numpy(), "long_usd": fd["long_usd"].to_numpy(),
            "short_usd": fd["short_usd"].to_numpy(),
            "long_share_pre_funding": np.divide(fd["long_usd"].to_numpy(), total, out=np.full(total.size, 0.5),
                                                where=total > 0)})], ignore_index=True)
        dists[name] = Distribution(name, fd["long_usd"].to_numpy(), fd["short_usd"].to_numpy(),
                                     np.zeros(0), signals.flags)
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
    """Liquidation notional at risk per price bin, side and variant as of the end of the day (see the
    liquidation_levels asset for the rules). LookupError when the distribution is missing."""
    as_of = as_of_for(day)
    grid = grid_for(symbol)
    mix = LeverageMix.of(MODEL.leverages, MODEL.leverage_weights)
    choice = table_for(symbol, day, tables)
    size_choice = day_size_choice(con, symbol, day, MODEL.size_buckets)
    dist = distribution_with_last_trade(con, symbol, day)
    if dist.empty:
        raise LookupError(f"{symbol} {day}: no model.position_distribution rows; materialize "
                          "position_distribution first")
    mark_now = stored_mark(con, symbol, day)
    candles, candles_note = mark_candles(con, symbol, window_start(day), as_of)
    frames, summary = [], []
    for variant in variants.SEED:
        d = dist[dist["variant"] == variant]
        low, high = mark_extremes_since(d["last_trade_time"].to_numpy(), candles["open_time"].to_numpy(),
                                        candles["low"].to_numpy(), candles["high"].to_numpy(), mark_now)
        lv = levels_at_risk(d["price_mid"].to_numpy(), d["long_usd"].to_numpy(), d["short_usd"].to_numpy(),
                            low, high, grid, choice.table, mix, size_choice.buckets)
        frames.append(pd.DataFrame({
            "symbol": symbol, "day": day, "variant": variant, "as_of": as_of,
            "side": np.where(lv.side == LONG, "long", "short"), "bin_id": lv.bin_id, "price": lv.price,
            "notional_usd": lv.notional_usd, "collateral_usd": lv.collateral_usd}))
        is_long = lv.side == LONG
        summary.append({"variant": variant, "long_usd": float(lv.notional_usd[is_long].sum()),
                        "short_usd": float(lv.notional_usd[~is_long].sum()), "consumed_usd": f"{lv.consumed_usd:,.0f}",
                        "unpriced_usd": lv.unpriced_usd})
    for name in variants.LEARNED:
        # The book engine's levels are its end book (the same engine as its heatmap), not a re-projection.
        lv = flow_levels(con, symbol, day, grid)
        frames.append(lv.assign(symbol=symbol, day=day, variant=name, as_of=as_of))
        summary.append({"variant": name, "long_usd": float(lv.loc[lv["side"] == "long", "notional_usd"].sum()),
                        "short_usd": float(lv.loc[lv["side"] == "short", "notional_usd"].sum()),
                        "consumed_usd": "see flow_book", "unpriced_usd": 0.0})
    return LevelsDay(pd.concat(frames, ignore_index=True), summary, mark_now, choice.table, choice.note,
                     size_choice.source, candles_note, size_choice.flag if size_choice.is_prior else None)
