"""Turn a simulated archive into a kline-only mirror shaped like the data users have (and like the real
development window): no aggTrades, 15m and 1h klines with `count` = 0 and a taker split of exactly half,
quote volume estimated as volume × typical price, 1h mark klines only, hourly metrics with one hour left
out and empty ratio columns, the monthly funding file clipped to the days. Beside it, per-bar realized
liquidations `bar_start_utc,bar_start_ms,long_usd,short_usd` (what a Coinglass export gives), summed from
the simulator's liquidations: scoring data for the backtest, never an input of the estimator.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import pandas as pd

from liq_pipeline.market.formats import (
    FUNDING_RATE_COLUMNS,
    KLINES_COLUMNS,
    METRICS_COLUMNS,
    ArchiveFile,
)
from liq_pipeline_tests.support.mirror_fixture import write_zip

KLINE_INTERVALS = {"15m": 15, "1h": 60}


def _read(root: Path, spec: ArchiveFile, columns: tuple[str, ...]) -> pd.DataFrame:
    with zipfile.ZipFile(root / spec.relpath) as z:
        text = z.read(spec.csv_name).decode()
    first = text.split("\n", 1)[0].split(",")[0]
    has_header = first == columns[0]
    return pd.read_csv(io.StringIO(text), header=0 if has_header else None, names=list(columns),
                       dtype={"create_time": str, "symbol": str})


def _resample(k1m: pd.DataFrame, minutes: int, mark: bool) -> list[tuple]:
    """1m candles → `minutes` candles (OHLC and volume summed); third-party columns for the rest."""
    ms = minutes * 60_000
    g = k1m.assign(bucket=k1m["open_time"] // ms * ms).groupby("bucket", sort=True)
    out = pd.DataFrame({"open": g["open"].first(), "high": g["high"].max(), "low": g["low"].min(),
                        "close": g["close"].last(), "volume": g["volume"].sum()})
    rows = []
    for t, r in out.iterrows():
        if mark:
            rows.append((t, r.open, r.high, r.low, r.close, 0, t + ms - 1, 0, 0, 0, 0, 0))
        else:
            quote = r.volume * (r.high + r.low + r.close) / 3
            rows.append((t, r.open, r.high, r.low, r.close, round(r.volume, 3), t + ms - 1, round(quote, 5), 0,
                         round(r.volume / 2, 4), round(quote / 2, 6), 0))
    return rows


def write_kline_only_mirror(sim_root: Path, out: Path, symbol: str, days: list[dt.date],
                            missing_oi_hour: dt.datetime, truth_liquidations: Path) -> dict[str, int]:
    """Write the kline-only mirror of `days` under `out`, and `out/realized_liquidations_1h.csv`.

    Returns the rows written per kind.
    """
    rows = {"klines_15m": 0, "klines_1h": 0, "mark_1h": 0, "metrics": 0, "funding": 0, "liquidation_bars": 0}
    for day in days:
        k1m = _read(sim_root, ArchiveFile("klines", symbol, day, interval="1m"), KLINES_COLUMNS)
        for interval, minutes in KLINE_INTERVALS.items():
            kl = _resample(k1m, minutes, mark=False)
            write_zip(out, ArchiveFile("klines", symbol, day, interval=interval), KLINES_COLUMNS, kl)
            rows[f"klines_{interval}"] += len(kl)
        m1m = _read(sim_root, ArchiveFile("markPriceKlines", symbol, day, interval="1m"), KLINES_COLUMNS)
        mk = _resample(m1m, 60, mark=True)
        write_zip(out, ArchiveFile("markPriceKlines", symbol, day, interval="1h"), KLINES_COLUMNS, mk)
        rows["mark_1h"] += len(mk)
        met = _read(sim_root, ArchiveFile("metrics", symbol, day), METRICS_COLUMNS)
        t = pd.to_datetime(met["create_time"])
        hourly = met[(t.dt.minute == 0) & (t != pd.Timestamp(missing_oi_hour))]
        met_rows = [(r.create_time, r.symbol, r.sum_open_interest, r.sum_open_interest_value, "", "", "", "")
                    for r in hourly.itertuples()]
        write_zip(out, ArchiveFile("metrics", symbol, day), METRICS_COLUMNS, met_rows)
        rows["metrics"] += len(met_rows)

    lo = int(pd.Timestamp(days[0]).value // 1_000_000)
    hi = int(pd.Timestamp(days[-1] + dt.timedelta(days=1)).value // 1_000_000)
    for month in sorted({d.replace(day=1) for d in days}):
        fr = _read(sim_root, ArchiveFile("fundingRate", symbol, month, cadence="monthly"), FUNDING_RATE_COLUMNS)
        fr = fr[(fr["calc_time"] >= lo) & (fr["calc_time"] < hi)]
        write_zip(out, ArchiveFile("fundingRate", symbol, month, cadence="monthly"), FUNDING_RATE_COLUMNS,
                  list(fr.itertuples(index=False, name=None)))
        rows["funding"] += len(fr)

    liq = pd.read_parquet(truth_liquidations)
    hour = liq["liq_time"].astype("datetime64[ms]").dt.floor("h")
    per_bar = liq.assign(hour=hour).pivot_table(index="hour", columns="side", values="notional_usd", aggfunc="sum")
    bars = pd.date_range(pd.Timestamp(days[0]), pd.Timestamp(days[-1]) + pd.Timedelta(hours=23), freq="h")
    per_bar = per_bar.reindex(bars).fillna(0.0)
    lines = ["bar_start_utc,bar_start_ms,long_usd,short_usd"]
    for t, r in per_bar.iterrows():
        lines.append(f"{t:%Y-%m-%dT%H:%M:%SZ},{int(t.value // 1_000_000)},"
                     f"{r.get('long', 0.0):.5f},{r.get('short', 0.0):.5f}")
    (out / "realized_liquidations_1h.csv").write_text("\n".join(lines) + "\n")
    rows["liquidation_bars"] = len(per_bar)
    return rows
