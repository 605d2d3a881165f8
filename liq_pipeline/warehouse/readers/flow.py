"""Readers for the book engine (model/flow.py): one symbol-day's per-step inputs from the raw tables
(`raw.agg_trades`, `raw.klines`, `raw.funding_rates`, `raw.premium_index_klines`, `raw.open_interest`), the
stored books (`model.flow_book`, `model.flow_candidate_books`), the learned parameters
(`model.flow_parameters`) and the calibration data (`model.flow_steps`, `raw.realized_liquidations`,
`raw.realized_liquidation_bars`). DDL in schema.py. Public tables only, never truth.*."""

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.config import FLOW, MODEL, FlowParams, ModelParams
from liq_pipeline.model import flow as fl
from liq_pipeline.model import variants
from liq_pipeline.model.grid import PriceGrid
from liq_pipeline.warehouse import book_cache
from liq_pipeline.warehouse.io import exact_usd_sum as _usd
from liq_pipeline.warehouse.io import table_exists
from liq_pipeline.warehouse.readers.raw_day import load_day_inputs
from liq_pipeline.warehouse.trade_sizes import day_size_choice

SIDES = ("long", "short")
#: The variant whose parameters are learned (model.flow_parameters and the candidate books hold only it).
LEARNED = variants.LEARNED[0]


def _ms(t) -> np.ndarray:
    return np.asarray(t).astype("datetime64[ms]").astype(np.int64)


def _as_of(sample_ms: np.ndarray, values: np.ndarray, instants_ms: np.ndarray, max_age_ms: int) -> np.ndarray:
    """The last sample at or before each instant (sorted samples), nan when none or older than max_age_ms."""
    out = np.full(instants_ms.shape, np.nan)
    if sample_ms.size == 0:
        return out
    idx = np.searchsorted(sample_ms, instants_ms, side="right") - 1
    fresh = (idx >= 0) & (instants_ms - sample_ms[np.maximum(idx, 0)] <= max_age_ms)
    out[fresh] = np.asarray(values, dtype=np.float64)[idx[fresh]]
    return out


