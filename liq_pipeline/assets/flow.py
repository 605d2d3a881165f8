"""Dagster asset `flow_book` (group model): runs the `flow` engine (model/flow.py) for one symbol-day, and
the SQL that feeds it and reads its results back for the other assets of the `flow` variant.

Per symbol-day: the book of D−1 (model.flow_book) and the parameters learned at the end of D−1
(model.flow_parameters) → run the day → store the end book, the snapshots (model.flow_snapshots, which
liquidation_heatmap shows as variant `flow`), the per-step consumption and the parameters learned from
public liquidations up to the end of D (used by D+1). Reads only public tables (raw.*), never truth.*.
"""

import datetime as dt

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from liq_pipeline import partitions
from liq_pipeline.config import FLOW, MODEL, FlowParams, ModelParams
from liq_pipeline.model import flow as fl
from liq_pipeline.model.grid import PriceGrid, grid_for
from liq_pipeline.model.margin import table_for
from liq_pipeline.warehouse.io import exact_usd_sum as _usd
from liq_pipeline.warehouse.io import registered_frame, replace_partition, table_exists
from liq_pipeline.warehouse.trade_sizes import day_size_choice

GROUP = "model"
SIDES = ("long", "short")


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
    (assets/heatmap.py load_day_inputs); on top: taker buy/sell notional per step, the funding settled in
    (D 00:00, D+1 00:00] (the settlement at the as-of instant included), the latest 8h-equivalent rate
    at each step end, the premium index per step and the metrics' account long/short ratio.
    """
    from liq_pipeline.assets.heatmap import load_day_inputs

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
        oi_start_usd=d.oi_start_usd, oi_end_usd=d.oi_end_usd, entry_price=grid.mid(d.entry_bins),
        traded_usd=d.traded_usd, taker_buy_usd=buy, taker_sell_usd=sell, settle_ms=settle_ms,
        settle_rate=settle_rate, funding_8h=funding_8h, premium=premium, account_long_share=accounts, sizes=sizes)
    return inputs, flags


_BOOK_COLUMNS = """epoch_ms(open_time) AS open_ms, CASE side WHEN 'long' THEN 1 ELSE -1 END AS side, entry_price,
                   lev_bucket, leverage, size_usd, mmr, lp_open, funding_paid, weight, notional_usd"""


def load_book(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> fl.Book:
    """The end book of `day` (empty when it was not computed)."""
    if not table_exists(con, "model.flow_book"):
        return fl.Book.empty()
    f = con.execute(f"SELECT {_BOOK_COLUMNS} FROM model.flow_book WHERE symbol = ? AND day = ? ORDER BY ALL",
                    [symbol, day]).fetchnumpy()
    return fl.Book.from_columns(f)


def load_candidate_book(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, half_life_hours: float) -> fl.Book:
    """The end book of `day` of the survival fit's candidate with this half-life (empty when none)."""
    if not table_exists(con, "model.flow_candidate_books"):
        return fl.Book.empty()
    f = con.execute(f"""SELECT {_BOOK_COLUMNS} FROM model.flow_candidate_books
                        WHERE symbol = ? AND day = ? AND half_life_hours = ? ORDER BY ALL""",
                    [symbol, day, float(half_life_hours)]).fetchnumpy()
    return fl.Book.from_columns(f)


def book_frame(symbol: str, day: dt.date, b: fl.Book) -> pd.DataFrame:
    return pd.DataFrame({"symbol": symbol, "day": day, "open_time": b.open_ms.astype("datetime64[ms]"),
                         "side": np.where(b.side > 0, "long", "short"),
                         **{k: v for k, v in b.columns().items() if k not in ("open_ms", "side")}})


