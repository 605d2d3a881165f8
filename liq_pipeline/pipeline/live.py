"""The live layer: REST gap fill for days the archive has not published, the "now" heatmap, and the
signed bracket refresh.

Plain functions over a DuckDB connection and a `FapiClient`; the Dagster assets (assets/live.py) and the
CLI (live_cli.py) are thin wrappers around them.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline import config
from liq_pipeline.market.parsers import STALE_OI_RUN_ROWS
from liq_pipeline.market.rest import FapiClient, FapiError, to_ms
from liq_pipeline.model import variants
from liq_pipeline.model.grid import grid_for
from liq_pipeline.model.margin import BracketTable, load_bracket_tables, table_for
from liq_pipeline.pipeline.flow_day import map_mix, map_scale
from liq_pipeline.warehouse.io import replace_ingest_log, replace_partition
from liq_pipeline.warehouse.readers.flow import load_latest_book
from liq_pipeline.warehouse.readers.live import BaselineSignals, latest_signals, partitions_with_status
from liq_pipeline.warehouse.readers.marks import mark_candles_after

#: Value of the `source` column (klines, OI, funding) and of ingest_log.status for REST-filled partitions.
REST_SOURCE = "rest"


# ============================================================================================ gap fill
@dataclass(frozen=True)
class GapFillResult:
    symbol: str
    day: dt.date
    rows: dict[str, int]  # table -> rows stored for the partition
    skipped: dict[str, str]  # table -> why it was not filled


def _log_rest(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date, table: str, endpoint: str, rows: int) -> None:
    """Record in raw.ingest_log that REST (not the archive) fed the partition: status 'rest'. The archive
    sensor looks for these rows; the archive ingest overwrites them when it re-materializes the day."""
    replace_ingest_log(con, symbol, day, table, endpoint, None, REST_SOURCE, rows)


def _write_frame(con: duckdb.DuckDBPyConnection, table: str, symbol: str, day: dt.date, frame: pd.DataFrame,
                 select: str) -> int:
    """replace_partition from a registered DataFrame `_rest` (select may use ? for symbol and day)."""
    _settle(con)
    con.register("_rest", frame)
    try:
        return replace_partition(con, table, symbol, day, select, [symbol, day])
    finally:
        _settle(con)
        con.unregister("_rest")


def _settle(con: duckdb.DuckDBPyConnection) -> None:
    """Finish any half-read result: DuckDB 2 refuses register/unregister while one is pending (a caller's
    or replace_partition's own `fetchone`)."""
    con.execute("SELECT 1").fetchall()


def funding_interval_hours(funding_ms: np.ndarray) -> np.ndarray:
    """Funding interval (h) of each settlement from the spacing of settlement times (binance-data.md §6:
    never assume 8h). Each row takes the gap to its predecessor (the first row its successor's), rounded
    to whole hours so the archive's +1 ms jitter disappears; a lone settlement is assumed 8h."""
    t = np.asarray(funding_ms, dtype=np.float64)
    if t.size < 2:
        return np.full(t.size, 8, dtype=np.int64)
    gaps = np.round(np.diff(t) / 3_600_000).astype(np.int64)
    return np.concatenate([gaps[:1], gaps])


def fill_day_from_rest(
    con: duckdb.DuckDBPyConnection, client: FapiClient, symbol: str, day: dt.date, kline_interval: str = "1m",
    mark_kline_interval: str | None = None,
) -> GapFillResult:
    """Fill the raw partitions of (symbol, day) from fapi REST, for days the archive has not published.

    Writes raw.klines and raw.mark_price_klines (closed candles), raw.agg_trades (paged within the
    aggTrades limits), raw.open_interest (openInterestHist 5m, only inside its 30-day window) and
    raw.funding_rates (settlements of the day), each with `replace_partition`. Klines, OI and funding rows
    carry source='rest'; every table gets an ingest_log row with status 'rest'. A table REST cannot serve
    (OI older than 30 days) is reported in `skipped`, not faked.

    Cost: aggTrades weighs 20 per 1,000 trades, so a busy BTCUSDT day (1-2 M aggregate trades) needs
    20-40k weight, i.e. 10-20 minutes at the default budget of 80 % of 2,400 per minute; klines cost 10.
    """
    start_ms = to_ms(day)
    end_ms = start_ms + 86_400_000 - 1
    now_ms = int(client.clock() * 1000)
    if start_ms > now_ms:
        raise ValueError(f"{symbol} {day}: the day has not started yet (now {dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC):%Y-%m-%d %H:%M} UTC)")
    rows: dict[str, int] = {}
    skipped: dict[str, str] = {}

    kline_select = """SELECT ?::VARCHAR AS symbol, ?::DATE AS day, '{interval}' AS interval,
        open_time::TIMESTAMP AS open_time, open, high, low, close, volume, close_time::TIMESTAMP AS close_time,
        quote_volume, count AS trade_count, taker_buy_volume, taker_buy_quote_volume, '{source}' AS source
        FROM _rest ORDER BY open_time"""
    for table, mark, interval in (("raw.klines", False, kline_interval),
                                  ("raw.mark_price_klines", True, mark_kline_interval or kline_interval)):
        frame = client.klines(symbol, interval, start_ms, end_ms, mark=mark)
        rows[table] = _write_frame(con, table, symbol, day, frame,
                                   kline_select.format(interval=interval, source=REST_SOURCE))
        _log_rest(con, symbol, day, table, "/fapi/v1/markPriceKlines" if mark else "/fapi/v1/klines", rows[table])

    trades = client.agg_trades(symbol, start_ms, end_ms)
    rows["raw.agg_trades"] = _write_frame(con, "raw.agg_trades", symbol, day, trades, """
        SELECT ?::VARCHAR AS symbol, ?::DATE AS day, agg_trade_id, price, quantity, first_trade_id, last_trade_id,
               transact_time::TIMESTAMP AS transact_time, is_buyer_maker FROM _rest ORDER BY agg_trade_id""")
    _log_rest(con, symbol, day, "raw.agg_trades", "/fapi/v1/aggTrades", rows["raw.agg_trades"])

    try:
        oi = client.open_interest_hist(symbol, start_ms, end_ms, period="5m")
    except ValueError as e:
        skipped["raw.open_interest"] = str(e)
    else:
        # Same stale-run rule as the metrics parser: a run of identical OI values longer than an hour is
        # forward-filled upstream, i.e. missing data.
        rows["raw.open_interest"] = _write_frame(con, "raw.open_interest", symbol, day, oi, f"""
            SELECT ?::VARCHAR AS symbol, ?::DATE AS day, create_time::TIMESTAMP AS create_time, sum_open_interest,
                   sum_open_interest_value, NULL AS count_toptrader_long_short_ratio,
                   NULL AS sum_toptrader_long_short_ratio, NULL AS count_long_short_ratio,
                   NULL AS sum_taker_long_short_vol_ratio,
                   count(*) OVER (PARTITION BY run_id) > {STALE_OI_RUN_ROWS} AS is_stale, '{REST_SOURCE}' AS source
            FROM (SELECT *, sum(CASE WHEN sum_open_interest IS DISTINCT FROM prev THEN 1 ELSE 0 END)
                              OVER (ORDER BY create_time) AS run_id
                  FROM (SELECT *, lag(sum_open_interest) OVER (ORDER BY create_time) AS prev FROM _rest))
            ORDER BY create_time""")
        _log_rest(con, symbol, day, "raw.open_interest", "/futures/data/openInterestHist", rows["raw.open_interest"])

    # One day of look-back so the first settlement of the day has a predecessor to measure its interval.
    funding = client.funding_rates(symbol, start_ms - 86_400_000, end_ms)
    funding["funding_interval_hours"] = funding_interval_hours(funding["ts_ms"].to_numpy())
    funding = funding[funding["ts_ms"] >= start_ms]
    rows["raw.funding_rates"] = _write_frame(con, "raw.funding_rates", symbol, day, funding, f"""
        SELECT ?::VARCHAR AS symbol, ?::DATE AS day, funding_time::TIMESTAMP AS calc_time,
               funding_time::TIMESTAMP AS funding_time, funding_interval_hours::INTEGER AS funding_interval_hours,
               funding_rate AS last_funding_rate, funding_rate * 8.0 / funding_interval_hours AS funding_rate_8h,
               '{REST_SOURCE}' AS source
        FROM _rest ORDER BY funding_time""")
    _log_rest(con, symbol, day, "raw.funding_rates", "/fapi/v1/fundingRate", rows["raw.funding_rates"])
    return GapFillResult(symbol, day, rows, skipped)


def rest_filled_partitions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """(symbol, day, table_name) whose stored rows came from REST (ingest_log status 'rest')."""
    return partitions_with_status(con, REST_SOURCE)


# ============================================================================================ now heatmap
@dataclass(frozen=True)
class LiveSignals:
    """The live inputs of `liq now`, with what failed (flags) and how long each call took."""

    as_of: dt.datetime
    mark_price: float | None
    oi_usd: float | None
    oi_24h_ago_usd: float | None
    funding_rate_8h: float | None
    flags: tuple[str, ...]
    latency_ms: dict[str, float]


def _fetch_mark(client: FapiClient, symbol: str) -> float:
    return client.premium_index(symbol).mark_price


def _fetch_oi_base(client: FapiClient, symbol: str) -> float:
    return client.open_interest(symbol).open_interest


def _fetch_oi_24h_usd(client: FapiClient, symbol: str) -> float:
    """USDT OI of the first 5m openInterestHist sample at or after now − 24 h."""
    start = int(client.clock() * 1000) - 86_400_000
    hist = client.open_interest_hist(symbol, start, start + 900_000, period="5m")
    if hist.empty:
        raise FapiError(f"/futures/data/openInterestHist: no {symbol} sample within 15 min after now − 24 h")
    return float(hist["sum_open_interest_value"].iloc[0])


def _fetch_funding_8h(client: FapiClient, symbol: str) -> float:
    """Last settled funding rate as an 8h-equivalent (rate × 8 / interval hours, liquidation-math.md §8.2)."""
    funding = client.last_funding(symbol)
    if funding.empty:
        raise FapiError(f"/fapi/v1/fundingRate: no {symbol} settlement in the last 3 days")
    hours = funding_interval_hours(funding["ts_ms"].to_numpy())
    return float(funding["funding_rate"].iloc[-1] * 8.0 / hours[-1])


SIGNAL_FETCHERS: dict[str, Callable[[FapiClient, str], float]] = {
    "mark_price": _fetch_mark,
    "oi_base": _fetch_oi_base,
    "oi_24h_ago_usd": _fetch_oi_24h_usd,
    "funding_rate_8h": _fetch_funding_8h,
}


#: Flags of live signals that fell back to the warehouse: an answer carrying one is not live.
STALE_FLAGS = ("mark_price_fallback_baseline", "mark_price_missing", "oi_usd_fallback_baseline", "oi_usd_missing")


def short_flag(flag: str, limit: int = 160) -> str:
    """A flag in one readable line: an exception's repr cut to `limit` characters."""
    line = " ".join(flag.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def fetch_live_signals(client: FapiClient, symbol: str, baseline: BaselineSignals, budget_s: float = 1.0) -> LiveSignals:
    """Fetch the four live signals in parallel within `budget_s` seconds.

    A signal that fails or does not answer in time falls back to the baseline value and adds a flag
    `<signal>_fallback:<reason>` (or `<signal>_missing` when the warehouse has no baseline either).
    OI in USD = openInterest (base) × mark price. Latency is wall-clock per call (ms); calls cut by the
    budget report the budget.
    """
    t0 = time.perf_counter()
    pool = cf.ThreadPoolExecutor(max_workers=len(SIGNAL_FETCHERS), thread_name_prefix="live-signal")
    started: dict[str, float] = {}
    finished: dict[str, float] = {}

    def timed(name: str, fn: Callable[[FapiClient, str], float]) -> float:
        started[name] = time.perf_counter()
        try:
            return fn(client, symbol)
        finally:
            finished[name] = time.perf_counter()

    futures = {pool.submit(timed, name, fn): name for name, fn in SIGNAL_FETCHERS.items()}
    done, _ = cf.wait(futures, timeout=budget_s)
    # Late calls keep running in their threads but nobody waits for them (the budget is the contract).
    pool.shutdown(wait=False, cancel_futures=True)
    values: dict[str, float | None] = {}
    flags: list[str] = []
    latency: dict[str, float] = {}
    for fut, name in futures.items():
        if fut in done and fut.exception() is None:
            values[name] = float(fut.result())
            latency[name] = (finished[name] - started[name]) * 1000
            continue
        values[name] = None
        if fut in done:
            err = fut.exception()
            reason = f"{type(err).__name__}: {err}"
            latency[name] = (finished[name] - started[name]) * 1000
        else:
            reason = f"no answer within {budget_s:.2f} s"
            latency[name] = budget_s * 1000
        flags.append(f"{name}_failed:{reason}")
    latency["signals_total"] = (time.perf_counter() - t0) * 1000

    def pick(name: str, live: float | None, fallback: float | None) -> float | None:
        if live is not None:
            return live
        flags.append(f"{name}_fallback_baseline" if fallback is not None else f"{name}_missing")
        return fallback

    mark = pick("mark_price", values["mark_price"], baseline.mark_price)
    if values["oi_base"] is not None and mark is not None:
        oi_usd = values["oi_base"] * mark
    else:
        oi_usd = pick("oi_usd", None, baseline.oi_usd)
    oi_24h = pick("oi_24h_ago_usd", values["oi_24h_ago_usd"], baseline.oi_24h_ago_usd)
    funding = pick("funding_rate_8h", values["funding_rate_8h"], baseline.funding_rate_8h)
    as_of = dt.datetime.fromtimestamp(client.clock(), dt.UTC).replace(tzinfo=None)
    return LiveSignals(as_of, mark, oi_usd, oi_24h, funding, tuple(flags), latency)


@dataclass(frozen=True)
class NowResult:
    """The "now" heatmap: liquidation notional per side and grid bin, as of `signals.as_of`."""

    symbol: str
    baseline_day: dt.date
    signals: LiveSignals
    #: side ('long'/'short'), bin_id, price_low, price_high, price (notional-weighted liquidation price),
    #: notional_usd, collateral_usd
    levels: pd.DataFrame
    bracket_table: str
    sizes_from: str
    #: Notional whose liquidation price mark has crossed since the bin last traded (dropped from `levels`).
    crossed_usd: float
    #: Notional without a liquidation price (a long whose funding-moved LP fell to 0 or below).
    unpriced_usd: float
    latency_ms: dict[str, float] = field(default_factory=dict)
    #: The variant whose book is shown (model/variants.py).
    variant: str = variants.DEFAULT
    #: The book's notional scaled to now, before the crossed cells are dropped: levels + crossed + unpriced.
    book_usd: float = 0.0

    @property
    def flags(self) -> tuple[str, ...]:
        return self.signals.flags

    def to_json(self) -> dict:
        return {
            "symbol": self.symbol, "variant": self.variant, "as_of": self.signals.as_of.isoformat(),
            "baseline_day": self.baseline_day.isoformat(),
            "mark_price": self.signals.mark_price, "oi_usd": self.signals.oi_usd,
            "oi_24h_ago_usd": self.signals.oi_24h_ago_usd, "funding_rate_8h": self.signals.funding_rate_8h,
            "flags": list(self.flags), "latency_ms": {k: round(v, 1) for k, v in self.latency_ms.items()},
            "bracket_table": self.bracket_table, "sizes_from": self.sizes_from, "crossed_usd": self.crossed_usd, "unpriced_usd": self.unpriced_usd,
            "levels": [{"side": r.side, "bin_id": int(r.bin_id), "price": float(r.price),
                        "notional_usd": float(r.notional_usd)} for r in self.levels.itertuples()],
        }


def heatmap_now(
    con: duckdb.DuckDBPyConnection,
    client: FapiClient,
    symbol: str,
    budget_s: float = 1.0,
    params: config.ModelParams = config.MODEL,
    bracket_tables: list[BracketTable] | None = None,
    variant: str = variants.DEFAULT,
) -> NowResult:
    """Liquidation levels of `symbol` now, read off the latest stored book of `variant` (the default: the one
    book engine, model/flow.py, as flow_book left it at the end of its last day).

    The book's cells are scaled as its map (the leveraged share in force) and by live OI / the OI at the
    book's end (model.position_signals of that day; unscaled and flagged when either is missing). Signals
    come from REST in parallel within `budget_s` (fallback to the last model.position_signals row, flagged).
    Cells whose liquidation price the mark has crossed since the book's end (stored mark candles plus the
    live mark) are dropped; their notional is `crossed_usd`. `bracket_table`: the table in force today (the
    cells were priced with the one in force when they opened).
    """
    t0 = time.perf_counter()
    day, book = load_latest_book(con, symbol, variant)
    fallback = latest_signals(con, symbol)
    live = fetch_live_signals(client, symbol, fallback, budget_s)
    t_model = time.perf_counter()
    if live.mark_price is None or live.oi_usd is None:
        raise LookupError(f"{symbol}: neither REST nor model.position_signals gave a mark price and OI "
                          f"(flags: {', '.join(live.flags)})")
    tables = bracket_tables if bracket_tables is not None else load_bracket_tables(config.data_dir() / "brackets")
    choice = table_for(symbol, live.as_of.date(), tables)
    grid = grid_for(symbol, params)
    flags = list(live.flags)
    oi_then = fallback.oi_usd if fallback.day == day else None
    if oi_then:
        oi_factor = live.oi_usd / oi_then
    else:
        oi_factor = 1.0
        flags.append("oi_scale_off: no stored OI at the book's end, the book is shown at its own scale")
    notional = book.notional_usd * map_scale(map_mix(con, symbol, day, variant)) * oi_factor
    lp = book.liq_price()
    book_end = np.datetime64(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()), "us")
    candles = mark_candles_after(con, symbol, book_end - np.timedelta64(1, "us"))
    low = float(np.nanmin(np.append(candles["low"].to_numpy(np.float64), live.mark_price)))
    high = float(np.nanmax(np.append(candles["high"].to_numpy(np.float64), live.mark_price)))
    priced = np.isfinite(lp) & (lp > 0) & (notional > 0)
    crossed = priced & np.where(book.side > 0, lp >= low, lp <= high)
    keep = priced & ~crossed
    frame = pd.DataFrame({"side": np.where(book.side[keep] > 0, "long", "short"), "bin_id": grid.bin_id(lp[keep]),
                          "w": lp[keep] * notional[keep], "notional_usd": notional[keep],
                          "collateral_usd": notional[keep] * np.maximum(
                              1.0 / book.leverage[keep] - book.side[keep] * book.funding_paid[keep], 0.0)})
    levels = frame.groupby(["side", "bin_id"], as_index=False)[["w", "notional_usd", "collateral_usd"]].sum()
    levels["price"] = levels["w"] / levels["notional_usd"]
    levels["price_low"], levels["price_high"] = grid.low(levels["bin_id"]), grid.high(levels["bin_id"])
    levels = levels[["side", "bin_id", "price_low", "price_high", "price", "notional_usd", "collateral_usd"]]
    latency = dict(live.latency_ms)
    latency["model"] = (time.perf_counter() - t_model) * 1000
    latency["total"] = (time.perf_counter() - t0) * 1000
    signals = dataclasses.replace(live, flags=tuple(flags))
    return NowResult(symbol, day, signals, levels.sort_values(["side", "bin_id"], ignore_index=True), choice.table.id,
                     f"the {variant} book's cells", float(notional[crossed].sum()),
                     float(notional[~priced & (notional > 0)].sum()), latency, variant=variant,
                     book_usd=float(notional.sum()))


# ============================================================================================ brackets
def bracket_snapshot(symbol: str, brackets: list[dict], as_of: dt.date) -> dict:
    """A leverageBracket response as a brackets.json table: id `<SYMBOL>@<date>`, complete, last cap open
    (null) since Binance's last tier is the end of the table."""
    if not brackets:
        raise ValueError(f"{symbol}: leverageBracket returned no tiers")
    tiers = sorted(brackets, key=lambda b: b["bracket"])
    return {
        "id": f"{symbol}@{as_of.isoformat()}",
        "symbol": symbol,
        "as_of": as_of.isoformat(),
        "as_of_label": f"fetched on {as_of.isoformat()}",
        "as_of_precision": "exact: fetched from the signed /fapi/v1/leverageBracket endpoint on this date",
        "source": "GET /fapi/v1/leverageBracket (signed, USER_DATA) via liq_pipeline leverage_brackets asset",
        "complete": True,
        "tiers": [{
            "bracket": int(t["bracket"]),
            "notional_floor": float(t["notionalFloor"]),
            "notional_cap": None if i == len(tiers) - 1 else float(t["notionalCap"]),
            "max_leverage": float(t["initialLeverage"]),
            "maint_margin_ratio": float(t["maintMarginRatio"]),
            "cum": float(t["cum"]),
        } for i, t in enumerate(tiers)],
    }


def refresh_brackets(client: FapiClient, symbols: list[str], out_dir: Path, as_of: dt.date) -> list[Path]:
    """Fetch and store one snapshot per symbol as `out_dir/<SYMBOL>@<date>.json` (read back by
    margin.load_bracket_tables). The table is validated (cum continuity) before it is written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for symbol in symbols:
        snap = bracket_snapshot(symbol, client.leverage_brackets(symbol), as_of)
        errors = BracketTable.from_dict(snap).continuity_errors()
        if errors:
            raise ValueError(f"{symbol}: leverageBracket tiers violate the cum continuity rule: {'; '.join(errors)}")
        path = out_dir / f"{snap['id']}.json"
        tmp = path.with_suffix(".json.part")
        tmp.write_text(json.dumps(snap, indent=2))
        tmp.replace(path)
        written.append(path)
    return written
