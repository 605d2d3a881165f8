"""Dagster assets `liquidation_heatmap` and `liquidation_zones` (group "heatmap"), and the SQL that feeds them.

Per symbol-day: one GROUP BY per raw input builds per-step arrays (traded notional per entry bin, mark
high/low, OI samples), model/heatmap.py evolves every variant from the previous day's end state, and the
snapshots, zones, pictures and an HTML report are written. Days of a run are processed in order, so a
backfill is one continuous heatmap.

No `from __future__ import annotations` here: Dagster 1.13 checks the `context` annotation of an asset
function as an object and rejects the string form.
"""

import contextvars
import datetime as dt
import functools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from liq_pipeline import config, partitions
from liq_pipeline.config import DEFAULT_VARIANT, KLINE_INTERVAL_MS, MODEL, VARIANTS, ModelParams
from liq_pipeline.model import heatmap as hm
from liq_pipeline.model import zones as zn
from liq_pipeline.model.grid import PriceGrid, grid_for
from liq_pipeline.model.levels import LeverageMix
from liq_pipeline.model.margin import table_for
from liq_pipeline.plots import markdown_image
from liq_pipeline.warehouse.catalog import existing_tables
from liq_pipeline.warehouse.grid_sql import bin_id_sql
from liq_pipeline.warehouse.io import (
    exact_usd_sum,
    registered_frame,
    replace_partition,
    replace_partitions,
    table_exists,
)
from liq_pipeline.warehouse.schema import ensure_tables

GROUP = "heatmap"
PICTURE_VARIANT = DEFAULT_VARIANT if DEFAULT_VARIANT in VARIANTS else VARIANTS[0]

_INTERVAL_MS_SQL = "CASE interval " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in KLINE_INTERVAL_MS.items()) + " END"


#: model.heatmap_snapshots rows of the day being written (one per variant and snapshot), from its heatmap rows.
SNAPSHOT_INDEX_SQL = """
    SELECT symbol, day, variant, CAST(snapshot_time AS TIMESTAMP) AS snapshot_time, count(*) AS levels,
           {long} AS long_usd, {short} AS short_usd
    FROM heatmap_rows GROUP BY ALL""".format(
    long=exact_usd_sum("CASE WHEN side = 'long' THEN notional_usd ELSE 0 END"),
    short=exact_usd_sum("CASE WHEN side = 'short' THEN notional_usd ELSE 0 END"))


# ---------------------------------------------------------------------------------------------- inputs
@dataclass
class DayInputs:
    """Per-step arrays of one symbol-day, read from the raw tables (times naive UTC, amounts USD)."""

    symbol: str
    day: dt.date
    step_minutes: int
    step_end: np.ndarray  # (T,) datetime64[ms]
    oi_start_usd: np.ndarray  # (T,)
    oi_end_usd: np.ndarray  # (T,)
    mark_high: np.ndarray  # (T,) nan = no candle
    mark_low: np.ndarray
    mark_close: np.ndarray  # (T,) last close in the step (picture line, end-of-day mark)
    entry_bins: np.ndarray  # (E,)
    traded_usd: np.ndarray  # (T, E) traded notional per step and entry bin
    trade_sizes_usd: np.ndarray  # trade (or per-candle mean trade) notionals for the size buckets
    flags: list[str] = field(default_factory=list)
    mark_source: str = "mark_price_klines"
    entry_source: str = "aggTrades"  # where entry prices and sizes came from: aggTrades, klines or none

    @property
    def end_mark(self) -> float:
        ok = np.isfinite(self.mark_close)
        return float(self.mark_close[ok][-1]) if ok.any() else float("nan")


def _has_rows(con: duckdb.DuckDBPyConnection, table: str, symbol: str, day: dt.date,
              tables: frozenset[str] | None = None) -> bool:
    if not (table in tables if tables is not None else table_exists(con, table)):
        return False
    return con.execute(f"SELECT count(*) > 0 FROM {table} WHERE symbol = ? AND day = ?", [symbol, day]).fetchone()[0]


def _step_bounds(day: dt.date, step_minutes: int) -> tuple[dt.datetime, dt.datetime, int, int]:
    start = dt.datetime.combine(day, dt.time())
    return start, start + dt.timedelta(days=1), hm.steps_per_day(step_minutes), step_minutes * 60_000