def load_survival(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, flow: FlowParams = FLOW
                  ) -> tuple[FlowParams, str]:
    """The parameters with the survival time scale (H, τ) learned at the end of `day`, and its source
    ("learned", or "prior" when none was learned or stored)."""
    if table_exists(con, "model.flow_parameters"):
        row = con.execute("""SELECT value, source FROM model.flow_parameters
                             WHERE symbol = ? AND day = ? AND parameter = 'half_life_hours'""", [symbol, day]).fetchone()
        if row is not None and row[1] == "learned" and row[0] is not None and row[0] > 0:
            return fl.with_time_scale(flow, row[0]), "learned"
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
                       FROM model.flow_steps WHERE symbol = ? AND day BETWEEN ? AND ? GROUP BY ALL ORDER BY ALL""",
                    [symbol, first, day]).df() if table_exists(con, "model.flow_steps") else pd.DataFrame()
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


# ---------------------------------------------------------------------------------------------- compute
def compute_flow_day(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, params: ModelParams = MODEL,
                     flow: FlowParams = FLOW) -> dict:
    """Run the engine for one symbol-day from D−1's book and parameters, and learn D's parameters.

    Returns the frames to store (book, snapshots, steps, parameters) and a summary for the metadata.
    """
    grid = grid_for(symbol, params)
    inputs, flags = load_flow_inputs(con, symbol, day, grid, params, flow)
    prev = day - dt.timedelta(days=1)
    start = load_book(con, symbol, prev)
    mix = load_mix(con, symbol, prev, flow)
    if len(start) == 0:
        flags.append("cold start: no flow book for the previous day")
    choice = table_for(symbol, day)
    if choice.note:
        flags.append(choice.note)
    survival, survival_source = load_survival(con, symbol, prev, flow)
    result = fl.run_day(start, inputs, grid, choice.table, mix, survival)
    flags += result.flags

    # The survival fit's candidate books, each with its own time scale (no snapshots: consumption only).
    candidates, day_start_ms = [], int(inputs.step_start_ms[0])
    for h in flow.survival_candidates:
        cbook = load_candidate_book(con, symbol, prev, h)
        warm = len(cbook) > 0 and day_start_ms - int(cbook.open_ms.min()) >= flow.survival_warm_days * 24 * fl.MS_PER_HOUR
        r = fl.run_day(cbook, inputs, grid, choice.table, mix, fl.with_time_scale(flow, h), snapshots=False)
        candidates.append({"half_life_hours": h, "warm": warm, "end_book": r.end_book,
                           "consumed_hourly": fl.hourly(r.consumed_usd, inputs.step_start_ms)})
    candidate_books = pd.concat([book_frame(symbol, day, c["end_book"]).assign(half_life_hours=c["half_life_hours"])
                                 for c in candidates], ignore_index=True)

    step_end = (inputs.step_start_ms + inputs.step_ms).astype("datetime64[ms]")
    scale = map_scale(mix)
    snapshots = pd.DataFrame({
        "symbol": symbol, "day": day, "snapshot_time": step_end[result.step],
        "side": np.where(result.side > 0, "long", "short"), "bin_id": result.bin_id,
        "price": grid.mid(result.bin_id), "notional_usd": result.notional_usd * scale})
    b = result.end_book
    book = book_frame(symbol, day, b)
    levs = np.asarray(flow.leverages)
    T, L = inputs.n_steps, levs.size
    steps = pd.DataFrame({
        "symbol": symbol, "day": day, "step_end": np.repeat(step_end, 2 * L),
        "side": np.tile(np.repeat(np.array(SIDES), L), T), "leverage": np.tile(levs, 2 * T),
        "consumed_usd": (result.consumed_per_weight * np.stack([mix.long, mix.short])[None]).ravel(),
        "consumed_per_weight_usd": result.consumed_per_weight.ravel()})
    steps = steps[steps["consumed_per_weight_usd"] > 0]

    open_share = result.long_share_open
    engine_rows = [
        ("long_share_of_opens", "both", float(np.mean(open_share)), "signals", "; ".join(result.flags) or "all signals"),
        ("book_long_share", "both", b.long_share(), "engine", "end of day, before the leveraged-share scale"),
        ("book_usd", "both", b.total_usd, "engine", f"{len(b)} cells"),
        ("opened_usd", "both", float(result.opened_usd.sum()), "engine", "gross opens of the day"),
        ("closed_usd", "both", float(result.closed_usd.sum()), "engine", "closed by the survival model"),
        ("consumed_usd", "long", float(result.consumed_usd[:, 0].sum()), "engine", "crossed by the mark"),
        ("consumed_usd", "short", float(result.consumed_usd[:, 1].sum()), "engine", "crossed by the mark"),
        ("expired_usd", "both", result.expired_usd, "engine", f"older than {flow.max_age_days} days"),
        ("funding_settled", "both", float(result.funding_settled.sum()), "public", "Σ rates settled in the day"),
        ("half_life_hours_used", "both", survival.half_life_hours, survival_source, "book turnover during the day"),
        ("age_hazard_hours_used", "both", survival.age_hazard_hours, survival_source, "h ∝ 1/(1 + age/τ) during the day"),
        ("leverage_hazard_exponent", "both", flow.leverage_hazard_exponent, "prior", "h ∝ (L/10)^γ"),
    ]
    for name, sig in result.signals.items():
        val = float(np.nanmean(sig)) if np.isfinite(sig).any() else None
        engine_rows.append((f"crowding_{name}", "both", val, "public" if val is not None else "missing",
                            "mean implied long share of the day"))
    return {"book": book, "snapshots": snapshots, "steps": steps, "engine_rows": engine_rows, "flags": flags,
            "mix_used": mix, "result": result, "candidates": candidates, "candidate_books": candidate_books,
            "survival_used": (survival.half_life_hours, survival.age_hazard_hours, survival_source)}


def _survival_name(kind: str, half_life_hours: float) -> str:
    return f"survival_{kind}_{half_life_hours:g}h"


def survival_rows(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, candidates: list[dict],
                  realized_hourly: np.ndarray, flow: FlowParams = FLOW) -> tuple[list[tuple], fl.SurvivalFit]:
    """The survival fit of D: today's sufficient statistics per warm candidate (ΣC·R, ΣC², ΣR² per side
    over D's hours) as rows, and the time scale fitted on those of the `calibration_days` ending on D
    (earlier days read back from model.flow_parameters). Public liquidations only (R)."""
    rows = []
    if all(c["warm"] for c in candidates):
        for c in candidates:
            st = fl.survival_stats(c["consumed_hourly"], realized_hourly)
            for k, kind in enumerate(("cr", "cc", "rr")):
                for j, side in enumerate(SIDES):
                    rows.append((_survival_name(kind, c["half_life_hours"]), side, float(st[k, j]), "engine",
                                 "survival fit: Σ over the day's hours of consumed (C) × published (R) liquidations"))
        rows.append(("survival_liquidation_hours", "both", float((realized_hourly.sum(axis=1) > 0).sum()), "public",
                     "hours of the day with public liquidations"))
    H = np.asarray(flow.survival_candidates, dtype=np.float64)
    stats, days, hours = np.zeros((H.size, 3, 2)), 0, 0
    names = {(_survival_name(kind, h), side): (i, k, j) for i, h in enumerate(H)
             for k, kind in enumerate(("cr", "cc", "rr")) for j, side in enumerate(SIDES)}
    past = []
    if table_exists(con, "model.flow_parameters"):
        first = day - dt.timedelta(days=flow.calibration_days - 1)
        past = con.execute("""SELECT day, parameter, side, value FROM model.flow_parameters
                              WHERE symbol = ? AND day >= ? AND day < ? AND parameter LIKE 'survival_%'
                              ORDER BY ALL""", [symbol, first, day]).fetchall()
    by_day: dict = {}
    for d, p, side, v in past:
        by_day.setdefault(d, []).append((p, side, v))
    by_day[day] = [(p, side, v) for p, side, v, *_ in rows]
    for got in by_day.values():
        cells = {(p, side): v for p, side, v in got}
        if not all(key in cells for key in names):
            continue
        days += 1
        hours += int(cells.get(("survival_liquidation_hours", "both"), 0))
        for key, (i, k, j) in names.items():
            stats[i, k, j] += cells[key]
    return rows, fl.fit_time_scale(H, stats, hours, days, flow)


def learn_parameters(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, engine_rows: list[tuple],
                     flow: FlowParams = FLOW, candidates: list[dict] | None = None) -> tuple[pd.DataFrame, str]:
    """D's leverage mix and leveraged share per side, fitted on the public liquidations of the
    `calibration_days` ending on D against the stored consumption (model.flow_steps, D included), the
    survival time scale (H, τ) fitted on the candidate books, plus the engine's figures of the day: the
    model.flow_parameters rows, and the realized source used."""
    data, source = calibration_data(con, symbol, day, flow)
    rows = list(engine_rows)
    if candidates is not None:
        realized = np.stack([data[side][1][-24:] for side in SIDES], axis=1)
        more, fit = survival_rows(con, symbol, day, candidates, realized, flow)
        rows += more
        rows.append(("half_life_hours", "both", fit.half_life_hours, fit.source, fit.detail))
        rows.append(("age_hazard_hours", "both", fit.age_hazard_hours, fit.source, f"τ = H · {flow.age_hazard_hours:g}/"
                     f"{flow.half_life_hours:g} (the prior's ratio)"))
    for side in SIDES:
        fit = fl.fit_side(*data[side], np.asarray(flow.prior_weights), flow.prior_leveraged_share, flow.ridge)
        for lev, w in zip(flow.leverages, fit.weights, strict=True):
            rows.append((f"weight_{lev:g}x", side, float(w), fit.source, fit.detail))
        rows.append(("leveraged_share", side, fit.leveraged_share, fit.source, fit.detail))
    parameters = pd.DataFrame(rows, columns=["parameter", "side", "value", "source", "detail"])
    parameters.insert(0, "day", day)
    parameters.insert(0, "symbol", symbol)
    return parameters.astype({"value": "float64"}), source


def _write(con, table: str, symbol: str, day: dt.date, frame: pd.DataFrame) -> int:
    with registered_frame(con, "_flow_frame", frame):
        return replace_partition(con, table, symbol, day, "SELECT * FROM _flow_frame")


def materialize_flow_day(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, params: ModelParams = MODEL,
                         flow: FlowParams = FLOW) -> dict:
    """compute_flow_day, store its frames, learn and store D's parameters. Returns the computed day."""
    out = compute_flow_day(con, symbol, day, params, flow)
    _write(con, "model.flow_book", symbol, day, out["book"])
    _write(con, "model.flow_snapshots", symbol, day, out["snapshots"])
    _write(con, "model.flow_steps", symbol, day, out["steps"])
    _write(con, "model.flow_candidate_books", symbol, day, out["candidate_books"])
    parameters, source = learn_parameters(con, symbol, day, out["engine_rows"], flow, out["candidates"])
    if source == "none":
        out["flags"].append("no public liquidations in the calibration window: prior leverage mix and share")
    h = parameters[parameters["parameter"] == "half_life_hours"].iloc[0]
    if h["source"] != "learned":
        out["flags"].append(f"survival time scale: prior H, τ ({h['detail']})")
    _write(con, "model.flow_parameters", symbol, day, parameters)
    out["parameters"], out["realized_source"] = parameters, source
    return out


