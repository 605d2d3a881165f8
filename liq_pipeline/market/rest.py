"""Binance USD-M futures REST (fapi) client that stays inside the published rate limits.

Used by the live layer: gap fill for days the archive has not published yet, the "now" heatmap's signals
and the signed bracket refresh. Facts (weights, limits, paging rules, status codes) are from
binance-data.md §5 (Binance USD-M API docs). Every response is parsed into typed pandas frames or small
dataclasses; prices and quantities arrive as strings and are converted to float64 here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import requests

from liq_pipeline import config
from liq_pipeline.market.ban import BanMemory, bounded_wait_s

#: REQUEST_WEIGHT limit per IP per minute (binance-data.md §5.1).
WEIGHT_LIMIT_1M = 2400
#: Default share of the limit the client allows itself before pausing until the next minute.
DEFAULT_WEIGHT_BUDGET = 0.8
#: Wait assumed for a 418 without Retry-After: bans start at 2 minutes (binance-data.md §5.1).
MIN_BAN_S = 120.0
KLINES_MAX_LIMIT = 1500
AGG_TRADES_MAX_LIMIT = 1000
OI_HIST_MAX_LIMIT = 500
FUNDING_MAX_LIMIT = 1000
#: openInterestHist serves only the latest 30 days (binance-data.md §5.5).
OI_HIST_MAX_AGE_DAYS = 30
#: aggTrades with both startTime and endTime needs a window under one hour (binance-data.md §5.3).
AGG_TRADES_MAX_WINDOW_MS = 3_600_000 - 1
OI_HIST_PERIODS_MS = {
    "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000,
    "6h": 21_600_000, "12h": 43_200_000, "1d": 86_400_000,
}
USER_AGENT = "liq_pipeline/0.1 (+https://github.com/; live layer)"
#: Epoch milliseconds a Binance USD-M answer can carry: from 2019-01-01 to 2100-01-01; outside is corruption.
EPOCH_MS_RANGE = (1_546_300_800_000, 4_102_444_800_000)
#: Trade ids are whole numbers below 2**53 (exact in a float64, as pandas reads JSON numbers).
MAX_ID = 2**53
#: A current value (openInterest, premiumIndex) stamped further than this from our clock is not current: a
#: cached or replayed answer, or a clock that is wrong on one side.
MAX_CLOCK_SKEW_S = 300.0



class FapiError(Exception):
    """Any failure of a fapi call; the message names the endpoint."""


class FapiBanned(FapiError):
    """HTTP 418: the IP is banned. No request may be sent before `retry_after_s` has passed."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class FapiRateLimited(FapiError):
    """HTTP 429 that could not be waited out within the client's limits."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class FapiUnavailable(FapiError):
    """5xx, 408, timeouts or connection errors on every attempt."""


class FapiMalformedResponse(FapiError):
    """The body is not the JSON the endpoint documents."""


class FapiRequestError(FapiError):
    """A 4xx Binance rejected (bad parameter, auth, geo-block); retrying would not help."""


class FapiAuthMissing(FapiError):
    """A signed endpoint was called without BINANCE_API_KEY / BINANCE_API_SECRET."""


def kline_weight(limit: int) -> int:
    """Request weight of a klines-family call by `limit`: [1,100)→1, [100,500)→2, [500,1000]→5, >1000→10."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


def _retry_after_s(value: str | None) -> float | None:
    """Retry-After in seconds (Binance sends an integer), at most ban.MAX_BAN_S (a huge or infinite value is a
    ban of the longest kind, not an error); None when absent, unreadable, negative or NaN."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if math.isnan(seconds) or seconds < 0:
        return None
    return bounded_wait_s(seconds)


def _maker_flag(value: Any) -> bool | None:
    """aggTrades' `m` (buyer is maker): a JSON boolean, or the text true/false in any case; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    return None


def to_ms(moment: dt.datetime | dt.date) -> int:
    """Epoch milliseconds of a naive-UTC datetime or of midnight UTC of a date."""
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime.combine(moment, dt.time())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(round(moment.timestamp() * 1000))