def _candle_steps(con, table: str, symbol: str, day: dt.date, step_minutes: int) -> dict[str, np.ndarray]:
    """High, low, last close per step from candles of any interval; a candle belongs to the step holding its
    last millisecond (open_time + interval − 1 ms), so a coarse candle never consumes before it closes."""
    start, end, n_steps, step_ms = _step_bounds(day, step_minutes)
    return con.execute(
        f"""
        SELECT CAST(date_diff('millisecond', $start, open_time) + {_INTERVAL_MS_SQL} - 1 AS BIGINT) // $step_ms
                   AS step,
               max(high) AS high, min(low) AS low, arg_max(close, open_time) AS close
        FROM {table}
        WHERE symbol = $symbol AND day = $day AND open_time >= $start AND open_time < $end
        GROUP BY step HAVING step BETWEEN 0 AND $last ORDER BY step
        """,
        {"start": start, "end": end, "symbol": symbol, "day": day, "step_ms": step_ms, "last": n_steps - 1},
    ).fetchnumpy()


def load_day_inputs(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, grid: PriceGrid,
                    step_minutes: int, tables: frozenset[str] | None = None) -> DayInputs:
    """Read one symbol-day's per-step inputs with one aggregation per raw table. `tables`: the warehouse's
    tables (existing_tables), when the caller has listed them already."""
    tables = existing_tables(con) if tables is None else tables
    start, end, n_steps, step_ms = _step_bounds(day, step_minutes)
    entry_source = "aggTrades"
    flags: list[str] = []
    step_start = np.datetime64(start, "ms") + np.arange(n_steps) * np.timedelta64(step_minutes, "m")
    step_end = step_start + np.timedelta64(step_minutes, "m")
    params = {"start": start, "end": end, "symbol": symbol, "day": day, "step_ms": step_ms}

    # Traded notional per (step, entry bin): aggTrades, else last-price klines at the typical price.
    if _has_rows(con, "raw.agg_trades", symbol, day, tables):
        traded = con.execute(
            f"""SELECT date_diff('millisecond', $start, transact_time) // $step_ms AS step,
                       {bin_id_sql(grid, 'price')} AS bin_id, {exact_usd_sum('price * quantity')} AS usd
                FROM raw.agg_trades
                WHERE symbol = $symbol AND day = $day AND transact_time >= $start AND transact_time < $end
                GROUP BY step, bin_id""", params).fetchnumpy()
        sizes = con.execute("SELECT price * quantity AS usd FROM raw.agg_trades WHERE symbol = ? AND day = ?",
                            [symbol, day]).fetchnumpy()["usd"]
    elif _has_rows(con, "raw.klines", symbol, day, tables):
        entry_source = "klines"
        flags.append("no aggTrades: entry prices and position sizes from last-price klines")
        traded = con.execute(
            f"""SELECT date_diff('millisecond', $start, open_time) // $step_ms AS step,
                       {bin_id_sql(grid, '(high + low + close) / 3')} AS bin_id, {exact_usd_sum('quote_volume')} AS usd
                FROM raw.klines
                WHERE symbol = $symbol AND day = $day AND open_time >= $start AND open_time < $end
                  AND quote_volume > 0
                GROUP BY step, bin_id""", params).fetchnumpy()
        sizes = con.execute("SELECT quote_volume / trade_count AS usd FROM raw.klines WHERE symbol = ? AND day = ? "
                            "AND trade_count > 0 AND quote_volume > 0", [symbol, day]).fetchnumpy()["usd"]
    else:
        entry_source = "none"
        flags.append("no aggTrades and no klines for the day: no new levels can be placed")
        traded = {"step": np.zeros(0, np.int64), "bin_id": np.zeros(0, np.int64), "usd": np.zeros(0)}
        sizes = np.zeros(0)
    entry_bins, col = np.unique(np.asarray(traded["bin_id"], dtype=np.int64), return_inverse=True)
    traded_usd = np.zeros((n_steps, entry_bins.size))
    np.add.at(traded_usd, (np.asarray(traded["step"], dtype=np.int64), col.ravel()),
              np.asarray(traded["usd"], dtype=np.float64))

    # Mark high/low per step; steps without a mark candle fall back to last-price klines (flagged).
    mark_high, mark_low, mark_close = (np.full(n_steps, np.nan) for _ in range(3))
    mark_source = "mark_price_klines"
    for table in ("raw.mark_price_klines", "raw.klines"):
        if table not in tables:
            continue
        missing = np.isnan(mark_high)
        if not missing.any():
            break
        c = _candle_steps(con, table, symbol, day, step_minutes)
        s = np.asarray(c["step"], dtype=np.int64)
        fill = missing[s]
        if table == "raw.klines" and fill.any():
            mark_source = "klines" if fill.sum() == n_steps else "mark_price_klines+klines"
            flags.append(f"mark-price klines missing in {int(fill.sum())} of {n_steps} steps: "
                         "last-price klines used there")
        mark_high[s[fill]] = np.asarray(c["high"], dtype=np.float64)[fill]
        mark_low[s[fill]] = np.asarray(c["low"], dtype=np.float64)[fill]
        mark_close[s[fill]] = np.asarray(c["close"], dtype=np.float64)[fill]
    if np.isnan(mark_high).any():
        flags.append(f"no mark or last-price candle in {int(np.isnan(mark_high).sum())} of {n_steps} steps: "
                     "nothing consumed there")

    # OI in force at every step boundary: last non-stale sample at or before it (the previous day's last
    # sample covers midnight).
    if "raw.open_interest" in tables:
        oi = con.execute(
            """SELECT create_time, sum_open_interest_value AS usd FROM raw.open_interest
               WHERE symbol = ? AND day BETWEEN ? AND ? AND NOT is_stale AND sum_open_interest_value IS NOT NULL
                 AND create_time <= ? ORDER BY create_time, day""",
            [symbol, day - dt.timedelta(days=1), day, end]).fetchnumpy()
        t_oi = np.asarray(oi["create_time"]).astype("datetime64[ms]")
        v_oi = np.asarray(oi["usd"], dtype=np.float64)
    else:
        t_oi, v_oi = np.zeros(0, "datetime64[ms]"), np.zeros(0)
    oi_start, oi_end = hm.oi_at(t_oi, v_oi, step_start), hm.oi_at(t_oi, v_oi, step_end)
    unknown = int((np.isnan(oi_start) | np.isnan(oi_end)).sum())
    if unknown:
        flags.append(f"open interest unknown at the bounds of {unknown} of {n_steps} steps: no change applied there")
    return DayInputs(symbol, day, step_minutes, step_end, oi_start, oi_end, mark_high, mark_low, mark_close,
                     entry_bins, traded_usd, np.asarray(sizes, dtype=np.float64), flags, mark_source, entry_source)