# ---------------------------------------------------------------------------------------------- readers
def map_scale(mix: fl.SideMix) -> float:
    """The liquidation map's scale: the mean leveraged share of the two sides. One factor for both, so the
    side balance stays the crowding signals' (per-side shares fitted on a few liquidations a day swing
    from 0.2 to 2.5 and made the long-share error worse: 0.145 against 0.068 on the dev market)."""
    return 0.5 * (mix.leveraged_share_long + mix.leveraged_share_short)


def flow_levels(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, grid: PriceGrid) -> pd.DataFrame:
    """The end book of D as liquidation levels (side, bin_id, price, notional_usd, collateral_usd), scaled
    by the leveraged share in force during D (map_scale): the same cells as the last snapshot of D."""
    book = load_book(con, symbol, day)
    mix = load_mix(con, symbol, day - dt.timedelta(days=1))
    lp = book.liq_price()
    ok = np.isfinite(lp) & (lp > 0) & (book.notional_usd > 0)
    n = book.notional_usd[ok] * map_scale(mix)
    frame = pd.DataFrame({"side": np.where(book.side[ok] > 0, "long", "short"), "bin_id": grid.bin_id(lp[ok]),
                          "w": lp[ok] * n, "notional_usd": n,
                          "collateral_usd": n * np.maximum(1.0 / book.leverage[ok] - book.side[ok] * book.funding_paid[ok], 0.0)})
    g = frame.groupby(["side", "bin_id"], as_index=False)[["w", "notional_usd", "collateral_usd"]].sum()
    g["price"] = g["w"] / g["notional_usd"]
    return g.drop(columns="w")


