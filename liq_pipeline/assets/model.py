"""Thin Dagster layer of the liquidation model: volume profiles, OFI, position distributions, levels.

Every asset is partitioned by symbol × day, as of the end of the day (D+1 00:00 UTC, exclusive): the
profiles run the SQL of warehouse/profile_sql.py, the distribution and levels call pipeline.book_maps.py;
the writes go through `replace_partition`. The daily refresh touches one day of trades: the 30-day window
is a sum of stored daily profiles.
"""

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from liq_pipeline import config, partitions
from liq_pipeline.assets.event_order import newest_partition_last
from liq_pipeline.assets.window_guard import earlier_days, require_earlier_days
from liq_pipeline.config import MODEL
from liq_pipeline.model import profile, variants
from liq_pipeline.model.grid import grid_for
from liq_pipeline.model.margin import load_bracket_tables
from liq_pipeline.model.positions import oi_delta
from liq_pipeline.pipeline import workers
from liq_pipeline.pipeline.book_maps import as_of_for, distribution_day, levels_day, signals_frame
from liq_pipeline.plots.liquidation_map import liquidation_map_markdown
from liq_pipeline.resources import MarketSource
from liq_pipeline.warehouse import profile_sql
from liq_pipeline.warehouse.io import replace_partition, write_frame
from liq_pipeline.warehouse.readers.profile import baseline_profile, daily_profile
from liq_pipeline.warehouse.readers.profile import ofi_bins as ofi_bins_frame
from liq_pipeline.warehouse.readers.raw_day import has_rows

GROUP = "model"
SINGLE_RUN = dg.BackfillPolicy.single_run()
_ASSET = dict(partitions_def=partitions.symbol_day, group_name=GROUP, pool="duckdb", kinds={"duckdb"},
              backfill_policy=SINGLE_RUN)


def _md_table(frame: pd.DataFrame, max_rows: int = 12) -> str:
    """A markdown table of the first `max_rows` rows (numbers with thousands separators)."""
    head = frame.head(max_rows)

    def fmt(v) -> str:
        if isinstance(v, (float, np.floating)):
            return f"{v:,.6g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in head.itertuples(index=False)]
    if len(frame) > max_rows:
        lines.append(f"\n_{len(frame) - max_rows:,} more rows_")
    return "\n".join(lines)


def _num(value: float | None, spec: str) -> str:
    return "missing" if value is None else format(value, spec)


# ============================================================================== volume_profile_daily
@dg.asset(**_ASSET, deps=[dg.AssetKey("agg_trades"), dg.AssetKey("klines")])
@newest_partition_last
def volume_profile_daily(context: dg.AssetExecutionContext, duckdb: DuckDBResource,
                         market: MarketSource) -> dg.MaterializeResult:
    """Traded notional per price bin of one day: taker buy/sell split, VWAP, trade count, last trade time.

    From raw.agg_trades in one aggregation; from raw.klines (finest stored interval) when the day has no
    aggTrades or when the market source asks for klines on purpose (`profile_source = "klines"`).
    """
    summary, preview = [], ""
    with duckdb.get_connection() as con:
        for symbol, day in partitions.symbol_days(context):
            grid = grid_for(symbol)
            want_trades = market.profile_source == "aggTrades"
            if want_trades and has_rows(con, "raw.agg_trades", symbol, day):
                sql, note = profile_sql.daily_profile_sql(grid), ""
            elif has_rows(con, "raw.klines", symbol, day):
                sql = profile_sql.klines_profile_sql(grid)
                note = "fallback: no aggTrades" if want_trades else "klines chosen (profile_source)"
            else:
                raise dg.Failure(f"{symbol} {day}: neither raw.agg_trades nor raw.klines has rows; materialize "
                                 "agg_trades (or klines) for this partition first")
            rows = replace_partition(con, "model.volume_profile_daily", symbol, day, sql,
                                     {"symbol": symbol, "day": day})
            frame = daily_profile(con, symbol, day)
            known = frame.loc[frame["split_known"], "notional_usd"].sum() / max(frame["notional_usd"].sum(), 1e-300)
            summary.append(f"| {symbol} | {day} | {frame['source'].iloc[0] if rows else ''} | {rows:,} | "
                           f"{frame['notional_usd'].sum():,.0f} | {known:.1%} | {note} |")
            preview = f"**{symbol} {day}**, top bins by notional ({grid.describe()}):\n\n" + _md_table(frame)
    header = "| symbol | day | source | bins | notional USD | split known | note |\n|---|---|---|---|---|---|---|\n"
    return dg.MaterializeResult(metadata={
        "partitions": dg.MetadataValue.md(header + "\n".join(summary)),
        "preview": dg.MetadataValue.md(preview),
    })


