"""One symbol-day of the book engine, computed without Dagster: read D−1's book and learned parameters and
D's inputs once (warehouse/readers/flow.py), run the day (model/flow.py) with the survival fit's candidate
books beside it, learn D's leverage mix (model/leverage_prior.py) and survival time scale (model/survival.py) from public
liquidations, and store the frames. Also the readers of the end book as levels and distribution."""

import datetime as dt
from concurrent.futures import Future

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.config import FLOW, MODEL, FlowParams, ModelParams
from liq_pipeline.model import flow as fl
from liq_pipeline.model import leverage_prior, survival, variants
from liq_pipeline.model.grid import PriceGrid, grid_for
from liq_pipeline.model.margin import table_for
from liq_pipeline.pipeline import workers
from liq_pipeline.warehouse import book_cache
from liq_pipeline.warehouse.io import write_frame
from liq_pipeline.warehouse.readers.flow import (
    SIDES,
    calibration_data,
    load_book,
    load_candidate_book,
    load_flow_inputs,
    load_mix,
    load_survival,
    past_survival_rows,
)


def book_frame(symbol: str, day: dt.date, b: fl.Book) -> pd.DataFrame:
    return pd.DataFrame({"symbol": symbol, "day": day, "open_time": b.open_ms.astype("datetime64[ms]"),
                         "side": np.where(b.side > 0, "long", "short"),
                         **{k: v for k, v in b.columns().items() if k not in ("open_ms", "side")}})


# ---------------------------------------------------------------------------------------------- compute
def _frames(symbol: str, day: dt.date, variant: str, result: fl.FlowDay, inputs: fl.FlowInputs, grid: PriceGrid,
            mix: fl.SideMix, leverages: tuple[float, ...]) -> dict[str, pd.DataFrame]:
    """The rows one variant's day adds to model.flow_book, model.flow_snapshots and model.flow_steps."""
    step_end = (inputs.step_start_ms + inputs.step_ms).astype("datetime64[ms]")
    snapshots = pd.DataFrame({
        "symbol": symbol, "day": day, "variant": variant, "snapshot_time": step_end[result.step],
        "side": np.where(result.side > 0, "long", "short"), "bin_id": result.bin_id,
        "price": grid.mid(result.bin_id), "notional_usd": result.notional_usd * map_scale(mix)})
    levs = np.asarray(leverages)
    T, L = inputs.n_steps, levs.size
    steps = pd.DataFrame({
        "symbol": symbol, "day": day, "variant": variant, "step_end": np.repeat(step_end, 2 * L),
        "side": np.tile(np.repeat(np.array(SIDES), L), T), "leverage": np.tile(levs, 2 * T),
        "consumed_usd": (result.consumed_per_weight * np.stack([mix.long, mix.short])[None]).ravel(),
        "consumed_per_weight_usd": result.consumed_per_weight.ravel()})
    return {"book": book_frame(symbol, day, result.end_book).assign(variant=variant), "snapshots": snapshots,
            "steps": steps[steps["consumed_per_weight_usd"] > 0]}