def flow_distribution(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, grid: PriceGrid,
                      oi_usd: float | None) -> pd.DataFrame:
    """The end book of D per entry bin (bin_id, price_mid, long_usd, short_usd), scaled so Σ(long + short) =
    OI (left at the book's scale when OI is unknown)."""
    book = load_book(con, symbol, day)
    mix = load_mix(con, symbol, day - dt.timedelta(days=1))
    n = book.notional_usd * map_scale(mix)
    frame = pd.DataFrame({"bin_id": grid.bin_id(book.entry_price), "long_usd": np.where(book.side > 0, n, 0.0),
                          "short_usd": np.where(book.side < 0, n, 0.0)})
    g = frame.groupby("bin_id", as_index=False)[["long_usd", "short_usd"]].sum()
    total = float(g["long_usd"].sum() + g["short_usd"].sum())
    if oi_usd is not None and total > 0:
        g[["long_usd", "short_usd"]] *= oi_usd / total
    g["price_mid"] = grid.mid(g["bin_id"].to_numpy())
    return g


# ---------------------------------------------------------------------------------------------- asset
@dg.asset(partitions_def=partitions.symbol_day, group_name=GROUP, pool="duckdb", kinds={"duckdb"},
          backfill_policy=dg.BackfillPolicy.single_run(),
          deps=[*(dg.AssetKey(k) for k in ("agg_trades", "klines", "mark_price_klines", "open_interest",
                                           "funding_rates", "premium_index_klines")),
                dg.AssetDep("flow_book", partition_mapping=partitions.previous_day)])  # evolves D−1's book