# ============================================================================ volume_profile_baseline
_WINDOW_MAPPING = dg.MultiPartitionMapping({
    "date": dg.DimensionPartitionMapping("date", dg.TimeWindowPartitionMapping(
        start_offset=-(MODEL.window_days - 1), allow_nonexistent_upstream_partitions=True)),
    "symbol": dg.DimensionPartitionMapping("symbol", dg.IdentityPartitionMapping()),
})


@dg.asset(**_ASSET, deps=[dg.AssetDep(volume_profile_daily, partition_mapping=_WINDOW_MAPPING)])
@newest_partition_last
def volume_profile_baseline(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """The window profile (ModelParams.window_days, default 30): the stored daily profiles summed per bin.

    One GROUP BY over at most window_days small tables, so the daily refresh costs one day of work.
    Fails, writing nothing, when a day of the window whose raw data is there (or that another run is
    writing) has no daily profile (assets/window_guard.py).
    """
    summary, preview = [], ""
    with duckdb.get_connection() as con:
        for symbol, day in partitions.symbol_days(context):
            start = profile.window_start(day)
            require_earlier_days(context, con, asset="volume_profile_daily", table="model.volume_profile_daily",
                                 symbol=symbol, day=day, days=earlier_days(start, day))
            rows = replace_partition(con, "model.volume_profile_baseline", symbol, day, profile_sql.baseline_sql(),
                                     {"symbol": symbol, "day": day, "window_start": start})
            if rows == 0:
                raise dg.Failure(f"{symbol} {day}: no model.volume_profile_daily rows in {start} … {day}; "
                                 "materialize volume_profile_daily first")
            frame = baseline_profile(con, symbol, day)
            days = int(frame["days_in_window"].iloc[0])
            summary.append(f"| {symbol} | {day} | {start} | {days} of {MODEL.window_days} | {rows:,} | "
                           f"{frame['notional_usd'].sum():,.0f} |")
            preview = f"**{symbol} {day}**, top bins:\n\n" + _md_table(frame)
    header = "| symbol | day | window start | days | bins | notional USD |\n|---|---|---|---|---|---|\n"
    return dg.MaterializeResult(metadata={
        "partitions": dg.MetadataValue.md(header + "\n".join(summary)),
        "preview": dg.MetadataValue.md(preview),
        "window_days": MODEL.window_days,
    })


# ============================================================================================ ofi_bins
@dg.asset(**_ASSET, deps=[volume_profile_baseline])
@newest_partition_last
def ofi_bins(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Order-flow imbalance per bin over the window and the long probability 0.5 + 0.35·tanh(1.5·OFI)."""
    summary, preview = [], ""
    with duckdb.get_connection() as con:
        for symbol, day in partitions.symbol_days(context):
            rows = replace_partition(con, "model.ofi_bins", symbol, day, profile_sql.ofi_sql(MODEL),
                                     {"symbol": symbol, "day": day})
            if rows == 0:
                raise dg.Failure(f"{symbol} {day}: no model.volume_profile_baseline rows; materialize "
                                 "volume_profile_baseline first")
            frame = ofi_bins_frame(con, symbol, day)
            qty = frame["buy_qty"].fillna(0) + frame["sell_qty"].fillna(0)
            mean_ofi = float((frame["ofi"] * qty).sum() / qty.sum()) if qty.sum() > 0 else 0.0
            summary.append(f"| {symbol} | {day} | {rows:,} | {frame['split_known'].mean():.1%} | {mean_ofi:+.4f} |")
            preview = f"**{symbol} {day}**:\n\n" + _md_table(frame.iloc[(frame["ofi"].abs()).argsort()[::-1]])
    header = "| symbol | day | bins | bins with split | qty-weighted OFI |\n|---|---|---|---|---|\n"
    return dg.MaterializeResult(metadata={
        "partitions": dg.MetadataValue.md(header + "\n".join(summary)),
        "preview": dg.MetadataValue.md(preview),
        "long_prob": f"0.5 + {MODEL.ofi_amplitude}·tanh({MODEL.ofi_gain}·OFI)",
    })


# =============================================================================== position_distribution
@dg.asset(**_ASSET, deps=[ofi_bins, volume_profile_baseline, dg.AssetKey("open_interest"), dg.AssetKey("flow_book"),
                          dg.AssetKey("funding_rates"), dg.AssetKey("mark_price_klines"), dg.AssetKey("klines")])
@newest_partition_last
def position_distribution(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Open interest spread over entry-price bins and sides in four variants (liquidation-math.md §8):
    volume_5050, ofi, funding, hybrid; plus `flow`, the end book of flow_book per entry bin; each scaled
    so Σ(long + short) = OI (USDT) at the end of the day.

    Also writes model.position_signals: the one record of real-time inputs (mark, OI now and 24h before,
    funding) taken from the raw tables with no lookahead; a missing signal turns its step off, flagged.
    """
    summary, flags_md, preview = [], [], ""
    with duckdb.get_connection() as con:
        for symbol, day in partitions.symbol_days(context):
            try:
                result = distribution_day(con, symbol, day)
            except LookupError as e:
                raise dg.Failure(str(e)) from e
            signals, frame, dists = result.signals, result.frame, result.dists
            write_frame(con, "model.position_signals", symbol, day, signals_frame(symbol, day, signals))
            write_frame(con, "model.position_distribution", symbol, day, frame)
            for v, d in dists.items():
                total = d.long_usd.sum() + d.short_usd.sum()
                summary.append(f"| {symbol} | {day} | {v} | {d.long_usd.sum():,.0f} | {d.short_usd.sum():,.0f} | "
                               f"{d.long_usd.sum() / total:.3f} | {', '.join(d.flags) or '—'} |")
            oi = _num(signals.oi_usd, ",.0f")
            delta = oi_delta(signals)
            flags_md.append(f"| {symbol} | {day} | {_num(signals.mark_price, ',.2f')} | {oi} | {_num(delta, '+.2%')} | "
                            f"{_num(signals.funding_rate_8h, '.6f')} | {'; '.join(signals.flags) or '—'} |")
            top = frame[frame["variant"] == variants.DEFAULT].sort_values("long_usd", ascending=False)
            preview = f"**{symbol} {day}**, {variants.DEFAULT} variant, top bins by long notional:\n\n" + _md_table(
                top[["bin_id", "price_mid", "long_usd", "short_usd", "long_share_pre_funding"]])
    return dg.MaterializeResult(metadata={
        "distributions": dg.MetadataValue.md("| symbol | day | variant | long USD | short USD | long share | flags |\n"
                                             "|---|---|---|---|---|---|---|\n" + "\n".join(summary)),
        "signals": dg.MetadataValue.md("| symbol | day | mark | OI USD | ΔOI 24h | funding 8h | flags |\n"
                                       "|---|---|---|---|---|---|---|\n" + "\n".join(flags_md)),
        "preview": dg.MetadataValue.md(preview),
        "variants": ", ".join(variants.NAMES),
    })


# ================================================================================== liquidation_levels
def _bin_width_near(grid, mark: float | None, prices: pd.Series) -> float | None:
    """Width (USD) of the grid bin at the mark (or at the median level price): the chart's bar width."""
    ref = mark if mark is not None else (float(prices.median()) if len(prices) else None)
    if ref is None:
        return None
    k = grid.bin_id(ref)
    return float(grid.high(k) - grid.low(k))


@dg.asset(**_ASSET, deps=[position_distribution, volume_profile_baseline, dg.AssetKey("agg_trades"),
                          dg.AssetKey("mark_price_klines"), dg.AssetKey("flow_book")])
@newest_partition_last
def liquidation_levels(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Liquidation notional at risk per price bin, side and variant, as of the end of the day.

    Each distribution's entry notional is spread over the leverage mix (config.MODEL: 5/10/20/50/100x at
    20/35/25/15/5 %, the only published weighting over the seed's list) and the day's trade-size buckets,
    priced with the exact tier-aware isolated formula of the bracket table in force on the day. Longs
    land below their entry, shorts above; collateral = notional / leverage.

    Consumption: for each entry bin the lowest and highest mark price (raw.mark_price_klines, any
    interval; raw.klines, noted in the preview, when there are none) over the candles opening after the
    bin's last trade in the window until as_of, together with the mark at as_of. A long level at or above
    that low, or a short level at or below that high, has been liquidated already and is dropped (its
    notional is reported as consumed). So every long level left is below the mark, every short above.
    """
    size_flags: dict[str, str] = {}  # "<symbol> <day>" → why its sizes are the prior (model/sizes.py)
    tables = load_bracket_tables(config.data_dir() / "brackets")
    summary, per_day = [], {}
    with duckdb.get_connection() as con:
        for symbol, day in partitions.symbol_days(context):
            try:
                result = levels_day(con, symbol, day, tables)
            except LookupError as e:
                raise dg.Failure(str(e)) from e
            if result.size_flag:
                size_flags[f"{symbol} {day}"] = result.size_flag
            frame, mark_now, as_of = result.frame, result.mark_now, as_of_for(day)
            summary += [f"| {symbol} | {day} | {s['variant']} | {s['long_usd']:,.0f} | {s['short_usd']:,.0f} | "
                        f"{s['consumed_usd']} | {s['unpriced_usd']:,.0f} |" for s in result.summary]
            write_frame(con, "model.liquidation_levels", symbol, day, frame)
            shown = frame[frame["variant"] == variants.DEFAULT]
            longs, shorts = shown[shown["side"] == "long"], shown[shown["side"] == "short"]
            # Drawn by pipeline/workers.py (at once, or in a drawing process while the next day is computed).
            chart = workers.submit(liquidation_map_markdown, longs["price"].to_numpy(), longs["notional_usd"].to_numpy(),
                                 shorts["price"].to_numpy(), shorts["notional_usd"].to_numpy(), mark_now,
                                 f"{symbol} liquidation map, {variants.DEFAULT}, as of {as_of:%Y-%m-%d %H:%M} UTC",
                                 _bin_width_near(grid_for(symbol), mark_now, frame["price"]), f"{symbol} {day} liquidation map")
            preview = (f"**{symbol} {day}** ({variants.DEFAULT}, largest levels). Brackets: {result.brackets.id}"
                       f"{' (' + result.brackets_note + ')' if result.brackets_note else ''}; "
                       f"sizes: {result.sizes_from}; consumption: {result.candles_note}.\n\n"
                       + _md_table(shown.sort_values("notional_usd", ascending=False)
                                   [["side", "bin_id", "price", "notional_usd", "collateral_usd"]]))
            per_day[(symbol, day)] = {"liquidation_map": chart, "preview": dg.MetadataValue.md(preview)}
    for day_md in per_day.values():
        day_md["liquidation_map"] = dg.MetadataValue.md(day_md["liquidation_map"].result())
    header = ("| symbol | day | variant | long at risk USD | short at risk USD | consumed USD | unpriced USD |\n"
              "|---|---|---|---|---|---|---|\n")
    return dg.MaterializeResult(metadata={
        "levels": dg.MetadataValue.md(header + "\n".join(summary)),
        **partitions.attach_per_partition(context, per_day),  # each partition its own day's map
        "leverage_mix": ", ".join(f"{lev:g}x {w:.0%}" for lev, w in zip(MODEL.leverages, MODEL.leverage_weights, strict=True)),
        "size_buckets": MODEL.size_buckets,
        # Days whose sizes are the prior of model/sizes.py, with what was missing (empty: all measured).
        "size_prior_days": dg.MetadataValue.json(size_flags),
    })