def _split_by_variant(rows: dict[str, np.ndarray], variants: tuple[str, ...]) -> dict[str, dict[str, np.ndarray]]:
    """Rows of one query over several variants (ordered by variant), one dict of columns per variant."""
    v = np.asarray(rows["variant"])
    return {name: {k: np.asarray(c)[v == name] for k, c in rows.items() if k != "variant"} for name in variants}


def load_start_states(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, variants: tuple[str, ...],
                      tables: frozenset[str] | None = None) -> dict[str, tuple[hm.LevelState, str]]:
    """End state of D−1 per variant: its last heatmap snapshot, else its D−1 liquidation levels, else empty.
    One query per table for all the variants."""
    tables = existing_tables(con) if tables is None else tables
    prev = day - dt.timedelta(days=1)
    out: dict[str, tuple[hm.LevelState, str]] = {}
    queries = (
        ("model.liquidation_heatmap", "heatmap D-1", """
            WITH last AS (SELECT variant, max(snapshot_time) AS t FROM model.liquidation_heatmap
                          WHERE symbol = $s AND day = $d AND list_contains($v, variant) GROUP BY variant)
            SELECT h.variant, CASE h.side WHEN 'long' THEN 1 ELSE -1 END AS sign, h.bin_id, h.notional_usd
            FROM model.liquidation_heatmap h JOIN last ON h.variant = last.variant AND h.snapshot_time = last.t
            WHERE h.symbol = $s AND h.day = $d ORDER BY h.variant, h.side, h.bin_id"""),
        ("model.liquidation_levels", "levels D-1", """
            SELECT variant, CASE side WHEN 'long' THEN 1 ELSE -1 END AS sign, bin_id, notional_usd
            FROM model.liquidation_levels WHERE symbol = $s AND day = $d AND list_contains($v, variant)
            ORDER BY variant, side, bin_id"""))
    for table, label, sql in queries:
        wanted = [v for v in variants if v not in out]
        if not wanted or table not in tables:
            continue
        rows = con.execute(sql, {"s": symbol, "d": prev, "v": wanted}).fetchnumpy()
        for v, r in _split_by_variant(rows, tuple(wanted)).items():
            if r["sign"].size:
                out[v] = (hm.LevelState.from_rows(r["sign"], r["bin_id"], r["notional_usd"]), label)
    return {v: out.get(v, (hm.LevelState.empty(), "empty")) for v in variants}


def carried_start_state(previous: "HeatmapDay", variant: str) -> tuple[hm.LevelState, str] | None:
    """The state `load_start_states` would read back for the day after `previous`, taken from `previous`
    itself: the cells of its last snapshot, as they are written (None when the variant's last snapshot is
    not at the day's last step: the stored rows then decide)."""
    r = previous.variants.get(variant)
    if r is None:
        return None
    ev = r.evolution
    last = ev.step == previous.inputs.step_end.size - 1
    if not last.any():
        return None
    return hm.LevelState.from_rows(ev.side[last], ev.bin_id[last], ev.notional_usd[last]), "heatmap D-1"


