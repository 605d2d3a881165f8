"""Binance USD-M archive file kinds: paths and exact CSV column lists (binance-data.md §1, §3).

The one source of truth for column names and order, used by the parsers and by the simulator's writer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from liq_pipeline.config import SYMBOL_RE

AGG_TRADES_COLUMNS = (
    "agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time", "is_buyer_maker",
)
KLINES_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
    "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)
METRICS_COLUMNS = (
    "create_time", "symbol", "sum_open_interest", "sum_open_interest_value",
    "count_toptrader_long_short_ratio", "sum_toptrader_long_short_ratio", "count_long_short_ratio",
    "sum_taker_long_short_vol_ratio",
)
FUNDING_RATE_COLUMNS = ("calc_time", "funding_interval_hours", "last_funding_rate")
LIQUIDATION_SNAPSHOT_COLUMNS = (
    "time", "side", "order_type", "time_in_force", "original_quantity", "price", "average_price",
    "order_status", "last_fill_quantity", "accumulated_fill_quantity",
)

#: kind -> CSV columns. Kline kinds share one layout.
COLUMNS: dict[str, tuple[str, ...]] = {
    "aggTrades": AGG_TRADES_COLUMNS,
    "klines": KLINES_COLUMNS,
    "markPriceKlines": KLINES_COLUMNS,
    "metrics": METRICS_COLUMNS,
    "fundingRate": FUNDING_RATE_COLUMNS,
    "liquidationSnapshot": LIQUIDATION_SNAPSHOT_COLUMNS,
}
KLINE_KINDS = frozenset({"klines", "markPriceKlines", "indexPriceKlines", "premiumIndexKlines"})
#: Kinds whose first column is a datetime string; header detection compares the first cell with its name.
DATETIME_FIRST_KINDS = frozenset({"metrics", "bookDepth"})


@dataclass(frozen=True)
class ArchiveFile:
    """One zip of the archive, e.g. daily aggTrades of BTCUSDT on 2026-01-05.

    `period` is a date for daily files and the first day of the month for monthly ones.
    """

    kind: str
    symbol: str
    period: dt.date
    cadence: str = "daily"  # "daily" or "monthly"
    interval: str | None = None  # kline kinds only

    def __post_init__(self) -> None:
        if not SYMBOL_RE.match(self.symbol):  # the symbol becomes a path: never `..`, `/` or anything odd
            raise ValueError(f"{self.symbol!r} is not a Binance symbol (upper-case letters and digits, e.g. BTCUSDT)")
        if self.cadence not in ("daily", "monthly"):
            raise ValueError(f"cadence must be 'daily' or 'monthly', not {self.cadence!r}")
        if (self.kind in KLINE_KINDS) != (self.interval is not None):
            raise ValueError(f"{self.kind}: an interval is required for kline kinds and only for them")

    @property
    def period_label(self) -> str:
        return self.period.isoformat() if self.cadence == "daily" else self.period.strftime("%Y-%m")

    @property
    def file_name(self) -> str:
        middle = self.interval if self.kind in KLINE_KINDS else self.kind
        return f"{self.symbol}-{middle}-{self.period_label}.zip"

    @property
    def csv_name(self) -> str:
        return self.file_name[: -len(".zip")] + ".csv"

    @property
    def relpath(self) -> str:
        """Path below the archive root, e.g. `data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2026-01-05.zip`."""
        parts = ["data", "futures", "um", self.cadence, self.kind, self.symbol]
        if self.interval is not None:
            parts.append(self.interval)
        parts.append(self.file_name)
        return "/".join(parts)

    @property
    def checksum_relpath(self) -> str:
        return self.relpath + ".CHECKSUM"