def compute_flow_day(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, params: ModelParams = MODEL,
                     flow: FlowParams = FLOW) -> dict:
    """Run the book engine for one symbol-day, once per variant (model/variants.py), each from its own D−1
    book; the learned variant also runs the survival fit's candidate books and uses the parameters learned
    at the end of D−1. The day's inputs are read once.

    Returns the frames to store (book, snapshots, steps of every variant; the learned variant's candidate
    books and engine figures) and each variant's FlowDay for the metadata.
    """
    grid = grid_for(symbol, params)
    inputs, flags = load_flow_inputs(con, symbol, day, grid, params, flow)
    prev = day - dt.timedelta(days=1)
    choice = table_for(symbol, day)
    if choice.note:
        flags.append(choice.note)
    out: dict = {"flags": flags, "books": {}, "candidates": [], "candidate_books": pd.DataFrame(), "engine_rows": []}
    frames: dict[str, list[pd.DataFrame]] = {"book": [], "snapshots": [], "steps": []}
    # Every book's day is handed to pipeline/workers.py first (read here, run there when worker processes are
    # open), then collected in the variants' order: the same run_day on the same arrays, the same results.
    runs, pending_candidates = {}, None
    for name in variants.NAMES:
        variant = variants.get(name)
        start = load_book(con, symbol, prev, name)
        if variant.learned:
            mix = load_mix(con, symbol, prev, flow)
            run_params, survival_source = load_survival(con, symbol, prev, flow)
            leverages = flow.leverages
            pending_candidates = _submit_candidate_books(con, symbol, day, inputs, grid, choice.table, mix, flow)
        else:
            run_params = fl.params_for(variant, flow, params)
            mix, survival_source, leverages = fl.SideMix.prior(run_params), "rule", run_params.leverages
        runs[name] = (variant, len(start) == 0, mix, run_params, survival_source, leverages,
                      workers.submit(fl.run_day, start, inputs, grid, choice.table, mix, run_params, variant=variant))
    for name, (variant, cold, mix, run_params, survival_source, leverages, pending) in runs.items():
        if cold:
            flags.append(f"{name}: cold start, no book for the previous day")
        result = pending.result()
        flags += [f"{name}: {f}" for f in result.flags] if not variant.learned else result.flags
        out["books"][name] = result
        for key, frame in _frames(symbol, day, name, result, inputs, grid, mix, leverages).items():
            frames[key].append(frame)
        if variant.learned:
            out["candidates"], out["candidate_books"] = _collect_candidate_books(symbol, day, inputs, pending_candidates)
            out["engine_rows"] = _engine_rows(result, run_params, survival_source, flow)
            out.update(mix_used=mix, result=result, survival_used=(run_params.half_life_hours,
                                                                   run_params.age_hazard_hours, survival_source))
    out.update({key: pd.concat(parts, ignore_index=True) for key, parts in frames.items()})
    oi = np.concatenate([inputs.oi_start_usd, inputs.oi_end_usd])
    out["half_life_floor_hours"] = survival.half_life_floor_hours(
        float(inputs.traded_usd.sum()), float(np.nanmean(oi)) if np.isfinite(oi).any() else float("nan"),
        inputs.n_steps * inputs.step_ms / fl.MS_PER_HOUR)
    return out


def _submit_candidate_books(con, symbol: str, day: dt.date, inputs: fl.FlowInputs, grid: PriceGrid, table,
                            mix: fl.SideMix, flow: FlowParams) -> list[tuple[float, bool, Future]]:
    """The survival fit's candidate books, each with its own time scale (no snapshots: consumption only),
    read and handed to pipeline/workers.py: (half-life, warm, pending day) per candidate."""
    prev = day - dt.timedelta(days=1)
    pending, day_start_ms = [], int(inputs.step_start_ms[0])
    for h in flow.survival_candidates:
        cbook = load_candidate_book(con, symbol, prev, h)
        warm = len(cbook) > 0 and day_start_ms - int(cbook.open_ms.min()) >= flow.survival_warm_days * 24 * fl.MS_PER_HOUR
        pending.append((h, warm, workers.submit(fl.run_day, cbook, inputs, grid, table, mix, fl.with_time_scale(flow, h),
                                                snapshots=False)))
    return pending


def _collect_candidate_books(symbol: str, day: dt.date, inputs: fl.FlowInputs,
                             pending: list[tuple[float, bool, Future]]) -> tuple[list[dict], pd.DataFrame]:
    """The candidates' end books and hourly consumption, in the order of `flow.survival_candidates`."""
    candidates = []
    for h, warm, run in pending:
        r = run.result()
        candidates.append({"half_life_hours": h, "warm": warm, "end_book": r.end_book,
                           "consumed_hourly": fl.hourly(r.consumed_usd, inputs.step_start_ms)})
    books = pd.concat([book_frame(symbol, day, c["end_book"]).assign(half_life_hours=c["half_life_hours"])
                       for c in candidates], ignore_index=True)
    return candidates, books


