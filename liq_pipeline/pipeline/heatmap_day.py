"""One symbol-day of the liquidation heatmap, computed without Dagster: read the day's inputs once
(warehouse/readers) and every variant's snapshots from its book (flow_book, the one engine of model/flow.py),
and return a typed `HeatmapDay` with the zones and pictures' data of each variant. The assets only call
these and write."""

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.config import FLOW, MODEL, ModelParams
from liq_pipeline.model import heatmap as hm
from liq_pipeline.model import variants as variant_registry
from liq_pipeline.model import zones as zn
from liq_pipeline.model.grid import PriceGrid, grid_for
from liq_pipeline.warehouse import heatmap_store
from liq_pipeline.warehouse.catalog import existing_tables
from liq_pipeline.warehouse.readers.heatmap import (
    end_of_day_mark,
    flow_consumed_by_variant,
    flow_consumed_rows,
    flow_snapshot_rows,
    hourly_mark_closes,
    last_snapshots,
)
from liq_pipeline.warehouse.readers.raw_day import DayInputs, load_day_inputs
from liq_pipeline.warehouse.trade_sizes import day_size_flag


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
                        params: ModelParams = MODEL, variants: tuple[str, ...] = variant_registry.NAMES,
                        previous: HeatmapDay | None = None) -> HeatmapDay:
    """Every variant's map of one symbol-day, read off its book (the snapshots flow_book stored, one engine:
    model/flow.py), with the day's mark path and OI for the pictures.

    `previous` is accepted for callers that process days in order; the books carry the state from day to
    day, so it is not needed.
    """
    tables = existing_tables(con)
    grid = grid_for(symbol, params)
    inputs = load_day_inputs(con, symbol, day, grid, params.heatmap_step_minutes, tables)
    consumed = flow_consumed_by_variant(con, symbol, day, tables)  # one query for every variant
    results = {v: VariantResult(v, flow_evolution(con, symbol, day, inputs.step_end, v, tables,
                                                  consumed.get(v, _NO_CONSUMPTION)), "flow_book D-1", "")
               for v in variants}
    flags = list(inputs.flags)
    # The books' cells were sized by the day's size rule (warehouse/trade_sizes.py): say when it was the prior.
    size_flag = day_size_flag(con, symbol, day, FLOW.size_buckets,
                              inputs.trade_sizes_usd if inputs.entry_source == "aggTrades" else None)
    if size_flag is not None:
        flags.append(size_flag)
    return HeatmapDay(inputs, grid, results, flags, 0.0)


_NO_CONSUMPTION = {"step_end": np.zeros(0, "datetime64[ms]"), "side": np.zeros(0, object), "usd": np.zeros(0)}


def flow_evolution(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, step_end: np.ndarray,
                   variant: str = variant_registry.DEFAULT, tables: frozenset[str] | None = None,
                   consumed_rows: dict[str, np.ndarray] | None = None) -> hm.Evolution:
    """A variant's snapshots of the day as computed by flow_book (model/flow.py, one engine), in the
    Evolution layout; bookkeeping: consumption per step from model.flow_steps (`consumed_rows`, when the
    caller has read them already: flow_consumed_by_variant)."""
    rows = flow_snapshot_rows(con, symbol, day, variant, tables)
    T = step_end.size
    step = np.searchsorted(step_end.astype("datetime64[ms]"), np.asarray(rows["snapshot_time"]).astype("datetime64[ms]"))
    side = np.asarray(rows["sign"], dtype=np.int64)
    last = step == T - 1  # the day's last step (a book emptied earlier ends the day empty)
    consumed = np.zeros((T, 2))
    c = flow_consumed_rows(con, symbol, day, variant, tables) if consumed_rows is None else consumed_rows
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
    return heatmap_store.write_heatmap_rows(con, result.inputs.symbol, result.inputs.day, result.rows())


def zone_daily_vol(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> float:
    """The realised daily volatility the zones of D are measured with: hourly mark returns of the 7 days
    ending with D (nan when too few: model/zones.py then uses its default)."""
    return zn.realised_daily_vol(hourly_mark_closes(con, symbol, day, 7), 60.0)


def zones_for_state(state: hm.LevelState, grid: PriceGrid, mark_price: float,
                    daily_vol: float | None = None) -> dict[str, zn.Zones]:
    """Zones per side of an end state ('long', 'short'), within reach of the mark at `daily_vol` (model/zones.py;
    None: its default)."""
    price = grid.mid(state.bin_id)
    return {side: zn.find_zones(price, state.notional[row], mark_price, daily_vol=daily_vol)
            for side, row in (("long", hm.LONG_ROW), ("short", hm.SHORT_ROW))}


def zones_frame(zones: dict[str, zn.Zones]) -> pd.DataFrame:
    """Zones in the model.liquidation_zones layout (without symbol/day/variant/as_of)."""
    return pd.concat([pd.DataFrame({
        "side": side, "zone_rank": z.rank.astype(np.int32), "centroid_price": z.centroid_price,
        "price_low": z.price_low, "price_high": z.price_high, "notional_usd": z.notional_usd,
        "distance_pct": z.distance_pct, "share_of_side": z.share_of_side,
    }) for side, z in zones.items()], ignore_index=True)


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


def end_of_day_zones(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> tuple[pd.DataFrame, str]:
    """The zones of every variant's last heatmap snapshot of the day, measured from the end-of-day mark, in
    the model.liquidation_zones layout; and the table the mark came from."""
    grid = grid_for(symbol)
    mark, mark_table = end_of_day_mark(con, symbol, day)
    vol = zone_daily_vol(con, symbol, day)
    parts = []
    for variant, g in last_snapshots(con, symbol, day).groupby("variant", sort=True):
        state = hm.LevelState.from_rows(g["side"].to_numpy(), g["bin_id"].to_numpy(), g["notional_usd"].to_numpy())
        z = zones_frame(zones_for_state(state, grid, mark, vol))
        z["variant"] = variant
        z["as_of"] = g["snapshot_time"].iloc[0]
        parts.append(z)
    rows = pd.concat(parts, ignore_index=True)
    rows["symbol"], rows["day"] = symbol, day
    return rows, mark_table
