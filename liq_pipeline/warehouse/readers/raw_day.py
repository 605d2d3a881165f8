"""Reader of one symbol-day's per-step inputs from the raw tables (`raw.agg_trades`, `raw.klines`,
`raw.mark_price_klines`, `raw.open_interest`; DDL in schema.py): one aggregation per table, returned as a
`DayInputs` of numpy arrays for the heatmap and the book engine."""

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import numpy as np

from liq_pipeline.config import KLINE_INTERVAL_MS
from liq_pipeline.model import candle_path
from liq_pipeline.model import heatmap as hm
from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.warehouse.catalog import existing_tables, table_exists
from liq_pipeline.warehouse.grid_sql import bin_id_sql
from liq_pipeline.warehouse.io import exact_usd_sum

_INTERVAL_MS_SQL = "CASE interval " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in KLINE_INTERVAL_MS.items()) + " END"


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


def has_rows(con: duckdb.DuckDBPyConnection, table: str, symbol: str, day: dt.date,
              tables: frozenset[str] | None = None) -> bool:
    if not (table in tables if tables is not None else table_exists(con, table)):
        return False
    return con.execute(f"SELECT count(*) > 0 FROM {table} WHERE symbol = ? AND day = ?", [symbol, day]).fetchone()[0]


def days_with_rows(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...], symbol: str,
                   days: list[dt.date]) -> set[dt.date]:
    """The days of `days` on which any of `tables` holds a row of `symbol` (one query per table)."""
    if not days:
        return set()
    found: set[dt.date] = set()
    present = existing_tables(con)
    for table in tables:
        if table in present:
            rows = con.execute(f"SELECT DISTINCT day FROM {table} WHERE symbol = ? AND day BETWEEN ? AND ?",
                               [symbol, min(days), max(days)]).fetchall()
            found |= {r[0] for r in rows}
    return found & set(days)


def _step_bounds(day: dt.date, step_minutes: int) -> tuple[dt.datetime, dt.datetime, int, int]:
    start = dt.datetime.combine(day, dt.time())
    return start, start + dt.timedelta(days=1), hm.steps_per_day(step_minutes), step_minutes * 60_000


def _candle_steps(con, table: str, symbol: str, day: dt.date, step_minutes: int) -> dict[str, np.ndarray]:
    """High, low, last close and the coarsest candle interval (ms) per step from candles of any interval; a
    candle belongs to the step holding its last millisecond (open_time + interval − 1 ms), so a coarse candle
    never consumes before it closes."""
    start, end, n_steps, step_ms = _step_bounds(day, step_minutes)
    return con.execute(
        f"""
        SELECT CAST(date_diff('millisecond', $start, open_time) + {_INTERVAL_MS_SQL} - 1 AS BIGINT) // $step_ms
                   AS step,
               max(high) AS high, min(low) AS low, arg_max(close, open_time) AS close,
               max({_INTERVAL_MS_SQL}) AS interval_ms
        FROM {table}
        WHERE symbol = $symbol AND day = $day AND open_time >= $start AND open_time < $end
        GROUP BY step HAVING step BETWEEN 0 AND $last ORDER BY step
        """,
        {"start": start, "end": end, "symbol": symbol, "day": day, "step_ms": step_ms, "last": n_steps - 1},
    ).fetchnumpy()