def _engine_rows(result: fl.FlowDay, survival: FlowParams, survival_source: str, flow: FlowParams) -> list[tuple]:
    """The learned variant's figures of the day, as model.flow_parameters rows."""
    b = result.end_book
    engine_rows = [
        ("long_share_of_opens", "both", float(np.mean(result.long_share_open)), "signals",
         "; ".join(result.flags) or "all signals"),
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
    return engine_rows


def _survival_name(kind: str, half_life_hours: float) -> str:
    return f"survival_{kind}_{half_life_hours:g}h"


def survival_rows(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, candidates: list[dict],
                  realized_hourly: np.ndarray, flow: FlowParams = FLOW, floor_hours: float = float("nan")
                  ) -> tuple[list[tuple], survival.SurvivalPosterior]:
    """The survival fit of D: today's sufficient statistics per warm candidate (survival.STAT_KINDS per side
    over D's hours) and D's volume floor as rows, and the posterior of H from those of the
    `calibration_days` ending on D (earlier days read back from model.flow_parameters), floored by the
    window's volume. Public data only."""
    rows = []
    if np.isfinite(floor_hours):
        rows.append(("survival_floor_hours", "both", float(floor_hours), "public",
                     "H ≥ 24 h · ln2 · OI / volume of the day (closing a contract takes a trade)"))
    if all(c["warm"] for c in candidates):
        for c in candidates:
            st = survival.survival_stats(c["consumed_hourly"], realized_hourly)
            for k, kind in enumerate(survival.STAT_KINDS):
                for j, side in enumerate(SIDES):
                    rows.append((_survival_name(kind, c["half_life_hours"]), side, float(st[k, j]), "engine",
                                 "survival fit: Σ over the day's hours of consumed (C) × published (R) liquidations"))
        rows.append(("survival_liquidation_hours", "both", float((realized_hourly.sum(axis=1) > 0).sum()), "public",
                     "hours of the day with public liquidations"))
    H = np.asarray(flow.survival_candidates, dtype=np.float64)
    stats, days, hours = np.zeros((H.size, len(survival.STAT_KINDS), 2)), 0, 0
    names = {(_survival_name(kind, h), side): (i, k, j) for i, h in enumerate(H)
             for k, kind in enumerate(survival.STAT_KINDS) for j, side in enumerate(SIDES)}
    past = past_survival_rows(con, symbol, day, flow)
    by_day: dict = {}
    for d, p, side, v in past:
        by_day.setdefault(d, []).append((p, side, v))
    by_day[day] = [(p, side, v) for p, side, v, *_ in rows]
    floors = []
    for got in by_day.values():
        cells = {(p, side): v for p, side, v in got}
        floors.append(cells.get(("survival_floor_hours", "both"), float("nan")))
        if not all(key in cells for key in names):
            continue
        days += 1
        hours += int(cells.get(("survival_liquidation_hours", "both"), 0))
        for key, (i, k, j) in names.items():
            stats[i, k, j] += cells[key]
    return rows, survival.fit_half_life(H, stats, hours, days, survival.pooled_floor_hours(floors), flow)


def learn_parameters(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, engine_rows: list[tuple],
                     flow: FlowParams = FLOW, candidates: list[dict] | None = None,
                     floor_hours: float = float("nan")) -> tuple[pd.DataFrame, str]:
    """D's leverage mix and near-liquidation share per side, fitted on the public liquidations of the
    `calibration_days` ending on D against the stored consumption (model.flow_steps, D included), the
    survival time scale (H, τ) with its interval from the candidate books, plus the engine's figures of the
    day: the model.flow_parameters rows, and the realized source used."""
    data, source = calibration_data(con, symbol, day, flow)
    rows = list(engine_rows)
    if candidates is not None:
        realized = np.stack([data[side][1][-24:] for side in SIDES], axis=1)
        more, fit = survival_rows(con, symbol, day, candidates, realized, flow, floor_hours)
        rows += more
        rows += [("half_life_hours", "both", fit.half_life_hours, fit.source, fit.detail),
                 ("half_life_hours_p05", "both", fit.p05_hours, fit.source, "5 % quantile of the posterior"),
                 ("half_life_hours_p95", "both", fit.p95_hours, fit.source, "95 % quantile of the posterior"),
                 ("half_life_information", "both", fit.information, fit.source,
                  "share of the prior's variance of log H removed by the public liquidations"),
                 ("half_life_floor_hours", "both", fit.floor_hours, "public",
                  "H ≥ 24 h · ln2 · OI / volume, harmonic mean over the window's days"),
                 ("age_hazard_hours", "both", fit.age_hazard_hours, fit.source, f"τ = H · {flow.age_hazard_hours:g}/"
                  f"{flow.half_life_hours:g} (the prior's ratio)")]
    low = flow.low_leverage_buckets
    fits = leverage_prior.pool_near_share(
        {side: leverage_prior.fit_with_low_end(*data[side], np.asarray(flow.prior_weights), low, flow.ridge)
         for side in SIDES}, low)
    for side in SIDES:
        fit = fits[side]
        for i, (lev, w) in enumerate(zip(flow.leverages, fit.weights, strict=True)):
            rows.append((f"weight_{lev:g}x", side, float(w), fit.source if i >= low else "prior",
                         fit.detail if i >= low else "not identified (no public liquidation reaches it): "
                         "1 − near-liquidation share, split as the prior"))
        rows.append(("near_liquidation_share", side, fit.near_share, fit.source, fit.detail))
        rows.append(("leveraged_share", side, fit.leveraged_share, "engine",
                     "the whole book is drawn: its low buckets hold the open interest far from liquidation"))
    parameters = pd.DataFrame(rows, columns=["parameter", "side", "value", "source", "detail"])
    parameters.insert(0, "day", day)
    parameters.insert(0, "symbol", symbol)
    return parameters.astype({"value": "float64"}), source


def materialize_flow_day(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, params: ModelParams = MODEL,
                         flow: FlowParams = FLOW) -> dict:
    """compute_flow_day, store its frames, learn and store D's parameters. Returns the computed day."""
    out = compute_flow_day(con, symbol, day, params, flow)
    write_frame(con, "model.flow_book", symbol, day, out["book"], arrow=True)
    write_frame(con, "model.flow_snapshots", symbol, day, out["snapshots"], arrow=True)
    write_frame(con, "model.flow_steps", symbol, day, out["steps"], arrow=True)
    write_frame(con, "model.flow_candidate_books", symbol, day, out["candidate_books"], arrow=True)
    for name, result in out["books"].items():  # D+1 starts from these (warehouse/book_cache.py, make demo)
        book_cache.keep("model.flow_book", symbol, day, name, result.end_book)
    for c in out["candidates"]:
        book_cache.keep("model.flow_candidate_books", symbol, day, float(c["half_life_hours"]), c["end_book"])
    parameters, source = learn_parameters(con, symbol, day, out["engine_rows"], flow, out["candidates"],
                                          out["half_life_floor_hours"])
    if source == "none":
        out["flags"].append("no public liquidations in the calibration window: prior leverage mix and share")
    h = parameters[parameters["parameter"] == "half_life_hours"].iloc[0]
    if h["source"] != "learned":
        out["flags"].append(f"survival time scale: prior H, τ ({h['detail']})")
    write_frame(con, "model.flow_parameters", symbol, day, parameters)
    out["parameters"], out["realized_source"] = parameters, source
    return out


# ---------------------------------------------------------------------------------------------- readers
def map_scale(mix: fl.SideMix) -> float:
    """The liquidation map's scale: the mean leveraged share of the two sides. One factor for both, so the
    side balance stays the crowding signals' (per-side shares fitted on a few liquidations a day swing
    from 0.2 to 2.5 and made the long-share error worse: 0.145 against 0.068 on the dev market)."""
    return 0.5 * (mix.leveraged_share_long + mix.leveraged_share_short)


def map_mix(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, variant: str, flow: FlowParams = FLOW
            ) -> fl.SideMix:
    """The mix a variant's book ran with during `day`: learned at the end of D−1, or its rule's prior."""
    v = variants.get(variant)
    if v.learned:
        return load_mix(con, symbol, day - dt.timedelta(days=1), flow)
    return fl.SideMix.prior(fl.params_for(v, flow))


def flow_levels(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, grid: PriceGrid,
                variant: str = variants.DEFAULT) -> pd.DataFrame:
    """A variant's end book of D as liquidation levels (side, bin_id, price, notional_usd, collateral_usd),
    scaled by the leveraged share in force during D (map_scale): the same cells as its last snapshot of D."""
    book = load_book(con, symbol, day, variant)
    mix = map_mix(con, symbol, day, variant)
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
                      oi_usd: float | None, variant: str = variants.DEFAULT) -> pd.DataFrame:
    """A variant's end book of D per entry bin (bin_id, price_mid, long_usd, short_usd), scaled so
    Σ(long + short) = OI (left at the book's scale when OI is unknown)."""
    book = load_book(con, symbol, day, variant)
    mix = map_mix(con, symbol, day, variant)
    n = book.notional_usd * map_scale(mix)
    frame = pd.DataFrame({"bin_id": grid.bin_id(book.entry_price), "long_usd": np.where(book.side > 0, n, 0.0),
                          "short_usd": np.where(book.side < 0, n, 0.0)})
    g = frame.groupby("bin_id", as_index=False)[["long_usd", "short_usd"]].sum()
    total = float(g["long_usd"].sum() + g["short_usd"].sum())
    if oi_usd is not None and total > 0:
        g[["long_usd", "short_usd"]] *= oi_usd / total
    g["price_mid"] = grid.mid(g["bin_id"].to_numpy())
    return g
