"""Write a tiny local mirror in the data.binance.vision layout (real file names, columns and CHECKSUMs)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from liq_pipeline.market.formats import (
    AGG_TRADES_COLUMNS,
    FUNDING_RATE_COLUMNS,
    KLINES_COLUMNS,
    METRICS_COLUMNS,
    ArchiveFile,
)


def _ms(t: dt.datetime) -> int:
    return int(t.replace(tzinfo=dt.UTC).timestamp() * 1000)


def write_zip(root: Path, spec: ArchiveFile, header: tuple[str, ...] | None, rows: list[tuple], checksum: bool = True) -> Path:
    lines = ([",".join(header)] if header else []) + [",".join(map(str, r)) for r in rows]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(spec.csv_name, "\n".join(lines) + "\n")
    path = root / spec.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    if checksum:
        (root / spec.checksum_relpath).write_text(f"{hashlib.sha256(buf.getvalue()).hexdigest()}  {spec.file_name}")
    return path


def write_day(root: Path, symbol: str, day: dt.date, n_trades: int = 500, price: float = 90_000.0, seed: int = 0,
              first_id: int = 1) -> None:
    """One day of every kind the raw assets read, with a random walk around `price`."""
    rng = np.random.default_rng(seed)
    start = dt.datetime.combine(day, dt.time())
    t0 = _ms(start)
    times = np.sort(rng.integers(0, 86_400_000, n_trades)) + t0
    prices = np.round(price * np.exp(np.cumsum(rng.normal(0, 2e-4, n_trades))), 1)
    qty = np.round(rng.exponential(0.05, n_trades) + 0.001, 3)
    sides = np.where(rng.random(n_trades) < 0.5, "true", "false")
    trades = [(first_id + i, prices[i], qty[i], 10 * i, 10 * i + 1, times[i], sides[i]) for i in range(n_trades)]
    write_zip(root, ArchiveFile("aggTrades", symbol, day), AGG_TRADES_COLUMNS, trades)

    minute_open = t0 + 60_000 * np.arange(1440)
    idx = np.clip(np.searchsorted(times, minute_open), 0, n_trades - 1)
    mid = prices[idx]
    kl = [(minute_open[i], mid[i], mid[i] * 1.0005, mid[i] * 0.9995, mid[i], 1.5, minute_open[i] + 59_999,
           1.5 * mid[i], 12, 0.7, 0.7 * mid[i], 0) for i in range(1440)]
    write_zip(root, ArchiveFile("klines", symbol, day, interval="1m"), KLINES_COLUMNS, kl)
    mk = [(r[0], r[1], r[2], r[3], r[4], 0, r[6], 0, 60, 0, 0, 0) for r in kl]
    write_zip(root, ArchiveFile("markPriceKlines", symbol, day, interval="1m"), KLINES_COLUMNS, mk)

    metrics = []
    for i in range(288):
        ts = start + dt.timedelta(minutes=5 * i)
        oi = 80_000 + 10 * i
        metrics.append((ts.strftime("%Y-%m-%d %H:%M:%S"), symbol, oi, oi * price, 1.2, 1.5, 1.1, 0.95))
    write_zip(root, ArchiveFile("metrics", symbol, day), METRICS_COLUMNS, metrics)


def write_funding_month(root: Path, symbol: str, month: dt.date, days: int, rate: float = 0.0001) -> None:
    start = dt.datetime.combine(month.replace(day=1), dt.time())
    rows = [(_ms(start + dt.timedelta(hours=8 * k)) + 1, 8, rate) for k in range(3 * days)]
    write_zip(root, ArchiveFile("fundingRate", symbol, month.replace(day=1), cadence="monthly"), FUNDING_RATE_COLUMNS, rows)