def load_long_shares(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, variants: tuple[str, ...],
                     entry_bins: np.ndarray, tables: frozenset[str] | None = None
                     ) -> dict[str, tuple[np.ndarray, str]]:
    """Per-entry-bin long share of each variant from `model.position_distribution` of D−1 (as of D−1's
    end: no lookahead), one query for all the variants."""
    tables = existing_tables(con) if tables is None else tables
    empty = np.zeros(0)
    dist = {v: {"bin_id": empty, "long_usd": empty, "short_usd": empty} for v in variants}
    if "model.position_distribution" in tables:
        rows = con.execute("SELECT variant, bin_id, long_usd, short_usd FROM model.position_distribution "
                           "WHERE symbol = ? AND day = ? AND list_contains(?, variant) ORDER BY variant, bin_id",
                           [symbol, day - dt.timedelta(days=1), list(variants)]).fetchnumpy()
        dist = _split_by_variant(rows, variants)
    return {v: hm.long_share_for_bins(entry_bins, d["bin_id"], d["long_usd"], d["short_usd"])
            for v, d in dist.items()}


# ---------------------------------------------------------------------------------------------- compute
@dataclass
class VariantResult:
    variant: str
    evolution: hm.Evolution
    start_state: str
    note: str


@dataclass
class HeatmapDay:
    inputs: DayInputs
    grid: PriceGrid
    variants: dict[str, VariantResult]
    flags: list[str]
    dropped_oi_usd: float

    def rows(self) -> pd.DataFrame:
        """Snapshot rows of every variant in the model.liquidation_heatmap layout."""
        frames = []
        for name, r in self.variants.items():
            ev = r.evolution
            frames.append(pd.DataFrame({
                "variant": name,
                "snapshot_time": self.inputs.step_end[ev.step],
                "side": np.where(ev.side > 0, "long", "short"),
                "bin_id": ev.bin_id,
                "price": self.grid.mid(ev.bin_id),
                "notional_usd": ev.notional_usd,
            }))
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        df["symbol"] = self.inputs.symbol
        df["day"] = self.inputs.day
        return df


def compute_heatmap_day(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date,
                        params: ModelParams = MODEL, variants: tuple[str, ...] = VARIANTS,
                        previous: HeatmapDay | None = None) -> HeatmapDay:
    """Evolve every variant of one symbol-day from the previous day's end state (model/heatmap.py).

    `previous`: the computed day before (same symbol), when the caller has it: its last snapshots are the
    start states, as they would be read back from its stored rows, without the query.
    """
    from liq_pipeline.warehouse.trade_sizes import day_size_choice

    tables = existing_tables(con)
    grid = grid_for(symbol, params)
    inputs = load_day_inputs(con, symbol, day, grid, params.heatmap_step_minutes, tables)
    flags = list(inputs.flags)
    ratio = hm.oi_shrink_ratio(inputs.oi_start_usd, inputs.oi_end_usd)
    entry_usd, dropped = hm.spread_entry_notional(inputs.oi_end_usd - inputs.oi_start_usd, inputs.traded_usd)
    if dropped > 0:
        flags.append(f"OI increase of ${dropped:,.0f} in steps without trades not placed")
    kernel = None
    if entry_usd.sum() > 0:
        choice = table_for(symbol, day)
        if choice.note:
            flags.append(choice.note)
        # One size rule for every map (warehouse/trade_sizes.py): trades, else the documented prior, flagged.
        size_choice = day_size_choice(con, symbol, day, params.size_buckets,
                                      inputs.trade_sizes_usd if inputs.entry_source == "aggTrades" else None)
        if size_choice.is_prior:
            flags.append(size_choice.flag)
        sizes = size_choice.buckets
        mix = LeverageMix.of(params.leverages, params.leverage_weights)
        kernel = hm.entry_kernel(inputs.entry_bins, grid, choice.table, mix, sizes)
    decay = hm.decay_per_step(params.heatmap_step_minutes, params.heatmap_half_life_hours)
    seeds = tuple(v for v in variants if v != "flow")
    carried = {}
    if previous is not None and previous.inputs.symbol == symbol and previous.inputs.day == day - dt.timedelta(days=1):
        carried = {v: c for v in seeds if (c := carried_start_state(previous, v)) is not None}
    starts = {**load_start_states(con, symbol, day, tuple(v for v in seeds if v not in carried), tables), **carried}
    shares = load_long_shares(con, symbol, day, seeds, kernel.entry_bin, tables) if kernel is not None else {}
    # The seed variants share the mark path, OI ratios and kernel: one evolution moves them all.
    notes = {v: shares[v][1] if kernel is not None else "" for v in seeds}
    evolutions: dict[str, hm.Evolution] = {}
    if seeds:
        if kernel is not None:
            added_bins = kernel.liq_bin
            added = np.stack([hm.opened_levels(entry_usd, shares[v][0], kernel) for v in seeds])
        else:
            added_bins, added = np.zeros(0, np.int64), np.zeros((len(seeds), entry_usd.shape[0], 2, 0))
        evolutions = dict(zip(seeds, hm.evolve_many([starts[v][0] for v in seeds], added_bins, added, ratio,
                                                    inputs.mark_high, inputs.mark_low, grid, decay), strict=True))
    results = {}
    for variant in variants:
        if variant == "flow":
            results[variant] = VariantResult(variant, flow_evolution(con, symbol, day, inputs.step_end, tables),
                                             "flow_book D-1", "")
            continue
        results[variant] = VariantResult(variant, evolutions[variant], starts[variant][1], notes[variant])
        if notes[variant]:
            flags.append(f"{variant}: {notes[variant]}")
    return HeatmapDay(inputs, grid, results, flags, dropped)