# ---------------------------------------------------------------------------------------------- inputs
def load_flow_inputs(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, grid: PriceGrid,
                     params: ModelParams = MODEL, flow: FlowParams = FLOW) -> tuple[fl.FlowInputs, list[str]]:
    """The per-step arrays of one symbol-day for the flow engine, one aggregation per raw table.

    Traded notional per (step, entry bin), mark range and OI bounds come from the heatmap's loader
    (readers/raw_day.py load_day_inputs); on top: taker buy/sell notional per step, the funding settled in
    (D 00:00, D+1 00:00] (the settlement at the as-of instant included), the latest 8h-equivalent rate
    at each step end, the premium index per step and the metrics' account long/short ratio.
    """
    d = load_day_inputs(con, symbol, day, grid, params.heatmap_step_minutes)
    flags = list(d.flags)
    T = d.step_end.size
    step_ms = params.heatmap_step_minutes * 60_000
    start = dt.datetime.combine(day, dt.time())
    end = start + dt.timedelta(days=1)
    q = {"symbol": symbol, "day": day, "start": start, "end": end, "step_ms": step_ms}

    buy, sell = np.zeros(T), np.zeros(T)
    if d.traded_usd.size and table_exists(con, "raw.agg_trades") and not any("no aggTrades" in f for f in d.flags):
        r = con.execute(f"""SELECT date_diff('millisecond', $start, transact_time) // $step_ms AS step,
                                  {_usd("CASE WHEN NOT is_buyer_maker THEN price * quantity ELSE 0 END")} AS buy,
                                  {_usd("CASE WHEN is_buyer_maker THEN price * quantity ELSE 0 END")} AS sell
                           FROM raw.agg_trades WHERE symbol = $symbol AND day = $day
                             AND transact_time >= $start AND transact_time < $end GROUP BY 1 ORDER BY 1""", q).fetchnumpy()
    elif table_exists(con, "raw.klines"):
        r = con.execute(f"""SELECT date_diff('millisecond', $start, open_time) // $step_ms AS step,
                                  {_usd("taker_buy_quote_volume")} AS buy,
                                  {_usd("quote_volume - taker_buy_quote_volume")} AS sell
                           FROM raw.klines WHERE symbol = $symbol AND day = $day AND open_time >= $start
                             AND open_time < $end AND taker_buy_volume <> volume / 2.0 GROUP BY 1 ORDER BY 1""", q).fetchnumpy()
    else:
        r = {"step": np.zeros(0, np.int64), "buy": np.zeros(0), "sell": np.zeros(0)}
    s = np.asarray(r["step"], dtype=np.int64)
    ok = (s >= 0) & (s < T)
    buy[s[ok]] = np.nan_to_num(np.asarray(r["buy"], dtype=np.float64)[ok])
    sell[s[ok]] = np.nan_to_num(np.asarray(r["sell"], dtype=np.float64)[ok])

    settle_ms, settle_rate = np.zeros(0, np.int64), np.zeros(0)
    funding_8h = np.full(T, np.nan)
    if table_exists(con, "raw.funding_rates"):
        f = con.execute("""SELECT funding_time, last_funding_rate, funding_rate_8h FROM raw.funding_rates
                           WHERE symbol = $symbol AND day BETWEEN $d0 AND $d1 AND funding_time <= $end
                           ORDER BY funding_time""",
                        {"symbol": symbol, "end": end, "d0": day - dt.timedelta(days=1),
                         "d1": day + dt.timedelta(days=1)}).fetchnumpy()
        t_f = _ms(f["funding_time"])
        inside = t_f > _ms(np.datetime64(start))
        settle_ms, settle_rate = t_f[inside], np.asarray(f["last_funding_rate"], dtype=np.float64)[inside]
        funding_8h = _as_of(t_f, f["funding_rate_8h"], _ms(d.step_end), 9 * fl.MS_PER_HOUR)

    premium = np.full(T, np.nan)
    if table_exists(con, "raw.premium_index_klines"):
        p = con.execute("""SELECT date_diff('millisecond', $start, open_time) // $step_ms AS step, avg(close ORDER BY open_time) AS p
                           FROM raw.premium_index_klines WHERE symbol = $symbol AND day = $day
                             AND open_time >= $start AND open_time < $end GROUP BY 1 ORDER BY 1""", q).fetchnumpy()
        s = np.asarray(p["step"], dtype=np.int64)
        ok = (s >= 0) & (s < T)
        premium[s[ok]] = np.asarray(p["p"], dtype=np.float64)[ok]

    accounts = np.full(T, np.nan)
    if table_exists(con, "raw.open_interest"):
        m = con.execute("""SELECT create_time, count_long_short_ratio AS r FROM raw.open_interest
                           WHERE symbol = $symbol AND day BETWEEN $d0 AND $day AND create_time <= $end
                             AND count_long_short_ratio > 0 AND NOT is_stale ORDER BY create_time""",
                        {"symbol": symbol, "day": day, "end": end, "d0": day - dt.timedelta(days=1)}).fetchnumpy()
        r = _as_of(_ms(m["create_time"]), m["r"], _ms(d.step_end), 2 * fl.MS_PER_HOUR)
        accounts = r / (1.0 + r)

    # One size rule for every map (warehouse/trade_sizes.py): trades, else klines, else the documented prior, flagged.
    size_choice = day_size_choice(con, symbol, day, flow.size_buckets,  # the trades already read, if any
                                  d.trade_sizes_usd if d.entry_source == "aggTrades" else None)
    if size_choice.is_prior:
        flags.append(size_choice.flag)
    sizes = size_choice.buckets
    inputs = fl.FlowInputs(
        step_start_ms=_ms(d.step_end) - step_ms, step_ms=step_ms, mark_high=d.mark_high, mark_low=d.mark_low,
        mark_close=d.mark_close, oi_start_usd=d.oi_start_usd, oi_end_usd=d.oi_end_usd, entry_price=grid.mid(d.entry_bins),
        traded_usd=d.traded_usd, taker_buy_usd=buy, taker_sell_usd=sell, settle_ms=settle_ms,
        settle_rate=settle_rate, funding_8h=funding_8h, premium=premium, account_long_share=accounts, sizes=sizes,
        entry_long_prob=ofi_long_prob(con, symbol, day - dt.timedelta(days=1), d.entry_bins))
    return inputs, flags


def ofi_long_prob(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, bin_ids: np.ndarray) -> np.ndarray:
    """The OFI long probability (model.ofi_bins of `day`, its window's order flow) of each bin in `bin_ids`;
    nan where the bin has none or the day has no OFI bins."""
    out = np.full(np.shape(bin_ids), np.nan)
    if not table_exists(con, "model.ofi_bins") or out.size == 0:
        return out
    rows = con.execute("SELECT bin_id, long_prob FROM model.ofi_bins WHERE symbol = ? AND day = ? ORDER BY bin_id",
                       [symbol, day]).fetchnumpy()
    have = np.asarray(rows["bin_id"], dtype=np.int64)
    if have.size:
        k = np.clip(np.searchsorted(have, bin_ids), 0, have.size - 1)
        hit = have[k] == bin_ids
        out[hit] = np.asarray(rows["long_prob"], dtype=np.float64)[k[hit]]
    return out


