"""What a local mirror in the data.binance.vision layout holds for one symbol, read from its file names: the
days and the finest kline intervals (the real-data scorecard and `liq realism` read real mirrors in place)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from liq_pipeline import config

#: Environment variable that points at another copy of that folder (or another kline-only mirror).
REAL_DATA_ENV = "LIQ_REAL_DATA_DIR"
_KLINE_FILE = re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>\w+)-(?P<day>\d{4}-\d{2}-\d{2})\.zip$")


@dataclass(frozen=True)
class MirrorLayout:
    """What a kline-only mirror holds for one symbol: its days and the finest kline intervals."""

    symbol: str
    first_day: dt.date
    last_day: dt.date
    kline_interval: str
    mark_interval: str


def _intervals(folder: Path) -> list[str]:
    found = [p.name for p in folder.iterdir() if p.is_dir() and p.name in config.KLINE_INTERVAL_MS] \
        if folder.is_dir() else []
    return sorted(found, key=config.KLINE_INTERVAL_MS.get)


def inspect_mirror(mirror_dir: Path, symbol: str) -> MirrorLayout:
    """Days and finest intervals of `symbol` in a mirror (data.binance.vision layout), from its file names.

    Raises FileNotFoundError naming what is missing: the folder, daily klines or mark-price klines.
    """
    root = Path(mirror_dir) / "data" / "futures" / "um" / "daily"
    if not Path(mirror_dir).is_dir():
        raise FileNotFoundError(f"no mirror folder at {mirror_dir} (set {REAL_DATA_ENV} or pass --mirror)")
    kline_intervals = _intervals(root / "klines" / symbol)
    mark_intervals = _intervals(root / "markPriceKlines" / symbol)
    if not kline_intervals:
        raise FileNotFoundError(f"{mirror_dir}: no daily klines of {symbol} (data/futures/um/daily/klines/{symbol}/)")
    if not mark_intervals:
        raise FileNotFoundError(f"{mirror_dir}: no daily mark-price klines of {symbol} "
                                f"(data/futures/um/daily/markPriceKlines/{symbol}/)")
    days = sorted(dt.date.fromisoformat(m["day"]) for p in (root / "klines" / symbol / kline_intervals[0]).iterdir()
                  if (m := _KLINE_FILE.match(p.name)))
    if not days:
        raise FileNotFoundError(f"{mirror_dir}: no {kline_intervals[0]} kline zips of {symbol}")
    return MirrorLayout(symbol, days[0], days[-1], kline_intervals[0], mark_intervals[0])