def flow_evolution(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, step_end: np.ndarray,
                   tables: frozenset[str] | None = None) -> hm.Evolution:
    """The `flow` variant's snapshots of the day as computed by flow_book (model/flow.py, one engine), in the
    Evolution layout of the other variants; bookkeeping: consumption per step from model.flow_steps."""
    tables = existing_tables(con) if tables is None else tables
    if "model.flow_snapshots" not in tables:
        raise LookupError(f"{symbol} {day}: model.flow_snapshots does not exist; materialize flow_book first")
    rows = con.execute("""SELECT snapshot_time, CASE side WHEN 'long' THEN 1 ELSE -1 END AS sign, bin_id, notional_usd
                          FROM model.flow_snapshots WHERE symbol = ? AND day = ?
                          ORDER BY snapshot_time, side, bin_id""", [symbol, day]).fetchnumpy()
    if rows["sign"].size == 0:
        raise LookupError(f"{symbol} {day}: no flow snapshots; materialize flow_book for this partition first")
    T = step_end.size
    step = np.searchsorted(step_end.astype("datetime64[ms]"), np.asarray(rows["snapshot_time"]).astype("datetime64[ms]"))
    side = np.asarray(rows["sign"], dtype=np.int64)
    last = step == step.max()
    consumed = np.zeros((T, 2))
    if "model.flow_steps" in tables:
        c = con.execute("""SELECT step_end, side, sum(consumed_usd) AS usd FROM model.flow_steps
                           WHERE symbol = ? AND day = ? GROUP BY ALL""", [symbol, day]).fetchnumpy()
        k = np.searchsorted(step_end.astype("datetime64[ms]"), np.asarray(c["step_end"]).astype("datetime64[ms]"))
        ok = k < T
        np.add.at(consumed, (k[ok], np.where(c["side"][ok] == "long", 0, 1)), np.asarray(c["usd"], float)[ok])
    zeros = np.zeros(T)
    return hm.Evolution(step=step, side=side, bin_id=np.asarray(rows["bin_id"], np.int64),
                        notional_usd=np.asarray(rows["notional_usd"], np.float64),
                        end_state=hm.LevelState.from_rows(side[last], rows["bin_id"][last], rows["notional_usd"][last]),
                        added_usd=zeros, shrunk_usd=zeros, consumed_long_usd=consumed[:, 0],
                        consumed_short_usd=consumed[:, 1], decayed_usd=zeros)


def write_heatmap_day(con: duckdb.DuckDBPyConnection, result: HeatmapDay) -> int:
    """Replace the day's model.liquidation_heatmap partition and its model.heatmap_snapshots index together
    (one transaction); returns the heatmap rows stored."""
    with registered_frame(con, "heatmap_rows", result.rows()):
        return _write_heatmap_rows(con, result.inputs.symbol, result.inputs.day)


