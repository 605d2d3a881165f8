"""Load the hourly public series `facts.py` compares, from a simulated archive or from a real mirror.

Both are data.binance.vision mirrors: klines of any sub-hour interval are aggregated to 1 h, open interest
is the metrics sample at the top of each hour (the real window has only those), funding comes from the
monthly files. Liquidations differ: the simulator's public `forceOrder` stream (truth/forceOrder/, at most
one order per second, as Coinglass sees Binance) against the real window's per-hour CSV, which sums
Binance, Bybit and OKX and is scaled by `BINANCE_SHARE_OF_THREE` (a stated assumption, see below).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.market.formats import ArchiveFile
from liq_pipeline.sim.facts import HOURS_PER_DAY, HourlyMarket

#: Binance's share of the Binance + Bybit + OKX liquidation series. Assumption taken from a public
#: comparison, not fitted here: a Binance-only 4 h series runs at about 0.3x the three-exchange one
#: (correlation 0.87, Oct 2025 - Apr 2026; ../shared/reference). 0.63 % of OI/day x 0.3 = 0.19 %.
BINANCE_SHARE_OF_THREE = 0.3
#: File of per-hour realized liquidations at the root of the real mirror (bar_start_ms, long_usd, short_usd).
REAL_LIQUIDATIONS_FILE = "realized_liquidations_1h.csv"
_MS_PER_HOUR = 3_600_000
_EPOCH = dt.date(1970, 1, 1)


def _read_zips(root: Path, specs: list[ArchiveFile]) -> pd.DataFrame:
    missing = [s.relpath for s in specs if not (root / s.relpath).is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: {len(missing)} archive file(s) missing, first {missing[0]}")
    return pd.concat([pd.read_csv(root / s.relpath, compression="zip") for s in specs], ignore_index=True)


def _interval(root: Path, symbol: str) -> str:
    folder = root / "data" / "futures" / "um" / "daily" / "klines" / symbol
    minutes = {"1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60}
    found = [p.name for p in folder.iterdir() if p.name in minutes] if folder.is_dir() else []
    if not found:
        raise FileNotFoundError(f"{root}: no daily klines of {symbol} at or below 1h in {folder}")
    return min(found, key=minutes.get)


def load_mirror(root: Path, symbol: str, days: list[dt.date], hour_ms: np.ndarray, liq_long_usd: np.ndarray,
                liq_short_usd: np.ndarray) -> HourlyMarket:
    """Hourly klines, OI and funding of `symbol` over `days` from a mirror, with liquidations given per hour
    (`hour_ms`, any hours; those outside the days are ignored, missing hours are zero)."""
    root = Path(root)
    interval = _interval(root, symbol)
    k = _read_zips(root, [ArchiveFile("klines", symbol, d, interval=interval) for d in days])
    start_ms = (days[0] - _EPOCH).days * 86_400_000
    n = len(days) * HOURS_PER_DAY
    hour = (k["open_time"].to_numpy(np.int64) - start_ms) // _MS_PER_HOUR
    if hour.min() < 0 or hour.max() >= n:
        raise ValueError(f"{root}: klines of {symbol} outside {days[0]}..{days[-1]}")
    order = np.argsort(k["open_time"].to_numpy(), kind="stable")
    hour_o = hour[order]
    starts = np.searchsorted(hour_o, np.arange(n))
    ends = np.searchsorted(hour_o, np.arange(n), side="right")
    if np.any(ends == starts):
        raise ValueError(f"{root}: {int((ends == starts).sum())} hour(s) without klines for {symbol}")
    first = order[starts]
    last = order[ends - 1]
    hi = np.maximum.reduceat(k["high"].to_numpy(float)[order], starts)
    lo = np.minimum.reduceat(k["low"].to_numpy(float)[order], starts)
    quote = np.bincount(hour, k["quote_volume"].to_numpy(float), n)
    m = _read_zips(root, [ArchiveFile("metrics", symbol, d) for d in days])
    t = pd.to_datetime(m["create_time"]).to_numpy().astype("datetime64[ms]").astype(np.int64)
    on_hour = (t % _MS_PER_HOUR == 0) & (t >= start_ms) & (t < start_ms + n * _MS_PER_HOUR)
    oi = np.full(n, np.nan)
    oi[(t[on_hour] - start_ms) // _MS_PER_HOUR] = m["sum_open_interest_value"].to_numpy(float)[on_hour]
    oi[~(oi > 0)] = np.nan  # an empty book (a simulation's first minute) has no OI to divide by
    months = sorted({d.replace(day=1) for d in days})
    f = _read_zips(root, [ArchiveFile("fundingRate", symbol, mo, cadence="monthly") for mo in months])
    # calc_time is the settlement instant or 1 ms after it (binance-data.md §6): round to the second.
    f_ms = f["calc_time"].to_numpy(np.int64) // 1000 * 1000
    keep = (f_ms >= start_ms) & (f_ms < start_ms + n * _MS_PER_HOUR)
    liq_h = (np.asarray(hour_ms, dtype=np.int64) - start_ms) // _MS_PER_HOUR
    inside = (liq_h >= 0) & (liq_h < n)
    return HourlyMarket(
        hour_ms=start_ms + np.arange(n, dtype=np.int64) * _MS_PER_HOUR,
        open=k["open"].to_numpy(float)[first], high=hi, low=lo, close=k["close"].to_numpy(float)[last],
        quote_volume_usd=quote, oi_usd=oi,
        liq_long_usd=np.bincount(liq_h[inside], np.asarray(liq_long_usd, float)[inside], n),
        liq_short_usd=np.bincount(liq_h[inside], np.asarray(liq_short_usd, float)[inside], n),
        funding_ms=f_ms[keep], funding_rate_8h=f["last_funding_rate"].to_numpy(float)[keep],
    )


def simulated_days(root: Path) -> tuple[list[dt.date], tuple[str, ...]]:
    """Days and symbols of the simulation in `root` (its simulation.json)."""
    manifest = Path(root) / "simulation.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{root} is not a simulated archive: no simulation.json (run `liq simulate`)")
    cfg = json.loads(manifest.read_text())["config"]
    start = dt.date.fromisoformat(cfg["start"])
    return [start + dt.timedelta(days=i) for i in range(int(cfg["days"]))], tuple(cfg["symbols"])


def load_simulated(root: Path, symbol: str, skip_days: int = 0) -> HourlyMarket:
    """A simulated symbol: its mirror plus the liquidations of its public forceOrder stream (q x average price),
    without its first `skip_days` days (the book starts empty and fills over the first days)."""
    days, symbols = simulated_days(root)
    if symbol not in symbols:
        raise ValueError(f"{root} simulated {', '.join(symbols)}, not {symbol}")
    if not 0 <= skip_days < len(days):
        raise ValueError(f"cannot skip {skip_days} of the {len(days)} simulated days")
    days = days[skip_days:]
    stream = Path(root) / "truth" / "forceOrder" / f"{symbol}.jsonl"
    if not stream.is_file():
        raise FileNotFoundError(f"no forceOrder stream at {stream}: re-run `liq simulate` (an older simulator?)")
    if stream.stat().st_size == 0:
        liq = pd.DataFrame({"t": np.empty(0, np.int64), "long": np.empty(0), "short": np.empty(0)})
    else:
        liq = duckdb.sql(
            "SELECT o.T::BIGINT AS t, CASE WHEN o.S = 'SELL' THEN o.q::DOUBLE * o.ap::DOUBLE ELSE 0 END AS long, "
            "CASE WHEN o.S = 'BUY' THEN o.q::DOUBLE * o.ap::DOUBLE ELSE 0 END AS short "
            f"FROM read_json('{_sql_path(stream)}', format='newline_delimited', "
            "columns={'o': 'STRUCT(S VARCHAR, q VARCHAR, ap VARCHAR, T BIGINT)'})"
        ).df()
    t, long_usd, short_usd = _three_exchange_view(root, symbol, days, liq)
    return load_mirror(root, symbol, days, t, long_usd, short_usd)


def _three_exchange_view(root: Path, symbol: str, days: list[dt.date],
                         stream: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The simulated liquidations as the real series sees a market, on Binance's scale: the real series is
    Binance's public stream (at most one order a second, the latest: in a cascade most liquidations are
    not published) for BINANCE_SHARE_OF_THREE of it and Bybit + OKX, whose feeds publish every liquidation,
    for the rest. So the simulated hourly series is BINANCE_SHARE_OF_THREE × the stream plus the rest ×
    every liquidation (truth/liquidations: what an uncapped feed of the same market publishes), the latter
    scaled to the stream's total: the level stays the stream's, as Binance's, and the shape is the
    three-exchange mix's (an assumption: Bybit's and OKX's speculators behave as Binance's; the stream
    alone keeps 30-60 % of the simulated notional and flattens the top hours: docs/simulator.md)."""
    start = (days[0] - _EPOCH).days * 86_400_000
    end = start + len(days) * 86_400_000
    full_path = Path(root) / "truth" / "liquidations" / f"{symbol}.parquet"
    if not full_path.is_file():
        raise FileNotFoundError(f"no truth liquidations at {full_path}: re-run `liq simulate` (an older simulator?)")
    full = duckdb.sql(
        "SELECT epoch_ms(liq_time)::BIGINT AS t, CASE WHEN side = 'long' THEN notional_usd ELSE 0 END AS long, "
        "CASE WHEN side = 'short' THEN notional_usd ELSE 0 END AS short "
        f"FROM read_parquet('{_sql_path(full_path)}')").df()
    def inside(f: pd.DataFrame) -> pd.DataFrame:
        return f[(f["t"] >= start) & (f["t"] < end)]
    stream, full = inside(stream), inside(full)
    s_total = float(stream["long"].sum() + stream["short"].sum())
    f_total = float(full["long"].sum() + full["short"].sum())
    w_full = (1 - BINANCE_SHARE_OF_THREE) * s_total / f_total if f_total > 0 else 0.0
    return (np.r_[stream["t"].to_numpy(np.int64), full["t"].to_numpy(np.int64)],
            np.r_[BINANCE_SHARE_OF_THREE * stream["long"].to_numpy(float), w_full * full["long"].to_numpy(float)],
            np.r_[BINANCE_SHARE_OF_THREE * stream["short"].to_numpy(float), w_full * full["short"].to_numpy(float)])


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def load_real(mirror: Path, symbol: str = "BTCUSDT", binance_share: float = BINANCE_SHARE_OF_THREE,
              first_day: dt.date | None = None, last_day: dt.date | None = None) -> HourlyMarket:
    """A real kline-only mirror (the development window layout) with its per-hour liquidation CSV scaled by
    `binance_share`; the days are those of its klines, or `first_day`..`last_day` (an episode: both inside)."""
    from liq_pipeline.market.mirror_layout import inspect_mirror

    layout = inspect_mirror(mirror, symbol)
    lo, hi = first_day or layout.first_day, last_day or layout.last_day
    if not layout.first_day <= lo <= hi <= layout.last_day:
        raise ValueError(f"{mirror}: days {lo}..{hi} are not inside its window {layout.first_day}..{layout.last_day}")
    days = [lo + dt.timedelta(days=i) for i in range((hi - lo).days + 1)]
    csv = Path(mirror) / REAL_LIQUIDATIONS_FILE
    if not csv.is_file():
        raise FileNotFoundError(f"{mirror}: no {REAL_LIQUIDATIONS_FILE} (per-hour realized liquidations)")
    liq = pd.read_csv(csv)
    missing = {"bar_start_ms", "long_usd", "short_usd"} - set(liq.columns)
    if missing:
        raise ValueError(f"{csv}: missing column(s) {', '.join(sorted(missing))}")
    return load_mirror(mirror, symbol, days, liq["bar_start_ms"].to_numpy(np.int64),
                       liq["long_usd"].to_numpy(float) * binance_share, liq["short_usd"].to_numpy(float) * binance_share)