def _kline_path_volume(con: duckdb.DuckDBPyConnection, grid: PriceGrid, params: dict
                       ) -> tuple[dict[str, np.ndarray], int]:
    """Traded notional per (step, entry bin) from last-price klines: each candle's quote volume in equal
    parts at `candle_path.PATH_POINTS` prices along its OHLC path (model/candle_path.py). Returns the rows
    and the number of candles left out because their prices are not a candle (low <= 0, high < low, open or
    close outside [low, high], or missing)."""
    k = con.execute(
        """SELECT date_diff('millisecond', $start, open_time) // $step_ms AS step, open, high, low, close, quote_volume
           FROM raw.klines
           WHERE symbol = $symbol AND day = $day AND open_time >= $start AND open_time < $end AND quote_volume > 0""",
        params).fetchnumpy()
    o, h, lo, c = (np.asarray(k[x], dtype=np.float64) for x in ("open", "high", "low", "close"))
    with np.errstate(invalid="ignore"):
        ok = (lo > 0) & (h >= lo) & (o >= lo) & (o <= h) & (c >= lo) & (c <= h)
    prices = candle_path.path_points(o[ok], h[ok], lo[ok], c[ok], candle_path.PATH_POINTS)
    n = prices.shape[1]
    return ({"step": np.repeat(np.asarray(k["step"], dtype=np.int64)[ok], n), "bin_id": grid.bin_id(prices).ravel(),
             "usd": np.repeat(np.asarray(k["quote_volume"], dtype=np.float64)[ok] / n, n)}, int((~ok).sum()))


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

    # Traded notional per (step, entry bin): aggTrades, else last-price klines drawn along each candle's
    # OHLC path (model/candle_path.py: three equal-volume prices per candle, not one typical price).
    if has_rows(con, "raw.agg_trades", symbol, day, tables):
        traded = con.execute(
            f"""SELECT date_diff('millisecond', $start, transact_time) // $step_ms AS step,
                       {bin_id_sql(grid, 'price')} AS bin_id, {exact_usd_sum('price * quantity')} AS usd
                FROM raw.agg_trades
                WHERE symbol = $symbol AND day = $day AND transact_time >= $start AND transact_time < $end
                GROUP BY step, bin_id""", params).fetchnumpy()
        sizes = con.execute("SELECT price * quantity AS usd FROM raw.agg_trades WHERE symbol = ? AND day = ?",
                            [symbol, day]).fetchnumpy()["usd"]
    elif has_rows(con, "raw.klines", symbol, day, tables):
        entry_source = "klines"
        flags.append("no aggTrades: entry prices and position sizes from last-price klines")
        traded, bad = _kline_path_volume(con, grid, params)
        if bad:
            flags.append(f"{bad} klines left out of the entry prices: prices not a candle (low <= 0, high < low, "
                         "or open or close outside [low, high])")
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

    # Mark high/low per step, from the finest candles that resolve the step: mark-price klines no longer than
    # the step, else last-price klines no longer than the step (flagged), else the coarser candles as a last
    # resort at the step that closes them. A mark candle longer than the step (1h mark klines under 15-minute
    # steps) would apply its whole range at its closing step and so consume the positions opened after its
    # extreme, inside the candle: it empties the book near the mark at every candle close.
    mark_high, mark_low, mark_close = (np.full(n_steps, np.nan) for _ in range(3))
    mark_source = "mark_price_klines"
    coarse: list[tuple[str, dict]] = []
    used: list[str] = []
    for table in ("raw.mark_price_klines", "raw.klines"):
        if table not in tables or not np.isnan(mark_high).any():
            continue
        c = _candle_steps(con, table, symbol, day, step_minutes)
        s = np.asarray(c["step"], dtype=np.int64)
        fine = np.asarray(c["interval_ms"], dtype=np.int64) <= step_ms
        coarse.append((table, {k: np.asarray(v)[~fine] for k, v in c.items()}))
        fill = np.isnan(mark_high[s]) & fine
        if fill.any():
            used.append(table)
        mark_high[s[fill]] = np.asarray(c["high"], dtype=np.float64)[fill]
        mark_low[s[fill]] = np.asarray(c["low"], dtype=np.float64)[fill]
        mark_close[s[fill]] = np.asarray(c["close"], dtype=np.float64)[fill]
        if table == "raw.klines" and fill.any():
            flags.append(f"mark-price klines missing or coarser than the {step_minutes}-minute step in "
                         f"{int(fill.sum())} of {n_steps} steps: last-price klines used there")
    for table, c in coarse:
        s = np.asarray(c["step"], dtype=np.int64)
        fill = np.isnan(mark_high[s])
        if not fill.any():
            continue
        used.append(table)
        flags.append(f"{int(fill.sum())} of {n_steps} steps consumed on {table.split('.')[1]} longer than the "
                     f"{step_minutes}-minute step, each at the step that closes it (nothing finer for them)")
        mark_high[s[fill]] = np.asarray(c["high"], dtype=np.float64)[fill]
        mark_low[s[fill]] = np.asarray(c["low"], dtype=np.float64)[fill]
        mark_close[s[fill]] = np.asarray(c["close"], dtype=np.float64)[fill]
    coarse_mark = dict(coarse).get("raw.mark_price_klines")
    if coarse_mark is not None:
        # A coarse mark candle's close is still the mark at the instant it closes (the end-of-day mark).
        mark_close[np.asarray(coarse_mark["step"], dtype=np.int64)] = np.asarray(coarse_mark["close"], np.float64)
    used = list(dict.fromkeys(used))
    if used:
        mark_source = "+".join(t.split(".")[1] for t in used)
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