def restore_heatmap_day(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, path: Path) -> int:
    """Put back a partition's rows kept by `keep_previous_rows` (and rebuild its snapshot index with them)."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW heatmap_rows AS SELECT * FROM read_parquet('{path}')")
    try:
        return _write_heatmap_rows(con, symbol, day)
    finally:
        con.execute("DROP VIEW IF EXISTS heatmap_rows")


def _write_heatmap_rows(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> int:
    n, _ = replace_partitions(con, symbol, day, [
        ("model.liquidation_heatmap", "SELECT symbol, day, variant, CAST(snapshot_time AS TIMESTAMP) AS "
         "snapshot_time, side, bin_id, price, notional_usd FROM heatmap_rows", None),
        ("model.heatmap_snapshots", SNAPSHOT_INDEX_SQL, None)])
    return n


def zones_for_state(state: hm.LevelState, grid: PriceGrid, mark_price: float) -> dict[str, zn.Zones]:
    """Zones per side of an end state ('long', 'short')."""
    price = grid.mid(state.bin_id)
    return {side: zn.find_zones(price, state.notional[row], mark_price)
            for side, row in (("long", hm.LONG_ROW), ("short", hm.SHORT_ROW))}


def zones_frame(zones: dict[str, zn.Zones]) -> pd.DataFrame:
    """Zones in the model.liquidation_zones layout (without symbol/day/variant/as_of)."""
    return pd.concat([pd.DataFrame({
        "side": side, "zone_rank": z.rank.astype(np.int32), "centroid_price": z.centroid_price,
        "price_low": z.price_low, "price_high": z.price_high, "notional_usd": z.notional_usd,
        "distance_pct": z.distance_pct, "share_of_side": z.share_of_side,
    }) for side, z in zones.items()], ignore_index=True)


def zones_markdown(df: pd.DataFrame, n: int = 5) -> str:
    """Top-n zones per side as a markdown table."""
    lines = ["| side | rank | centroid | range | notional (USD) | distance to mark | share of side |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for r in df[df["zone_rank"] <= n].itertuples():
        lines.append(f"| {r.side} | {r.zone_rank} | {r.centroid_price:,.2f} | {r.price_low:,.2f} – "
                     f"{r.price_high:,.2f} | {r.notional_usd:,.0f} | {r.distance_pct:+.2f} % | {r.share_of_side:.1%} |")
    return "\n".join(lines) if len(lines) > 2 else "no zones"


def picture_for(result: HeatmapDay, variant: str, zones: pd.DataFrame | None = None):
    """The HeatmapPicture of one variant of a computed day."""
    from liq_pipeline.plots.heatmap import HeatmapPicture, ZoneBand

    ev = result.variants[variant].evolution
    inp = result.inputs
    notes = list(result.flags)
    oi_ref = inp.oi_end_usd[-1] if np.isfinite(inp.oi_end_usd[-1]) and inp.oi_end_usd[-1] > 0 else 0.0
    if not oi_ref > 0:
        oi_ref = max(ev.end_state.total_usd, 1.0)
        notes.append("no open interest at the end of the day: colours relative to the end state's total notional")
    bands = [] if zones is None else [
        ZoneBand(r.side, int(r.zone_rank), float(r.price_low), float(r.price_high), float(r.notional_usd))
        for r in zones[zones["zone_rank"] <= 3].itertuples()]
    ok = np.isfinite(inp.mark_close)
    return HeatmapPicture(
        symbol=inp.symbol, day=inp.day, variant=variant, grid=result.grid, step_end=inp.step_end,
        step_minutes=inp.step_minutes, cell_step=ev.step, cell_side=ev.side, cell_bin=ev.bin_id,
        cell_notional_usd=ev.notional_usd, mark_time=inp.step_end[ok], mark_price=inp.mark_close[ok],
        oi_ref_usd=float(oi_ref), zones=bands, notes=notes)


# ---------------------------------------------------------------------------------------------- assets
def _rows_and_files_together(asset_fn):
    """Make a run's heatmap rows and its files (pictures, HTML report) succeed or fail together.

    Before any work the reports folder must accept a file (else: fail, nothing written). Every partition's
    previous rows are kept aside (`keep_previous_rows`) before they are replaced; if anything later fails,
    e.g. the report cannot be written, they are put back, so the table still matches the last successful
    materialization.
    """
    @functools.wraps(asset_fn)
    def wrapper(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        reports = config.reports_dir()
        try:
            reports.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=reports, prefix=".write-test-"):
                pass
        except OSError as e:
            raise dg.Failure(f"{e.strerror or e}: the reports folder {reports} does not accept files; nothing "
                             "was written (the heatmap rows and the report are written together)") from e
        with tempfile.TemporaryDirectory(prefix="liq-heatmap-previous-") as tmp:
            kept: list[tuple[str, dt.date, Path]] = []
            token = _PREVIOUS_ROWS.set((Path(tmp), kept))
            try:
                return asset_fn(context, duckdb)
            except BaseException:
                with duckdb.get_connection() as con:
                    for symbol, day, path in reversed(kept):
                        restore_heatmap_day(con, symbol, day, path)
                if kept:
                    context.log.error(f"run failed after writing rows: the previous rows of {len(kept)} partitions "
                                      "were put back")
                raise
            finally:
                _PREVIOUS_ROWS.reset(token)
    return wrapper


_PREVIOUS_ROWS: contextvars.ContextVar = contextvars.ContextVar("heatmap_previous_rows")


def keep_previous_rows(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> None:
    """Save the partition's current rows so `_rows_and_files_together` can put them back on failure."""
    folder, kept = _PREVIOUS_ROWS.get()
    if any(s == symbol and d == day for s, d, _ in kept):
        return
    ensure_tables(con, "model.liquidation_heatmap")
    path = folder / f"{symbol}-{day}.parquet"
    con.execute(f"COPY (SELECT * FROM model.liquidation_heatmap WHERE symbol = ? AND day = ?) TO '{path}' "
                "(FORMAT parquet)", [symbol, day])
    kept.append((symbol, day, path))