_BOOK_COLUMNS = """epoch_ms(open_time) AS open_ms, CASE side WHEN 'long' THEN 1 ELSE -1 END AS side, entry_price,
                   lev_bucket, leverage, size_usd, mmr, lp_open, funding_paid, weight, notional_usd"""


def load_book(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, variant: str) -> fl.Book:
    """A variant's end book of `day` (empty when it was not computed)."""
    if (got := book_cache.kept("model.flow_book", symbol, day, variant)) is not None:
        return got
    if not table_exists(con, "model.flow_book"):
        return fl.Book.empty()
    f = con.execute(f"SELECT {_BOOK_COLUMNS} FROM model.flow_book WHERE symbol = ? AND day = ? AND variant = ? "
                    "ORDER BY ALL", [symbol, day, variant]).fetchnumpy()
    return fl.Book.from_columns(f)


def load_latest_book(con: duckdb.DuckDBPyConnection, symbol: str, variant: str) -> tuple[dt.date, fl.Book]:
    """The latest day with a stored book of `variant` for `symbol`, and that book; LookupError naming what to
    materialize when there is none."""
    day = con.execute("SELECT max(day) FROM model.flow_book WHERE symbol = ? AND variant = ?",
                      [symbol, variant]).fetchone()[0] if table_exists(con, "model.flow_book") else None
    if day is None:
        raise LookupError(f"no model.flow_book rows for {symbol} ({variant}): materialize flow_book for at least one "
                          "day (make demo, or the daily refresh) before asking for the 'now' heatmap")
    return day, load_book(con, symbol, day, variant)


def load_candidate_book(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, half_life_hours: float) -> fl.Book:
    """The end book of `day` of the survival fit's candidate with this half-life (empty when none)."""
    if (got := book_cache.kept("model.flow_candidate_books", symbol, day, float(half_life_hours))) is not None:
        return got
    if not table_exists(con, "model.flow_candidate_books"):
        return fl.Book.empty()
    f = con.execute(f"""SELECT {_BOOK_COLUMNS} FROM model.flow_candidate_books
                        WHERE symbol = ? AND day = ? AND half_life_hours = ? ORDER BY ALL""",
                    [symbol, day, float(half_life_hours)]).fetchnumpy()
    return fl.Book.from_columns(f)


def load_survival(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, flow: FlowParams = FLOW
                  ) -> tuple[FlowParams, str]:
    """The parameters with the survival time scale (H, τ) of the posterior stored at the end of `day` (its
    median, "learned" or "prior" as stored: model/survival.py), else the prior's H, τ ("prior")."""
    if table_exists(con, "model.flow_parameters"):
        row = con.execute("""SELECT value, source FROM model.flow_parameters
                             WHERE symbol = ? AND day = ? AND parameter = 'half_life_hours'""", [symbol, day]).fetchone()
        if row is not None and row[0] is not None and row[0] > 0:
            return fl.with_time_scale(flow, row[0]), row[1]
    return flow, "prior"


def load_mix(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, flow: FlowParams = FLOW) -> fl.SideMix:
    """The mix and leveraged shares learned at the end of `day` (the prior when none are stored)."""
    prior = fl.SideMix.prior(flow)
    if not table_exists(con, "model.flow_parameters"):
        return prior
    rows = con.execute("""SELECT parameter, side, value, source FROM model.flow_parameters
                          WHERE symbol = ? AND day = ? AND (parameter LIKE 'weight_%' OR parameter = 'leveraged_share')""",
                       [symbol, day]).fetchall()
    if not rows:
        return prior
    got = {(p, s): v for p, s, v, _ in rows}
    w = {side: np.array([got.get((f"weight_{lev:g}x", side), np.nan) for lev in flow.leverages]) for side in SIDES}
    if any(np.isnan(x).any() or abs(x.sum() - 1) > 1e-6 for x in w.values()):
        return prior
    source = "learned" if any(src == "learned" for *_, src in rows) else "prior"
    return fl.SideMix(w["long"], w["short"], float(got.get(("leveraged_share", "long"), 1.0)),
                      float(got.get(("leveraged_share", "short"), 1.0)), source)


