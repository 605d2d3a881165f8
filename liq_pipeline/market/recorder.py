"""Realized-liquidation recorder: Binance's all-market forceOrder WebSocket stream into DuckDB.

The stream (`!forceOrder@arr`, binance-data.md §5.10) pushes **at most one liquidation per symbol per
1,000 ms, the latest one**: during a cascade most liquidation orders are never published, so every total
computed from `raw.realized_liquidations` is a lower bound of what was really liquidated. Events are
de-duplicated on (symbol, trade_time, side, price, quantity), written in batches, and the connection is
re-opened with exponential backoff whenever it drops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from liq_pipeline.warehouse.realized_liquidations import (  # noqa: F401  (DEDUP_KEY re-exported)
    DEDUP_KEY,
    EVENTS_TABLE,
    append_liquidations,
)

log = logging.getLogger(__name__)

#: Default route; the 2026-04-23 split of fstream routes left forceOrder's route unconfirmed (probably
#: `market`), hence configurable (binance-data.md §5.10).
DEFAULT_WS_URL = "wss://fstream.binance.com/market/ws/!forceOrder@arr"
TABLE = EVENTS_TABLE
SOURCE = "forceOrder_ws"
COLUMNS = ("symbol", "day", "event_time", "trade_time", "side", "price", "avg_price", "quantity", "notional_usd",
           "source")


class MalformedEvent(ValueError):
    """A stream message that is not a forceOrder event in the documented shape."""


def parse_force_orders(message: str | bytes) -> list[dict[str, Any]]:
    """Decode one stream message into events {symbol, event_ms, trade_ms, side, price, avg_price, quantity}.

    Accepts a single event, a list of events and the combined-stream wrapper `{"stream":…,"data":…}`.
    `side` is the side of the liquidated position: an order with `S = SELL` closes a long → 'long'.
    Quantity is the filled quantity `z` when present (else the order quantity `q`), base asset.
    """
    try:
        data = json.loads(message)
    except (ValueError, UnicodeDecodeError) as e:
        raise MalformedEvent(f"forceOrder stream: message is not JSON ({e}): {str(message)[:80]!r}") from e
    if isinstance(data, dict) and "data" in data and "stream" in data:
        data = data["data"]
    items = data if isinstance(data, list) else [data]
    events = []
    for item in items:
        if not isinstance(item, dict) or item.get("e") != "forceOrder" or not isinstance(item.get("o"), dict):
            raise MalformedEvent(f"forceOrder stream: not a forceOrder event: {str(item)[:120]!r}")
        o = item["o"]
        try:
            side = {"SELL": "long", "BUY": "short"}[o["S"]]
            qty = float(o.get("z") or o["q"])
            events.append({
                "symbol": str(o["s"]), "event_ms": int(item.get("E") or o["T"]), "trade_ms": int(o["T"]),
                "side": side, "price": float(o["p"]), "avg_price": float(o["ap"]) if o.get("ap") else None,
                "quantity": qty,
            })
        except (KeyError, TypeError, ValueError) as e:
            raise MalformedEvent(f"forceOrder stream: bad field in {str(o)[:120]!r}: {e!r}") from e
    return events


def events_frame(events: Iterable[dict[str, Any]], source: str = SOURCE) -> pd.DataFrame:
    """Events → rows of raw.realized_liquidations. Notional = avg_price × quantity (USD), falling back to
    the order price when the average fill price is 0 or missing; day = UTC day of the trade time."""
    frame = pd.DataFrame(list(events), columns=["symbol", "event_ms", "trade_ms", "side", "price", "avg_price",
                                                "quantity"])
    trade_time = pd.to_datetime(frame["trade_ms"].astype("int64"), unit="ms").astype("datetime64[ms]")
    avg = pd.to_numeric(frame["avg_price"], errors="coerce").astype("float64")
    fill_price = avg.where(avg > 0, frame["price"].astype("float64"))
    return pd.DataFrame({
        "symbol": frame["symbol"].astype(str),
        "day": trade_time.dt.floor("D").dt.date,
        "event_time": pd.to_datetime(frame["event_ms"].astype("int64"), unit="ms").astype("datetime64[ms]"),
        "trade_time": trade_time,
        "side": frame["side"].astype(str),
        "price": frame["price"].astype("float64"),
        "avg_price": avg,
        "quantity": frame["quantity"].astype("float64"),
        "notional_usd": fill_price * frame["quantity"].astype("float64"),
        "source": source,
    })


@dataclass
class LiquidationBuffer:
    """Collects events and writes them every `batch_size` events or `flush_interval_s` seconds."""

    con: duckdb.DuckDBPyConnection
    symbols: frozenset[str] | None = None
    batch_size: int = 200
    flush_interval_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    pending: list[dict[str, Any]] = field(default_factory=list)
    inserted: int = 0
    _last_flush: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.flush_interval_s < 0:
            raise ValueError("batch_size must be >= 1 and flush_interval_s >= 0")
        self._last_flush = self.clock()

    def add(self, events: Iterable[dict[str, Any]]) -> int:
        """Queue events (only those of `symbols` when set); flush when the batch is due. Returns queued count."""
        kept = [e for e in events if self.symbols is None or e["symbol"] in self.symbols]
        self.pending.extend(kept)
        if len(self.pending) >= self.batch_size or self.clock() - self._last_flush >= self.flush_interval_s:
            self.flush()
        return len(kept)

    def flush(self) -> int:
        batch, self.pending = self.pending, []
        self._last_flush = self.clock()
        written = append_liquidations(self.con, events_frame(batch)) if batch else 0
        self.inserted += written
        return written


@dataclass
class RecorderStats:
    received: int = 0
    inserted: int = 0
    connections: int = 0
    reconnects: int = 0
    malformed: int = 0
    errors: list[str] = field(default_factory=list)


async def record_liquidations(
    buffer: LiquidationBuffer,
    ws_url: str = DEFAULT_WS_URL,
    max_events: int | None = None,
    duration_s: float | None = None,
    backoff_s: float = 1.0,
    max_backoff_s: float = 60.0,
    max_reconnects: int | None = None,
    open_timeout_s: float = 10.0,
) -> RecorderStats:
    """Subscribe to `ws_url` and store forceOrder events until `max_events` events were received or
    `duration_s` elapsed (both None = forever).

    A dropped or refused connection is re-opened after `backoff_s × 2**k` seconds (capped at
    `max_backoff_s`, k reset after a message arrives); `max_reconnects` bounds the attempts in a row.
    Events re-sent after a reconnect are dropped by the dedupe key. Pending events are flushed on exit.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

    stats = RecorderStats()
    loop = asyncio.get_running_loop()
    deadline = None if duration_s is None else loop.time() + duration_s
    failures_in_row = 0

    def remaining() -> float | None:
        return None if deadline is None else deadline - loop.time()

    def done() -> bool:
        left = remaining()
        return (max_events is not None and stats.received >= max_events) or (left is not None and left <= 0)

    try:
        while not done():
            try:
                async with connect(ws_url, open_timeout=open_timeout_s, ping_interval=20, max_queue=1024) as ws:
                    stats.connections += 1
                    while not done():
                        try:
                            message = await asyncio.wait_for(ws.recv(), timeout=remaining())
                        except TimeoutError:
                            break
                        failures_in_row = 0
                        try:
                            events = parse_force_orders(message)
                        except MalformedEvent as e:
                            stats.malformed += 1
                            log.warning("%s", e)
                            continue
                        if max_events is not None:
                            events = events[: max_events - stats.received]
                        stats.received += len(events)
                        buffer.add(events)
            except InvalidURI:
                raise
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as e:
                stats.errors.append(f"{type(e).__name__}: {e}")
                # Persist what we have before waiting: a long outage must not hold events in memory only.
                buffer.flush()
                if done():
                    break
                failures_in_row += 1
                if max_reconnects is not None and failures_in_row > max_reconnects:
                    raise ConnectionError(f"{ws_url}: gave up after {failures_in_row} failed connections in a row "
                                          f"(last: {stats.errors[-1]})") from e
                stats.reconnects += 1
                wait = min(max_backoff_s, backoff_s * 2 ** (failures_in_row - 1))
                left = remaining()
                if left is not None:
                    wait = min(wait, max(left, 0.0))
                log.warning("forceOrder stream dropped (%s); reconnecting in %.1f s", e, wait)
                await asyncio.sleep(wait)
    finally:
        buffer.flush()
        stats.inserted = buffer.inserted
    return stats