def flow_book(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """The `flow` variant's book of position cohorts (model/flow.py), evolved through the day from D−1's
    book: gross opens at traded prices split by public crowding signals, closes by a survival model with
    leverage- and age-dependent hazard, consumption at each cell's own liquidation price, funding paid
    out of isolated margin. Learns D's leverage mix and leveraged share per side from the public
    liquidations of the trailing window (model.flow_parameters); days of a run are processed in order."""
    summary, learned, flags = [], [], {}
    for symbol, day in partitions.symbol_days(context):
        with duckdb.get_connection() as con:
            out = materialize_flow_day(con, symbol, day)
        res, p = out["result"], out["parameters"]
        summary.append({"symbol": symbol, "day": str(day), "mix_used": out["mix_used"].source,
                        "book_usd": round(res.end_book.total_usd), "opened_usd": round(float(res.opened_usd.sum())),
                        "closed_usd": round(float(res.closed_usd.sum())),
                        "consumed_usd": round(float(res.consumed_usd.sum())),
                        "book_long_share": round(res.end_book.long_share(), 4),
                        "half_life_h_used": round(out["survival_used"][0], 1),
                        "half_life_h_learned": round(float(p.loc[p["parameter"] == "half_life_hours", "value"].iloc[0]), 1),
                        "half_life_source": p.loc[p["parameter"] == "half_life_hours", "source"].iloc[0],
                        "realized_source": out["realized_source"]})
        w = p[p["parameter"].str.startswith("weight_") | (p["parameter"] == "leveraged_share")]
        learned.append(f"**{symbol} {day}** ({w['source'].iloc[0]}): " + "; ".join(
            f"{side}: " + ", ".join(f"{r.parameter.removeprefix('weight_')} {r.value:.3f}"
                                    for r in w[w["side"] == side].itertuples()) for side in SIDES))
        flags[f"{symbol} {day}"] = out["flags"]
    cols = list(summary[0]) if summary else []
    table = "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                       + ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in summary])
    return dg.MaterializeResult(metadata={
        "summary": dg.MetadataValue.md(table),
        "learned": dg.MetadataValue.md("\n\n".join(learned)),
        "flags": dg.MetadataValue.json(flags),
        "priors": dg.MetadataValue.json({k: v for k, v in FLOW.__dict__.items()}),
    })