def calibration_data(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, flow: FlowParams = FLOW
                     ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """Per side: (U hourly consumed-per-weight (n, L), R hourly public liquidation notional (n,)) over the
    `calibration_days` ending on `day`, and the realized source used (events, bars or none).

    Public liquidations: raw.realized_liquidations (forceOrder records and liquidationSnapshot files; a
    record repeated by two sources counts once), else raw.realized_liquidation_bars.
    """
    first = day - dt.timedelta(days=flow.calibration_days - 1)
    t0 = dt.datetime.combine(first, dt.time())
    t1 = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    levs = np.asarray(flow.leverages)
    u = con.execute(f"""SELECT time_bucket(INTERVAL 1 HOUR, step_end - INTERVAL 1 MILLISECOND) AS hour, side, leverage,
                              {_usd("consumed_per_weight_usd")} AS u
                       FROM model.flow_steps WHERE symbol = ? AND day BETWEEN ? AND ? AND variant = ?
                       GROUP BY ALL ORDER BY ALL""", [symbol, first, day, LEARNED]).df() if table_exists(con, "model.flow_steps") else pd.DataFrame()
    realized, source = pd.DataFrame(), "none"
    if table_exists(con, "raw.realized_liquidations"):
        realized = con.execute(f"""SELECT time_bucket(INTERVAL 1 HOUR, trade_time) AS hour, side, {_usd("notional_usd")} AS r
                                  FROM (SELECT DISTINCT ON (trade_time, side, price, quantity) trade_time, side, notional_usd
                                        FROM raw.realized_liquidations
                                        WHERE symbol = ? AND trade_time >= ? AND trade_time < ?)
                                  GROUP BY ALL ORDER BY ALL""", [symbol, t0, t1]).df()
        source = "events" if not realized.empty else source
    if realized.empty and table_exists(con, "raw.realized_liquidation_bars"):
        bars = con.execute(f"""SELECT time_bucket(INTERVAL 1 HOUR, bar_start) AS hour, {_usd("long_usd")} AS long,
                                     {_usd("short_usd")} AS short
                              FROM (SELECT bar_start, max(long_usd) AS long_usd, max(short_usd) AS short_usd
                                    FROM raw.realized_liquidation_bars
                                    WHERE symbol = ? AND bar_start >= ? AND bar_start < ? GROUP BY bar_start)
                              GROUP BY 1 ORDER BY 1""", [symbol, t0, t1]).df()
        if not bars.empty:
            realized = bars.melt(id_vars="hour", value_vars=["long", "short"], var_name="side", value_name="r")
            source = "bars"
    hours = pd.date_range(t0, t1, freq="h", inclusive="left")
    out = {}
    for side in SIDES:
        U = np.zeros((hours.size, levs.size))
        R = np.zeros(hours.size)
        if not u.empty:
            us = u[u["side"] == side]
            h = hours.get_indexer(pd.to_datetime(us["hour"]))
            li = np.searchsorted(levs, us["leverage"].to_numpy())
            ok = (h >= 0) & (li < levs.size)
            np.add.at(U, (h[ok], li[ok]), us["u"].to_numpy()[ok])
        if not realized.empty:
            rs = realized[realized["side"] == side]
            h = hours.get_indexer(pd.to_datetime(rs["hour"]))
            np.add.at(R, h[h >= 0], rs["r"].to_numpy(dtype=np.float64)[h >= 0])
        out[side] = (U, R)
    return out, source


def past_survival_rows(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, flow: FlowParams = FLOW
                       ) -> list[tuple]:
    """(day, parameter, side, value) of the survival fit's statistics stored for the `calibration_days`
    ending before `day` (model.flow_parameters rows named survival_*)."""
    if not table_exists(con, "model.flow_parameters"):
        return []
    first = day - dt.timedelta(days=flow.calibration_days - 1)
    return con.execute("""SELECT day, parameter, side, value FROM model.flow_parameters
                          WHERE symbol = ? AND day >= ? AND day < ? AND parameter LIKE 'survival_%'
                          ORDER BY ALL""", [symbol, first, day]).fetchall()


def parameter_rows(con: duckdb.DuckDBPyConnection, symbol: str, first: dt.date, last: dt.date
                   ) -> pd.DataFrame | None:
    """day, parameter, side, value, source of every row of model.flow_parameters of the days first..last, by day,
    side, parameter; None when the table does not exist."""
    if not table_exists(con, "model.flow_parameters"):
        return None
    return con.execute("""SELECT day, parameter, side, value, source FROM model.flow_parameters
                          WHERE symbol = ? AND day BETWEEN ? AND ? ORDER BY day, side, parameter""",
                       [symbol, first, last]).df()