def _ms_to_timestamp(values: Any) -> pd.Series:
    """Epoch ms (numbers or numeric strings) → naive UTC datetime64[ms]."""
    ms = pd.to_numeric(pd.Series(values), errors="raise").astype("int64")
    return pd.to_datetime(ms, unit="ms").astype("datetime64[ms]")


@dataclass(frozen=True)
class OpenInterest:
    symbol: str
    open_interest: float  # base asset
    time: dt.datetime  # naive UTC


@dataclass(frozen=True)
class PremiumIndex:
    symbol: str
    mark_price: float  # USDT
    index_price: float
    last_funding_rate: float  # current, not yet settled rate of the running interval
    interest_rate: float
    next_funding_time: dt.datetime
    time: dt.datetime


class FapiClient:
    """Thread-safe fapi client with a per-minute weight budget.

    - Before each request: if the weight used in the current minute (from the last
      `X-MBX-USED-WEIGHT-1M` header, or counted locally) plus the request's weight exceeds
      `weight_budget × weight_limit`, sleep until the next minute boundary (the window resets then).
    - 429: wait `Retry-After` (else to the next minute) and retry, up to `max_retries`; a wait longer than
      `max_wait_s` raises FapiRateLimited at once.
    - 418: raise FapiBanned and refuse every further request until the ban has passed (never retried).
    - 5xx, 408, timeouts and connection errors: retried with backoff `backoff_s × 2**attempt`.
    - Other 4xx: FapiRequestError with Binance's code and message.
    `clock` (epoch seconds) and `sleep` are injectable so tests run without real waits.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        weight_budget: float = DEFAULT_WEIGHT_BUDGET,
        weight_limit: int = WEIGHT_LIMIT_1M,
        timeout_s: float = 10.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_wait_s: float = 120.0,
        recv_window_ms: int = 5000,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        ban_memory: BanMemory | None = None,
    ) -> None:
        if not 0 < weight_budget <= 1:
            raise ValueError(f"weight_budget is a share of the per-minute limit in (0, 1], not {weight_budget}")
        if weight_limit <= 0 or timeout_s <= 0 or max_retries < 0 or backoff_s < 0 or max_wait_s < 0:
            raise ValueError("weight_limit and timeout_s must be > 0; max_retries, backoff_s, max_wait_s >= 0")
        self.base_url = (base_url or config.BINANCE_FAPI_URL).rstrip("/")
        self.api_key = api_key or None
        self.api_secret = api_secret or None
        self.weight_budget = weight_budget
        self.weight_limit = weight_limit
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.recv_window_ms = recv_window_ms
        self.clock = clock
        self.sleep = sleep
        self._own_session = session is None
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", USER_AGENT)
        self._lock = threading.Lock()
        self._used_weight = 0
        self._used_minute = -1
        self._banned_until = 0.0
        #: A 418 seen by another step or process (data/state/http-bans.json); None keeps it in this client only.
        self.ban_memory = ban_memory
        #: Seconds slept by the weight throttle (reported in metadata; asserted in tests).
        self.throttled_s = 0.0

    @classmethod
    def from_env(cls, base_url: str | None = None, **kwargs: Any) -> FapiClient:
        """Client configured from `LIQ_FAPI_URL`, `LIQ_WEIGHT_BUDGET`, `BINANCE_API_KEY`, `BINANCE_API_SECRET`."""
        env = os.environ.get
        budget = env("LIQ_WEIGHT_BUDGET", "").strip()
        try:
            weight_budget = float(budget) if budget else DEFAULT_WEIGHT_BUDGET
        except ValueError:
            weight_budget = math.nan
        if not 0 < weight_budget <= 1:
            raise config.ConfigError(f"LIQ_WEIGHT_BUDGET={budget!r} is not valid: expected a share of the per-minute "
                                     "limit in (0, 1], e.g. 0.8")
        kwargs.setdefault("ban_memory", BanMemory())
        return cls(
            base_url=base_url or env("LIQ_FAPI_URL", "").strip() or config.BINANCE_FAPI_URL,
            api_key=env("BINANCE_API_KEY", "").strip() or None,
            api_secret=env("BINANCE_API_SECRET", "").strip() or None,
            weight_budget=weight_budget,
            **kwargs,
        )

    @property
    def _host(self) -> str:
        return urllib.parse.urlsplit(self.base_url).netloc

    @property
    def has_keys(self) -> bool:
        return bool(self.api_key and self.api_secret)

    @property
    def used_weight(self) -> int:
        """Weight used in the current minute as last reported by Binance (or counted locally)."""
        with self._lock:
            return self._used_weight if self._used_minute == int(self.clock() // 60) else 0

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def __enter__(self) -> FapiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transport ----------------------------------------------------------------------------------
    def _reserve(self, weight: int, endpoint: str) -> None:
        """Block until `weight` fits the budget of the current minute, then count it as used."""
        with self._lock:
            now = self.clock()
            remembered = self.ban_memory.active(self._host) if self.ban_memory is not None else None
            if remembered is not None:
                self._banned_until = max(self._banned_until, remembered.until)
            if now < self._banned_until:
                raise FapiBanned(f"{endpoint}: not sent, the IP is banned by Binance (HTTP 418) for another "
                                 f"{self._banned_until - now:.0f} s", self._banned_until - now)
            minute = int(now // 60)
            if minute != self._used_minute:
                self._used_minute, self._used_weight = minute, 0
            if self._used_weight + weight > self.weight_budget * self.weight_limit:
                # Holding the lock while sleeping is intended: every thread must pause, not just this one.
                wait = 60.0 - (now % 60.0)
                self.throttled_s += wait
                self.sleep(wait)
                self._used_minute, self._used_weight = int(self.clock() // 60), 0
            self._used_weight += weight

    def _observe(self, response: requests.Response) -> None:
        header = response.headers.get("X-MBX-USED-WEIGHT-1M")
        if header is None:
            return
        try:
            used = int(float(header))
        except ValueError:
            return
        with self._lock:
            minute = int(self.clock() // 60)
            if minute != self._used_minute:
                self._used_minute = minute
            # The server's count is authoritative (other processes on this IP count too).
            self._used_weight = used

    def _sign(self, params: dict[str, Any]) -> dict[str, Any]:
        """Add timestamp, recvWindow and the HMAC-SHA256 signature of the query string (USER_DATA)."""
        signed = dict(params, timestamp=int(self.clock() * 1000), recvWindow=self.recv_window_ms)
        query = urllib.parse.urlencode(signed)
        signed["signature"] = hmac.new(self.api_secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        return signed

    def request(self, path: str, params: dict[str, Any] | None = None, weight: int = 1, signed: bool = False) -> Any:
        """GET `path` and return the decoded JSON body. See the class docstring for the retry rules."""
        endpoint = path
        params = {k: v for k, v in (params or {}).items() if v is not None}
        headers = {}
        if signed:
            if not self.has_keys:
                raise FapiAuthMissing(f"{endpoint} is a signed (USER_DATA) endpoint: set BINANCE_API_KEY and "
                                      "BINANCE_API_SECRET")
            headers["X-MBX-APIKEY"] = self.api_key
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            self._reserve(weight, endpoint)
            wait = self.backoff_s * 2**attempt
            query = self._sign(params) if signed else params
            try:
                response = self.session.get(self.base_url + path, params=query, headers=headers, timeout=self.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as e:
                last_problem = f"{type(e).__name__}: {e}"
            else:
                self._observe(response)
                status = response.status_code
                if status == 200:
                    return self._decode(response, endpoint)
                if status == 418:
                    ban = _retry_after_s(response.headers.get("Retry-After"))
                    ban = MIN_BAN_S if ban is None else ban
                    with self._lock:
                        self._banned_until = max(self._banned_until, self.clock() + ban)
                    if self.ban_memory is not None:
                        self.ban_memory.record(self._host, ban, f"HTTP 418 on {endpoint}")
                    raise FapiBanned(f"{endpoint}: HTTP 418, this IP is banned by Binance for continuing after "
                                     f"429s; no request will be sent for {ban:.0f} s (bans escalate to 3 days)", ban)
                if status == 429:
                    header = _retry_after_s(response.headers.get("Retry-After"))
                    wait = header if header is not None else 60.0 - (self.clock() % 60.0)
                    if wait > self.max_wait_s or attempt >= self.max_retries:
                        raise FapiRateLimited(f"{endpoint}: HTTP 429 rate limit (attempt {attempt + 1}); retry "
                                              f"after {wait:.0f} s", wait)
                    last_problem = "HTTP 429"
                elif status >= 500 or status == 408:
                    last_problem = f"HTTP {status}"
                else:
                    raise FapiRequestError(f"{endpoint}: HTTP {status} {self._binance_message(response)}")
            if attempt < self.max_retries:
                self.sleep(wait)
        raise FapiUnavailable(f"{endpoint}: failed after {self.max_retries + 1} attempts (last: {last_problem})")

    @staticmethod
    def _binance_message(response: requests.Response) -> str:
        try:
            body = response.json()
            return f"code {body.get('code')}: {body.get('msg')}"
        except (ValueError, AttributeError):
            return response.text[:200]

    @staticmethod
    def _decode(response: requests.Response, endpoint: str) -> Any:
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as e:
            raise FapiMalformedResponse(
                f"{endpoint}: response is not valid JSON ({e}); first bytes: {response.content[:80]!r}"
            ) from e

    # ---- shape helpers ------------------------------------------------------------------------------
    @staticmethod
    def _records(data: Any, endpoint: str, fields: tuple[str, ...]) -> pd.DataFrame:
        """A JSON list of objects → DataFrame holding at least `fields`."""
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise FapiMalformedResponse(f"{endpoint}: expected a JSON list of objects, got {type(data).__name__}")
        frame = pd.DataFrame.from_records(data, columns=None if data else list(fields))
        missing = [f for f in fields if f not in frame.columns]
        if missing:
            raise FapiMalformedResponse(f"{endpoint}: objects lack the field(s) {', '.join(missing)}")
        return frame

    @staticmethod
    def _numbers(frame: pd.DataFrame, endpoint: str, fields: tuple[str, ...], symbol: str | None = None,
                 times: tuple[str, ...] = (), ids: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """`fields` as finite float arrays; FapiMalformedResponse naming the field and the first bad record (and
        when `symbol` is given, any record whose own `symbol` is another one). `times` must be epoch ms within
        EPOCH_MS_RANGE, `ids` whole numbers in [0, MAX_ID)."""
        if symbol is not None and "symbol" in frame.columns and (frame["symbol"] != symbol).any():
            other = frame.loc[frame["symbol"] != symbol, "symbol"].iloc[0]
            raise FapiMalformedResponse(f"{endpoint}: field 'symbol' = {other!r}, but {symbol} was asked for")
        out = {}
        for f in fields:
            try:
                values = pd.to_numeric(frame[f], errors="raise").to_numpy(dtype=np.float64)
            except (ValueError, TypeError, OverflowError) as e:
                raise FapiMalformedResponse(f"{endpoint}: field {f!r} is not numeric ({e})") from e
            with np.errstate(invalid="ignore"):
                bad = ~np.isfinite(values)
                rule = "a finite number"
                if f in times:
                    bad |= (values < EPOCH_MS_RANGE[0]) | (values > EPOCH_MS_RANGE[1])
                    rule = "epoch milliseconds between 2019 and 2100"
                elif f in ids:
                    bad |= (values < 0) | (values >= MAX_ID) | (values != np.floor(values))
                    rule = "a whole number in [0, 2**53)"
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise FapiMalformedResponse(f"{endpoint}: field {f!r} = {frame[f].iloc[i]!r} in record {i + 1} is "
                                            f"not {rule}")
            out[f] = values
        return out

    @staticmethod
    def _object(data: Any, endpoint: str, fields: tuple[str, ...]) -> dict:
        if not isinstance(data, dict):
            raise FapiMalformedResponse(f"{endpoint}: expected a JSON object, got {type(data).__name__}")
        missing = [f for f in fields if f not in data]
        if missing:
            raise FapiMalformedResponse(f"{endpoint}: response lacks the field(s) {', '.join(missing)}")
        return data

    @staticmethod
    def _float(value: Any, endpoint: str, name: str, positive: bool = False) -> float:
        """A finite number (> 0 when `positive`); FapiMalformedResponse naming the field otherwise."""
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError) as e:
            raise FapiMalformedResponse(f"{endpoint}: field {name!r} = {value!r} is not a number") from e
        if not math.isfinite(number) or (positive and number <= 0):
            raise FapiMalformedResponse(f"{endpoint}: field {name!r} = {value!r} is not a finite number"
                                        f"{' > 0' if positive else ''}")
        return number

    @staticmethod
    def _echo(data: dict, endpoint: str, symbol: str) -> None:
        """The answer is about the symbol asked for (a proxy or cache can answer for another one)."""
        if "symbol" in data and data["symbol"] != symbol:
            raise FapiMalformedResponse(f"{endpoint}: field 'symbol' = {data['symbol']!r}, but {symbol} was asked for")

    def _epoch_ms(self, value: Any, endpoint: str, name: str) -> float:
        ms = self._float(value, endpoint, name)
        if not EPOCH_MS_RANGE[0] <= ms <= EPOCH_MS_RANGE[1]:
            raise FapiMalformedResponse(f"{endpoint}: field {name!r} = {value!r} is not epoch milliseconds between "
                                        "2019 and 2100")
        return ms

    def _fresh(self, value: Any, endpoint: str, name: str) -> dt.datetime:
        """A current value's timestamp (epoch ms) within MAX_CLOCK_SKEW_S of our clock, as naive UTC."""
        ms = self._epoch_ms(value, endpoint, name) if not isinstance(value, bool) else math.nan
        if math.isnan(ms):
            raise FapiMalformedResponse(f"{endpoint}: field {name!r} = {value!r} is not epoch milliseconds")
        skew_s = ms / 1000 - self.clock()
        if abs(skew_s) > MAX_CLOCK_SKEW_S:
            when = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).replace(tzinfo=None)
            raise FapiMalformedResponse(f"{endpoint}: field {name!r} = {value!r} ({when} UTC) is {abs(skew_s):,.0f} s "
                                        f"{'behind' if skew_s < 0 else 'ahead of'} our clock (at most "
                                        f"{MAX_CLOCK_SKEW_S:.0f} s): not a current value")
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).replace(tzinfo=None)

    # ---- current values -----------------------------------------------------------------------------
    def open_interest(self, symbol: str) -> OpenInterest:
        """Current open interest in base asset (`GET /fapi/v1/openInterest`, weight 1)."""
        ep = "/fapi/v1/openInterest"
        d = self._object(self.request(ep, {"symbol": symbol}, weight=1), ep, ("openInterest", "time"))
        self._echo(d, ep, symbol)
        return OpenInterest(symbol, self._float(d["openInterest"], ep, "openInterest", positive=True),
                            self._fresh(d["time"], ep, "time"))

    def premium_index(self, symbol: str) -> PremiumIndex:
        """Mark price and the running funding rate (`GET /fapi/v1/premiumIndex`, weight 1 with symbol)."""
        ep = "/fapi/v1/premiumIndex"
        d = self._object(self.request(ep, {"symbol": symbol}, weight=1), ep,
                         ("markPrice", "indexPrice", "lastFundingRate", "interestRate", "nextFundingTime", "time"))
        self._echo(d, ep, symbol)
        next_ms = self._epoch_ms(d["nextFundingTime"], ep, "nextFundingTime")
        return PremiumIndex(
            symbol, self._float(d["markPrice"], ep, "markPrice", positive=True),
            self._float(d["indexPrice"], ep, "indexPrice", positive=True),
            self._float(d["lastFundingRate"], ep, "lastFundingRate"),
            self._float(d["interestRate"], ep, "interestRate"),
            _ms_to_timestamp([int(next_ms)]).iloc[0].to_pydatetime(), self._fresh(d["time"], ep, "time"),
        )

    def exchange_info(self) -> dict:
        """`GET /fapi/v1/exchangeInfo` (weight 1) as decoded JSON; `symbols` is checked to be a list."""
        ep = "/fapi/v1/exchangeInfo"
        d = self._object(self.request(ep, weight=1), ep, ("symbols",))
        if not isinstance(d["symbols"], list):
            raise FapiMalformedResponse(f"{ep}: 'symbols' is not a list")
        return d

    def leverage_brackets(self, symbol: str) -> list[dict]:
        """Tiers of `symbol` from the signed `GET /fapi/v1/leverageBracket` (USER_DATA, weight 1).

        Returns dicts with bracket, initialLeverage, notionalFloor, notionalCap, maintMarginRatio, cum as
        numbers. Binance answers a single object when `symbol` is sent, a list without; both are accepted.
        """
        ep = "/fapi/v1/leverageBracket"
        data = self.request(ep, {"symbol": symbol}, weight=1, signed=True)
        if isinstance(data, list):
            data = next((d for d in data if isinstance(d, dict) and d.get("symbol") == symbol), None)
            if data is None:
                raise FapiMalformedResponse(f"{ep}: no entry for {symbol} in the list returned")
        d = self._object(data, ep, ("brackets",))
        fields = ("bracket", "initialLeverage", "notionalFloor", "notionalCap", "maintMarginRatio", "cum")
        frame = self._records(d["brackets"], ep, fields)
        if frame.empty:
            raise FapiMalformedResponse(f"{ep}: {symbol} has no brackets")
        nums = self._numbers(frame, ep, fields)
        return [dict(zip(fields, row, strict=True)) for row in zip(*(nums[f].tolist() for f in fields), strict=True)]

    # ---- history --------------------------------------------------------------------------------------
    def klines(self, symbol: str, interval: str, start_ms: int, end_ms: int, mark: bool = False) -> pd.DataFrame:
        """Closed klines with open_time in [start_ms, end_ms], paged by 1,500 (`/fapi/v1/klines` or
        `/fapi/v1/markPriceKlines`). Columns as the archive CSV (formats.KLINES_COLUMNS without `ignore`),
        times as naive UTC. The still-open candle (close_time ≥ now) is dropped (binance-data.md §5.4)."""
        if interval not in config.KLINE_INTERVAL_MS:
            raise ValueError(f"kline interval must be one of {tuple(config.KLINE_INTERVAL_MS)}, not {interval!r}")
        ep = "/fapi/v1/markPriceKlines" if mark else "/fapi/v1/klines"
        step = config.KLINE_INTERVAL_MS[interval]
        pages: list[list] = []
        cursor = start_ms
        while cursor <= end_ms:
            limit = min(KLINES_MAX_LIMIT, (end_ms - cursor) // step + 1)
            data = self.request(ep, {"symbol": symbol, "interval": interval, "startTime": cursor,
                                     "endTime": end_ms, "limit": int(limit)}, weight=kline_weight(int(limit)))
            if not isinstance(data, list) or not all(isinstance(r, list) and len(r) >= 11 for r in data):
                raise FapiMalformedResponse(f"{ep}: expected a list of 12-element kline arrays")
            if not data:
                break
            pages.extend(data)
            try:
                last_open = int(data[-1][0])
            except (TypeError, ValueError, OverflowError):
                raise FapiMalformedResponse(f"{ep}: open time {data[-1][0]!r} of the last kline is not a number") from None
            if len(data) < limit or last_open + step > end_ms:
                break
            cursor = last_open + step
        names = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
                 "taker_buy_volume", "taker_buy_quote_volume")
        frame = pd.DataFrame([r[:11] for r in pages], columns=list(names))
        nums = self._numbers(frame, ep, names, times=("open_time", "close_time"))
        now_ms = self.clock() * 1000
        keep = (nums["close_time"] < now_ms) & (nums["open_time"] >= start_ms) & (nums["open_time"] <= end_ms)
        out = pd.DataFrame({n: nums[n][keep] for n in names})
        out["count"] = out["count"].astype("int64")
        for col in ("open_time", "close_time"):
            out[col] = _ms_to_timestamp(out[col].astype("int64").to_numpy()).to_numpy()
        return out.drop_duplicates("open_time").sort_values("open_time", ignore_index=True)

    def agg_trades(self, symbol: str, start_ms: int, end_ms: int, max_requests: int = 100_000) -> pd.DataFrame:
        """Aggregate trades with transact time in [start_ms, end_ms] (`/fapi/v1/aggTrades`, weight 20).

        Paging within the documented limits: a time window (< 1 h, limit 1,000) finds the first trade,
        then `fromId = last id + 1` (without times) pages forward 1,000 at a time; an empty window moves
        on by one hour. Columns as raw.agg_trades (times naive UTC).
        """
        ep = "/fapi/v1/aggTrades"
        fields = ("a", "p", "q", "f", "l", "T", "m")
        frames: list[pd.DataFrame] = []
        window_start, next_id, requests_made = start_ms, None, 0
        while True:
            if requests_made >= max_requests:
                raise FapiError(f"{ep}: {symbol} needs more than max_requests={max_requests} pages")
            requests_made += 1
            if next_id is None:
                window_end = min(window_start + AGG_TRADES_MAX_WINDOW_MS, end_ms)
                params = {"symbol": symbol, "startTime": window_start, "endTime": window_end,
                          "limit": AGG_TRADES_MAX_LIMIT}
            else:
                params = {"symbol": symbol, "fromId": next_id, "limit": AGG_TRADES_MAX_LIMIT}
            page = self._records(self.request(ep, params, weight=20), ep, fields)
            if page.empty:
                if next_id is not None:
                    break  # nothing after the last id: caught up with the present
                if window_end >= end_ms:
                    break
                window_start = window_end + 1
                continue
            nums = self._numbers(page, ep, ("a", "p", "q", "f", "l", "T"), times=("T",), ids=("a", "f", "l"))
            maker = page["m"].map(_maker_flag)
            if maker.isna().any():  # the archive's rule: true or false, nothing else
                raise FapiMalformedResponse(f"{ep}: field 'm' = {page['m'][maker.isna()].iloc[0]!r} is not true or false")
            frames.append(pd.DataFrame({
                "agg_trade_id": nums["a"].astype(np.int64), "price": nums["p"], "quantity": nums["q"],
                "first_trade_id": nums["f"].astype(np.int64), "last_trade_id": nums["l"].astype(np.int64),
                "transact_ms": nums["T"].astype(np.int64),
                "is_buyer_maker": maker.astype(bool).to_numpy(),
            }))
            if nums["T"].max() > end_ms or (next_id is None and len(page) < AGG_TRADES_MAX_LIMIT and window_end >= end_ms):
                break
            if next_id is None and len(page) < AGG_TRADES_MAX_LIMIT:
                window_start = window_end + 1  # the window is exhausted; look at the next hour
                continue
            next_id = int(nums["a"].max()) + 1
        columns = ["agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_ms",
                   "is_buyer_maker"]
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({c: [] for c in columns})
        out = out[(out["transact_ms"] >= start_ms) & (out["transact_ms"] <= end_ms)]
        out = out.drop_duplicates("agg_trade_id").sort_values("agg_trade_id", ignore_index=True)
        out["transact_time"] = _ms_to_timestamp(out["transact_ms"].astype("int64").to_numpy()).to_numpy()
        return out.drop(columns="transact_ms")

    def open_interest_hist(self, symbol: str, start_ms: int, end_ms: int, period: str = "5m") -> pd.DataFrame:
        """OI samples in [start_ms, end_ms] from `/futures/data/openInterestHist` (500 per page).

        Only the latest 30 days are served: an older `start_ms` raises ValueError (use the metrics
        archive). Columns: create_time (naive UTC), sum_open_interest (base), sum_open_interest_value (USDT).
        """
        ep = "/futures/data/openInterestHist"
        if period not in OI_HIST_PERIODS_MS:
            raise ValueError(f"openInterestHist period must be one of {tuple(OI_HIST_PERIODS_MS)}, not {period!r}")
        oldest_ms = (self.clock() - OI_HIST_MAX_AGE_DAYS * 86_400) * 1000
        if start_ms < oldest_ms:
            raise ValueError(f"{ep} serves only the latest {OI_HIST_MAX_AGE_DAYS} days; {symbol} from "
                             f"{pd.to_datetime(start_ms, unit='ms')} must come from the metrics archive")
        step = OI_HIST_PERIODS_MS[period]
        fields = ("sumOpenInterest", "sumOpenInterestValue", "timestamp")
        frames, cursor = [], start_ms
        while cursor <= end_ms:
            page = self._records(self.request(ep, {"symbol": symbol, "period": period, "startTime": cursor,
                                                   "endTime": end_ms, "limit": OI_HIST_MAX_LIMIT}, weight=0), ep, fields)
            if page.empty:
                break
            nums = self._numbers(page, ep, fields, symbol, times=("timestamp",))
            frames.append(pd.DataFrame({"ts_ms": nums["timestamp"].astype(np.int64),
                                        "sum_open_interest": nums["sumOpenInterest"],
                                        "sum_open_interest_value": nums["sumOpenInterestValue"]}))
            if len(page) < OI_HIST_MAX_LIMIT:
                break
            cursor = int(nums["timestamp"].max()) + step
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            {"ts_ms": np.array([], dtype=np.int64), "sum_open_interest": [], "sum_open_interest_value": []})
        out = out[(out["ts_ms"] >= start_ms) & (out["ts_ms"] <= end_ms)].drop_duplicates("ts_ms", keep="last")
        out = out.sort_values("ts_ms", ignore_index=True)
        out["create_time"] = _ms_to_timestamp(out["ts_ms"].to_numpy()).to_numpy()
        return out.drop(columns="ts_ms")

    def funding_rates(self, symbol: str, start_ms: int, end_ms: int | None = None) -> pd.DataFrame:
        """Settled funding in [start_ms, end_ms] from `/fapi/v1/fundingRate`, paged by 1,000 with
        `startTime = last fundingTime + 1` (binance-data.md §5.6). Columns: funding_time (naive UTC),
        funding_rate, mark_price (NaN when absent)."""
        ep = "/fapi/v1/fundingRate"
        frames, cursor = [], start_ms
        while end_ms is None or cursor <= end_ms:
            page = self._records(self.request(ep, {"symbol": symbol, "startTime": cursor, "endTime": end_ms,
                                                   "limit": FUNDING_MAX_LIMIT}, weight=1), ep,
                                 ("fundingTime", "fundingRate"))
            if page.empty:
                break
            nums = self._numbers(page, ep, ("fundingTime", "fundingRate"), symbol, times=("fundingTime",))
            mark = (pd.to_numeric(page["markPrice"], errors="coerce").to_numpy(dtype=np.float64)
                    if "markPrice" in page.columns else np.full(len(page), np.nan))
            frames.append(pd.DataFrame({"ts_ms": nums["fundingTime"].astype(np.int64),
                                        "funding_rate": nums["fundingRate"], "mark_price": mark}))
            if len(page) < FUNDING_MAX_LIMIT:
                break
            cursor = int(nums["fundingTime"].max()) + 1
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            {"ts_ms": np.array([], dtype=np.int64), "funding_rate": [], "mark_price": []})
        # An answer may carry settlements outside the asked window (a 2019 fundingTime once passed): keep the window.
        inside = out["ts_ms"] >= start_ms if end_ms is None else out["ts_ms"].between(start_ms, end_ms)
        out = out[inside].drop_duplicates("ts_ms").sort_values("ts_ms", ignore_index=True)
        out["funding_time"] = _ms_to_timestamp(out["ts_ms"].to_numpy()).to_numpy()
        return out

    def last_funding(self, symbol: str, lookback_days: int = 3) -> pd.DataFrame:
        """The settlements of the last `lookback_days` (enough to see the last one and the interval)."""
        now_ms = int(self.clock() * 1000)
        return self.funding_rates(symbol, now_ms - lookback_days * 86_400_000, now_ms)
