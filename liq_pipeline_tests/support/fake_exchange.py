"""A fake Binance USD-M exchange on 127.0.0.1 for tests: a fapi HTTP server and a forceOrder WebSocket.

The HTTP server (http.server in a thread) serves deterministic market data for whole days and enforces the
documented parameter limits (klines ≤ 1500, aggTrades ≤ 1000 with fromId xor a < 1 h window,
openInterestHist ≤ 500 within the latest 30 days, fundingRate ≤ 1000, signed leverageBracket), sends
`X-MBX-USED-WEIGHT-1M`, and can be scripted per path to answer 429/418/5xx, malformed JSON or late.
The WebSocket server (websockets, in its own event-loop thread) plays one scripted list of messages per
connection and then closes it, to force reconnects.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

DAY_MS = 86_400_000


def day_ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)


@dataclass
class Scripted:
    """One canned answer for a path: status, body (bytes or JSON-able; None = the normal answer's body),
    extra headers, and a delay before answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class MarketData:
    """Deterministic data of one symbol. Prices around `base_price`; everything vectorised with numpy."""

    symbol: str = "BTCUSDT"
    base_price: float = 50_000.0
    first_day: dt.date = dt.date(2026, 3, 1)
    days: int = 3
    trades_per_day: int = 2_500
    #: Hours of each day without any trade (to exercise aggTrades' empty windows).
    quiet_hours: tuple[int, ...] = (3, 4)

    def __post_init__(self) -> None:
        start = day_ms(self.first_day)
        n_min = self.days * 1440
        t = np.arange(n_min, dtype=np.int64) * 60_000 + start
        wave = self.base_price * (1 + 0.01 * np.sin(np.arange(n_min) / 180.0))
        self.kline_open_ms = t
        self.kline_close = np.round(wave, 1)
        self.kline_open = np.round(np.concatenate([[wave[0]], wave[:-1]]), 1)
        self.kline_high = np.maximum(self.kline_open, self.kline_close) + 5.0
        self.kline_low = np.minimum(self.kline_open, self.kline_close) - 5.0
        self.kline_volume = np.round(10 + 5 * np.cos(np.arange(n_min) / 50.0) ** 2, 3)
        # aggTrades: evenly spread over each day except the quiet hours, ids continuous from 1.
        n_trades = self.trades_per_day * self.days
        tt = start + (np.arange(n_trades, dtype=np.int64) * (self.days * DAY_MS // n_trades))
        hour = (tt - start) // 3_600_000 % 24
        tt = tt[~np.isin(hour, self.quiet_hours)]
        self.trade_ms = tt
        self.trade_id = np.arange(1, tt.size + 1, dtype=np.int64)
        idx = np.clip((tt - start) // 60_000, 0, n_min - 1)
        self.trade_price = self.kline_close[idx]
        self.trade_qty = np.round(0.001 + (self.trade_id % 17) * 0.01, 3)
        self.trade_buyer_maker = self.trade_id % 3 == 0
        # OI every 5 minutes, funding every 8 h.
        self.oi_ms = np.arange(self.days * 288, dtype=np.int64) * 300_000 + start
        self.oi_base = 80_000 + 10 * np.arange(self.oi_ms.size)
        self.funding_ms = np.arange(-3, self.days * 3, dtype=np.int64) * 28_800_000 + start
        self.funding_rate = np.where(np.arange(self.funding_ms.size) % 2 == 0, 0.0001, 0.00025)


class FakeExchange:
    """The fapi HTTP server. `now_ms` is the exchange's clock (tests share it with the client's clock)."""

    def __init__(self, data: MarketData | None = None, api_key: str = "test-key", api_secret: str = "test-secret") -> None:
        self.data = data or MarketData()
        self.api_key = api_key
        self.api_secret = api_secret
        self.now_ms = day_ms(self.data.first_day) + self.data.days * DAY_MS + 3_600_000
        self.mark_price = float(self.data.kline_close[-1])
        #: Value of X-MBX-USED-WEIGHT-1M; None = count weight 1 per request like a quiet IP.
        self.used_weight: int | None = None
        self.scripts: dict[str, deque[Scripted]] = {}
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self._lock = threading.Lock()
        self._count = 0
        handler = self._handler_class()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        # A short poll interval keeps shutdown (once per test) fast.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeExchange:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, path: str, *answers: Scripted) -> None:
        """Queue canned answers for `path` (used in order, then normal service resumes)."""
        self.scripts.setdefault(path, deque()).extend(answers)

    def calls(self, path: str) -> list[dict[str, str]]:
        return [params for p, params, _ in self.requests if p == path]

    # ---- endpoints ------------------------------------------------------------------------------------
    def _klines(self, q: dict[str, str]) -> tuple[int, Any]:
        limit = int(q.get("limit", 500))
        if limit > 1500:
            return 400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
        if q.get("interval") != "1m":
            return 400, {"code": -1120, "msg": "fake exchange serves 1m only"}
        d = self.data
        start, end = int(q.get("startTime", 0)), int(q.get("endTime", self.now_ms))
        close_ms = d.kline_open_ms + 59_999
        sel = np.flatnonzero((d.kline_open_ms >= start) & (d.kline_open_ms <= end) & (d.kline_open_ms <= self.now_ms))[:limit]
        return 200, [[int(d.kline_open_ms[i]), f"{d.kline_open[i]:.1f}", f"{d.kline_high[i]:.1f}", f"{d.kline_low[i]:.1f}",
                      f"{d.kline_close[i]:.1f}", f"{d.kline_volume[i]:.3f}", int(close_ms[i]),
                      f"{d.kline_volume[i] * d.kline_close[i]:.4f}", 100, f"{d.kline_volume[i] / 2:.3f}",
                      f"{d.kline_volume[i] * d.kline_close[i] / 2:.4f}", "0"] for i in sel]

    def _agg_trades(self, q: dict[str, str]) -> tuple[int, Any]:
        limit = int(q.get("limit", 500))
        if limit > 1000:
            return 400, {"code": -1130, "msg": "limit > 1000"}
        d = self.data
        has_time = "startTime" in q or "endTime" in q
        if "fromId" in q and has_time:
            return 400, {"code": -1128, "msg": "send fromId or a time range, not both"}
        visible = d.trade_ms <= self.now_ms
        if "fromId" in q:
            sel = np.flatnonzero((d.trade_id >= int(q["fromId"])) & visible)[:limit]
        else:
            start, end = int(q["startTime"]), int(q["endTime"])
            if end - start >= 3_600_000:
                return 400, {"code": -1127, "msg": "More than 1 hours between startTime and endTime."}
            sel = np.flatnonzero((d.trade_ms >= start) & (d.trade_ms <= end) & visible)[:limit]
        return 200, [{"a": int(d.trade_id[i]), "p": f"{d.trade_price[i]:.1f}", "q": f"{d.trade_qty[i]:.3f}",
                      "f": int(d.trade_id[i]) * 3, "l": int(d.trade_id[i]) * 3 + 2, "T": int(d.trade_ms[i]),
                      "m": bool(d.trade_buyer_maker[i])} for i in sel]

    def _oi_hist(self, q: dict[str, str]) -> tuple[int, Any]:
        limit = int(q.get("limit", 30))
        if limit > 500:
            return 400, {"code": -1130, "msg": "limit > 500"}
        start, end = int(q.get("startTime", 0)), int(q.get("endTime", self.now_ms))
        if start < self.now_ms - 30 * DAY_MS:
            return 400, {"code": -1130, "msg": "startTime older than 30 days"}
        d = self.data
        sel = np.flatnonzero((d.oi_ms >= start) & (d.oi_ms <= end))[:limit]
        return 200, [{"symbol": d.symbol, "sumOpenInterest": f"{d.oi_base[i]:.8f}",
                      "sumOpenInterestValue": f"{d.oi_base[i] * self.mark_price:.8f}",
                      "timestamp": str(int(d.oi_ms[i]))} for i in sel]

    def _funding(self, q: dict[str, str]) -> tuple[int, Any]:
        limit = int(q.get("limit", 100))
        if limit > 1000:
            return 400, {"code": -1130, "msg": "limit > 1000"}
        d = self.data
        start, end = int(q.get("startTime", 0)), int(q.get("endTime", self.now_ms))
        sel = np.flatnonzero((d.funding_ms >= start) & (d.funding_ms <= end) & (d.funding_ms <= self.now_ms))[:limit]
        return 200, [{"symbol": d.symbol, "fundingTime": int(d.funding_ms[i]), "fundingRate": f"{d.funding_rate[i]:.8f}",
                      "markPrice": f"{self.mark_price:.2f}"} for i in sel]

    def _signed_ok(self, q: dict[str, str], raw_query: str, headers: dict[str, str]) -> bool:
        if headers.get("X-MBX-APIKEY") != self.api_key or "signature" not in q:
            return False
        unsigned = raw_query.rsplit("&signature=", 1)[0]
        expected = hmac.new(self.api_secret.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, q["signature"])

    def answer(self, path: str, q: dict[str, str], raw_query: str, headers: dict[str, str]) -> tuple[int, Any]:
        d = self.data
        if path == "/fapi/v1/klines" or path == "/fapi/v1/markPriceKlines":
            return self._klines(q)
        if path == "/fapi/v1/aggTrades":
            return self._agg_trades(q)
        if path == "/futures/data/openInterestHist":
            return self._oi_hist(q)
        if path == "/fapi/v1/fundingRate":
            return self._funding(q)
        if path == "/fapi/v1/openInterest":
            return 200, {"symbol": d.symbol, "openInterest": f"{d.oi_base[-1]:.3f}", "time": self.now_ms}
        if path == "/fapi/v1/premiumIndex":
            return 200, {"symbol": d.symbol, "markPrice": f"{self.mark_price:.2f}", "indexPrice": f"{self.mark_price + 1:.2f}",
                         "estimatedSettlePrice": f"{self.mark_price:.2f}", "lastFundingRate": "0.00010000",
                         "interestRate": "0.00010000", "nextFundingTime": self.now_ms + 3_600_000, "time": self.now_ms}
        if path == "/fapi/v1/exchangeInfo":
            return 200, {"serverTime": self.now_ms, "rateLimits": [], "symbols": [
                {"symbol": d.symbol, "contractType": "PERPETUAL", "status": "TRADING", "liquidationFee": "0.0125",
                 "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.10"}]}]}
        if path == "/fapi/v1/leverageBracket":
            if not self._signed_ok(q, raw_query, headers):
                return 401, {"code": -1022, "msg": "Signature for this request is not valid."}
            return 200, {"symbol": q.get("symbol", d.symbol), "brackets": [
                {"bracket": 1, "initialLeverage": 125, "notionalFloor": 0, "notionalCap": 50000, "maintMarginRatio": 0.004, "cum": 0},
                {"bracket": 2, "initialLeverage": 100, "notionalFloor": 50000, "notionalCap": 250000, "maintMarginRatio": 0.005, "cum": 50},
                {"bracket": 3, "initialLeverage": 50, "notionalFloor": 250000, "notionalCap": 1000000, "maintMarginRatio": 0.01, "cum": 1300},
            ]}
        return 404, {"code": -5000, "msg": f"fake exchange: unknown path {path}"}

    def _handler_class(self):
        exchange = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                parsed = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(parsed.query))
                headers = dict(self.headers.items())
                with exchange._lock:
                    exchange.requests.append((parsed.path, q, headers))
                    exchange._count += 1
                    queue = exchange.scripts.get(parsed.path)
                    scripted = queue.popleft() if queue else None
                    weight = exchange.used_weight if exchange.used_weight is not None else exchange._count
                if scripted is not None:
                    status, body, extra, delay = scripted.status, scripted.body, scripted.headers, scripted.delay_s
                else:
                    status, body = exchange.answer(parsed.path, q, parsed.query, headers)
                    extra, delay = {}, 0.0
                if delay:
                    time.sleep(delay)
                if body is None and scripted is not None:
                    status2, body = exchange.answer(parsed.path, q, parsed.query, headers)
                    status = status if status != 200 else status2
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.send_header("X-MBX-USED-WEIGHT-1M", str(weight))
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        return Handler


class FakeForceOrderStream:
    """forceOrder WebSocket server: connection k plays `sessions[k]` (a list of JSON strings), then closes;
    connections beyond the script stay open and silent until the server stops."""

    def __init__(self, sessions: list[list[str]], pause_s: float = 0.005) -> None:
        self.sessions = sessions
        self.pause_s = pause_s
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port: int | None = None
        self._server = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/market/ws/!forceOrder@arr"

    async def _handle(self, ws) -> None:
        k = self.connections
        self.connections += 1
        if k < len(self.sessions):
            for message in self.sessions[k]:
                await ws.send(message)
                await asyncio.sleep(self.pause_s)
            await ws.close()
            return
        await self._stop.wait()

    async def _start(self) -> None:
        from websockets.asyncio.server import serve

        self._stop = asyncio.Event()
        self._server = await serve(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        self._stop.set()
        self._server.close()
        await self._server.wait_closed()

    def __enter__(self) -> FakeForceOrderStream:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def force_order_event(i: int, symbol: str = "BTCUSDT", side: str = "SELL", base_ms: int = 1_772_323_200_000) -> str:
    """The i-th synthetic forceOrder message (distinct trade time, price and quantity per i)."""
    return json.dumps({"e": "forceOrder", "E": base_ms + i * 1000 + 3, "o": {
        "s": symbol, "S": side, "o": "LIMIT", "f": "IOC", "q": f"{0.1 + i * 0.01:.3f}", "p": f"{50_000 - i:.1f}",
        "ap": f"{50_010 - i:.1f}", "X": "FILLED", "l": f"{0.1 + i * 0.01:.3f}", "z": f"{0.1 + i * 0.01:.3f}",
        "T": base_ms + i * 1000}})