@dg.asset(
    partitions_def=partitions.symbol_day, group_name=GROUP, pool="duckdb", kinds={"duckdb"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[*(dg.AssetKey(k) for k in ("position_distribution", "liquidation_levels", "open_interest",
                                     "mark_price_klines", "klines", "agg_trades", "flow_book")),
          dg.AssetDep("liquidation_heatmap", partition_mapping=partitions.previous_day)],  # starts from D−1's end
)
@_rows_and_files_together
def liquidation_heatmap(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Liquidation levels over time: snapshots every `heatmap_step_minutes` (15 by default) for every
    variant; levels open with rising OI, shrink with falling OI, and vanish when the mark price crosses
    them. Each day starts from the previous day's end state."""
    total_rows = 0
    per_day: dict[tuple[str, dt.date], dict] = {}
    previous: dict[str, HeatmapDay] = {}  # the day before, per symbol: its end state starts the next day
    for symbol, day in partitions.symbol_days(context):
        with duckdb.get_connection() as con:
            result = previous[symbol] = compute_heatmap_day(con, symbol, day, previous=previous.get(symbol))
            keep_previous_rows(con, symbol, day)
            n = write_heatmap_day(con, result)
        total_rows += n
        per_day[(symbol, day)] = day_metadata(result, n)
        context.log.info(f"{symbol} {day}: {n} heatmap rows; " + "; ".join(per_day[(symbol, day)]["flags"].data))
    # Each partition of a range run shows its own day's pictures, zones and report (partitions.py).
    metadata = partitions.attach_per_partition(context, per_day)
    days = sorted({d for _, d in per_day})
    metadata.update({
        "run_range": f"{days[0]}…{days[-1]}, {len(per_day)} symbol-days, {total_rows:,} rows in this run",
        "symbol_days": len(per_day),
        "step_minutes": MODEL.heatmap_step_minutes,
        "half_life_hours": str(MODEL.heatmap_half_life_hours),
        "grid": result.grid.describe(),
    })
    return dg.MaterializeResult(metadata=metadata)


def day_metadata(result: HeatmapDay, rows: int) -> dict:
    """One partition's metadata: its heatmap and liquidation-map pictures, its HTML report (every variant),
    its zones, the bookkeeping of every variant and the data flags."""
    from liq_pipeline.plots.heatmap import heatmap_png, liquidation_map_png
    from liq_pipeline.plots.report import write_heatmap_report

    inp = result.inputs
    mark = inp.end_mark
    pictures = {}
    zones_df = None
    for v, r in result.variants.items():
        z = zones_frame(zones_for_state(r.evolution.end_state, result.grid, mark)) if np.isfinite(mark) else None
        pictures[v] = picture_for(result, v, z)
        if v == PICTURE_VARIANT:
            zones_df = z
    pic_variant = PICTURE_VARIANT if PICTURE_VARIANT in pictures else next(iter(pictures))
    pic = pictures[pic_variant]
    metadata: dict = {"partition": f"{inp.symbol} {inp.day}", "rows": rows}
    if result.variants[pic_variant].evolution.notional_usd.size or pic.mark_price.size:
        metadata["heatmap"] = dg.MetadataValue.md(markdown_image(heatmap_png(pic), pic.title))
        metadata["liquidation_map"] = dg.MetadataValue.md(
            markdown_image(liquidation_map_png(pic), f"{inp.symbol} {inp.day} liquidation map"))
        report = write_heatmap_report(list(pictures.values()), config.reports_dir(), default_variant=pic_variant)
        metadata["report"] = dg.MetadataValue.path(str(report.resolve()))
    if zones_df is not None:
        metadata["top_zones"] = dg.MetadataValue.md(f"{inp.symbol} {inp.day}, end of day ({pic_variant})\n\n"
                                                    + zones_markdown(zones_df))
    summaries = [{"variant": v, "start_state": r.start_state,
                  "end_notional_usd": round(r.evolution.end_state.total_usd),
                  "added_usd": round(float(r.evolution.added_usd.sum())),
                  "shrunk_usd": round(float(r.evolution.shrunk_usd.sum())),
                  "consumed_long_usd": round(float(r.evolution.consumed_long_usd.sum())),
                  "consumed_short_usd": round(float(r.evolution.consumed_short_usd.sum()))}
                 for v, r in result.variants.items()]
    metadata.update({
        "mark_source": inp.mark_source,
        "start_state": dg.MetadataValue.json({s["variant"]: s["start_state"] for s in summaries}),
        "summary": dg.MetadataValue.md(_markdown_table(summaries)),
        "flags": dg.MetadataValue.json([f"consumption on {inp.mark_source}"] + result.flags),
    })
    return metadata


def _markdown_table(records: list[dict]) -> str:
    """Records as a markdown table (pandas.to_markdown would need the optional tabulate package)."""
    if not records:
        return "nothing materialized"
    cols = list(records[0])
    fmt = lambda v: f"{v:,}" if isinstance(v, int | float) else str(v)  # noqa: E731
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                     + ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in records])


def end_of_day_mark(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> tuple[float, str]:
    """Last mark close of the day (last-price close if no mark candle), and which table it came from."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    for table in ("raw.mark_price_klines", "raw.klines"):
        if table_exists(con, table):
            row = con.execute(f"SELECT arg_max(close, open_time) FROM {table} WHERE symbol = ? AND day = ? "
                              "AND open_time < ?", [symbol, day, end]).fetchone()
            if row and row[0] is not None:
                return float(row[0]), table
    raise LookupError(f"{symbol} {day}: no mark-price or last-price klines to measure zone distances from")


@dg.asset(
    partitions_def=partitions.symbol_day, group_name=GROUP, pool="duckdb", kinds={"duckdb"},
    backfill_policy=dg.BackfillPolicy.single_run(), deps=[liquidation_heatmap],
)
def liquidation_zones(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Liquidation zones at the end of each day: weighted DBSCAN per side and variant on the last heatmap
    snapshot (model/zones.py: eps 0.25 % of price, a zone seeds where the notional within eps is 1.5× the
    side's average); ranked by notional."""
    total = 0
    per_day: dict[tuple[str, dt.date], dict] = {}
    for symbol, day in partitions.symbol_days(context):
        grid = grid_for(symbol)
        with duckdb.get_connection() as con:
            mark, mark_table = end_of_day_mark(con, symbol, day)
            snap = con.execute(
                """SELECT variant, snapshot_time, side, bin_id, notional_usd FROM model.liquidation_heatmap h
                   WHERE symbol = ? AND day = ? AND snapshot_time = (SELECT max(snapshot_time)
                       FROM model.liquidation_heatmap WHERE symbol = h.symbol AND day = h.day AND variant = h.variant)
                """, [symbol, day]).df() if table_exists(con, "model.liquidation_heatmap") else pd.DataFrame()
            if snap.empty:
                raise LookupError(f"{symbol} {day}: model.liquidation_heatmap has no snapshot; "
                                  "materialize liquidation_heatmap for this partition first")
            parts = []
            for variant, g in snap.groupby("variant", sort=True):
                state = hm.LevelState.from_rows(g["side"].to_numpy(), g["bin_id"].to_numpy(), g["notional_usd"].to_numpy())
                z = zones_frame(zones_for_state(state, grid, mark))
                z["variant"] = variant
                z["as_of"] = g["snapshot_time"].iloc[0]
                parts.append(z)
            rows = pd.concat(parts, ignore_index=True)
            rows["symbol"], rows["day"] = symbol, day
            con.register("zone_rows", rows)
            n = replace_partition(con, "model.liquidation_zones", symbol, day,
                                       "SELECT symbol, day, variant, CAST(as_of AS TIMESTAMP) AS as_of, side, "
                                       "zone_rank, centroid_price, price_low, price_high, notional_usd, "
                                       "distance_pct, share_of_side FROM zone_rows")
        total += n
        per_day[(symbol, day)] = {
            "partition": f"{symbol} {day}", "rows": n, "mark_source": mark_table,
            f"top_zones_{PICTURE_VARIANT}": dg.MetadataValue.md(
                f"{symbol} {day}, end of day\n\n" + zones_markdown(rows[rows["variant"] == PICTURE_VARIANT])),
        }
    metadata = partitions.attach_per_partition(context, per_day)
    metadata.update({"run_rows": total, "eps_rel": zn.DEFAULT_EPS_REL, "density_ratio": zn.DEFAULT_DENSITY_RATIO})
    return dg.MaterializeResult(metadata=metadata)
