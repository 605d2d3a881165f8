"""FapiClient against the fake exchange on 127.0.0.1: paging limits, weight budget, 429/418, timeouts,
5xx, malformed JSON and the signed endpoint. A fake clock replaces every real wait."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from liq_pipeline.market import rest
from liq_pipeline.market.rest import (
    FapiAuthMissing,
    FapiBanned,
    FapiClient,
    FapiMalformedResponse,
    FapiRateLimited,
    FapiRequestError,
    FapiUnavailable,
    to_ms,
)
from liq_pipeline_tests.support.fake_exchange import DAY_MS, FakeExchange, MarketData, Scripted, day_ms


class FakeClock:
    """Epoch seconds that only move when the client sleeps (or the test says so)."""

    def __init__(self, t: float) -> None:
        self.t = t
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


@pytest.fixture
def exchange():
    with FakeExchange() as ex:
        yield ex


def client_for(ex: FakeExchange, clock: FakeClock | None = None, **kw) -> tuple[FapiClient, FakeClock]:
    clock = clock or FakeClock(ex.now_ms / 1000)
    # Generous for the tests that are not about timeouts (those set their own): at load 19 a 1,500-kline page
    # from the local server once took over 2 s, and the retry made a third request.
    kw.setdefault("timeout_s", 10.0)
    return FapiClient(base_url=ex.url, clock=clock, sleep=clock.sleep, **kw), clock


def test_klines_page_by_1500_and_parse_numbers(exchange):
    client, _ = client_for(exchange)
    d = exchange.data
    start = day_ms(d.first_day)
    frame = client.klines(d.symbol, "1m", start, start + 2 * DAY_MS - 1)
    assert len(frame) == 2880
    assert all(int(p["limit"]) <= 1500 for p in exchange.calls("/fapi/v1/klines"))
    assert len(exchange.calls("/fapi/v1/klines")) == 2
    np.testing.assert_allclose(frame["close"].to_numpy(), d.kline_close[:2880])
    assert frame["close"].dtype == np.float64 and frame["count"].dtype == np.int64
    assert frame["open_time"].iloc[0] == dt.datetime.combine(d.first_day, dt.time())
    assert (frame["open_time"].diff().dropna() == dt.timedelta(minutes=1)).all()


def test_klines_drop_the_still_open_candle(exchange):
    d = exchange.data
    exchange.now_ms = day_ms(d.first_day) + 10 * 60_000 + 30_000  # 00:10:30: candle 00:10 is still open
    client, _ = client_for(exchange)
    frame = client.klines(d.symbol, "1m", day_ms(d.first_day), day_ms(d.first_day) + DAY_MS - 1, mark=True)
    assert len(frame) == 10
    assert exchange.calls("/fapi/v1/markPriceKlines")


def test_agg_trades_page_with_from_id_or_windows_under_one_hour(exchange):
    client, _ = client_for(exchange)
    d = exchange.data
    day = d.first_day + dt.timedelta(days=1)
    start = day_ms(day)
    frame = client.agg_trades(d.symbol, start, start + DAY_MS - 1)
    expected = d.trade_id[(d.trade_ms >= start) & (d.trade_ms < start + DAY_MS)]
    np.testing.assert_array_equal(frame["agg_trade_id"].to_numpy(), expected)
    assert frame["transact_time"].min() >= dt.datetime.combine(day, dt.time())
    assert frame["is_buyer_maker"].dtype == bool and frame["is_buyer_maker"].any() and not frame["is_buyer_maker"].all()
    for p in exchange.calls("/fapi/v1/aggTrades"):
        assert int(p["limit"]) <= 1000
        assert ("fromId" in p) != ("startTime" in p)
        if "startTime" in p:
            assert int(p["endTime"]) - int(p["startTime"]) < 3_600_000


def test_weight_budget_pauses_until_next_minute(exchange):
    # 15 s before a minute boundary, near the exchange's own clock (answers stamped far from ours are refused)
    clock = FakeClock((exchange.now_ms // 60_000) * 60 + 45.0)
    client, clock = client_for(exchange, clock, weight_budget=0.8)
    exchange.used_weight = 1_900  # 80 % of 2,400 is 1,920
    client.open_interest(exchange.data.symbol)  # learns 1,900 from the header, no pause needed
    assert clock.sleeps == [] and client.used_weight == 1_900
    client.premium_index(exchange.data.symbol)  # 1,900 + 1 fits
    assert clock.sleeps == []
    exchange.used_weight = 10
    # aggTrades weighs 20: 1,900 + 20 = 1,920 is not above the budget, 1,901 + 20 is.
    client._used_weight = 1_901
    client.agg_trades(exchange.data.symbol, day_ms(exchange.data.first_day), day_ms(exchange.data.first_day) + 60_000)
    assert clock.sleeps and clock.sleeps[0] == pytest.approx(15.0)
    assert client.throttled_s == pytest.approx(15.0)
    assert client.used_weight == 10  # the new minute's count comes from the server again


def test_429_waits_retry_after_then_succeeds(exchange):
    client, clock = client_for(exchange)
    exchange.script("/fapi/v1/openInterest", Scripted(429, {"code": -1003, "msg": "Too many requests"},
                                                      {"Retry-After": "7"}))
    oi = client.open_interest(exchange.data.symbol)
    assert oi.open_interest == pytest.approx(float(exchange.data.oi_base[-1]))
    assert clock.sleeps == [7.0]
    assert len(exchange.calls("/fapi/v1/openInterest")) == 2


def test_429_with_too_long_retry_after_raises(exchange):
    client, clock = client_for(exchange, max_wait_s=30)
    exchange.script("/fapi/v1/openInterest", Scripted(429, {"code": -1003}, {"Retry-After": "600"}))
    with pytest.raises(FapiRateLimited, match="openInterest.*429") as info:
        client.open_interest(exchange.data.symbol)
    assert info.value.retry_after_s == 600 and clock.sleeps == []


def test_418_raises_and_no_request_is_sent_before_the_ban_ends(exchange):
    client, clock = client_for(exchange)
    exchange.script("/fapi/v1/premiumIndex", Scripted(418, {"code": -1003, "msg": "banned"}, {"Retry-After": "300"}))
    with pytest.raises(FapiBanned, match="418") as info:
        client.premium_index(exchange.data.symbol)
    assert info.value.retry_after_s == 300
    sent = len(exchange.requests)
    with pytest.raises(FapiBanned, match="not sent"):
        client.open_interest(exchange.data.symbol)
    assert len(exchange.requests) == sent and clock.sleeps == []
    clock.t += 301
    exchange.now_ms += 301_000  # the exchange's clock moves on too
    assert client.open_interest(exchange.data.symbol).open_interest > 0


def test_timeouts_are_retried_then_reported(exchange):
    client, clock = client_for(exchange, timeout_s=0.2, max_retries=1, backoff_s=0.5)
    exchange.script("/fapi/v1/openInterest", Scripted(delay_s=0.6), Scripted(delay_s=0.6))
    with pytest.raises(FapiUnavailable, match="openInterest.*2 attempts.*Timeout"):
        client.open_interest(exchange.data.symbol)
    assert clock.sleeps == [0.5]


def test_a_slow_answer_then_a_fast_one_succeeds(exchange):
    client, _ = client_for(exchange, timeout_s=0.2, max_retries=2)
    exchange.script("/fapi/v1/premiumIndex", Scripted(delay_s=0.6))
    assert client.premium_index(exchange.data.symbol).mark_price == pytest.approx(exchange.mark_price)


def test_5xx_retried_with_backoff(exchange):
    client, clock = client_for(exchange, max_retries=3, backoff_s=1.0)
    exchange.script("/fapi/v1/exchangeInfo", Scripted(503, {"code": -1000, "msg": "Unknown error"}),
                    Scripted(502, b"bad gateway"))
    info = client.exchange_info()
    assert info["symbols"][0]["symbol"] == exchange.data.symbol
    assert clock.sleeps == [1.0, 2.0]


def test_other_4xx_is_not_retried(exchange):
    client, _ = client_for(exchange)
    with pytest.raises(FapiRequestError, match="klines: HTTP 400 code -1120"):
        client.klines(exchange.data.symbol, "5m", 0, 1)
    assert len(exchange.calls("/fapi/v1/klines")) == 1


def test_malformed_json_names_the_endpoint(exchange):
    client, _ = client_for(exchange)
    exchange.script("/fapi/v1/premiumIndex", Scripted(200, b'{"symbol": "BTCUSDT", "markPrice": '))
    with pytest.raises(FapiMalformedResponse, match="/fapi/v1/premiumIndex: response is not valid JSON"):
        client.premium_index(exchange.data.symbol)
    exchange.script("/fapi/v1/openInterest", Scripted(200, {"symbol": "BTCUSDT", "openInterest": "abc", "time": 1}))
    with pytest.raises(FapiMalformedResponse, match="openInterest.*not a number"):
        client.open_interest(exchange.data.symbol)


def test_open_interest_hist_refuses_beyond_30_days_and_pages_by_500(exchange, monkeypatch):
    client, _ = client_for(exchange)
    d = exchange.data
    with pytest.raises(ValueError, match="latest 30 days"):
        client.open_interest_hist(d.symbol, exchange.now_ms - 31 * DAY_MS, exchange.now_ms)
    start = day_ms(d.first_day)
    frame = client.open_interest_hist(d.symbol, start, start + 2 * DAY_MS - 1)
    assert len(frame) == 576
    assert all(int(p["limit"]) <= 500 for p in exchange.calls("/futures/data/openInterestHist"))
    assert len(exchange.calls("/futures/data/openInterestHist")) == 2
    np.testing.assert_allclose(frame["sum_open_interest"].to_numpy(), d.oi_base[:576])


def test_funding_pages_with_start_time_last_plus_one(exchange, monkeypatch):
    monkeypatch.setattr(rest, "FUNDING_MAX_LIMIT", 4)
    client, _ = client_for(exchange)
    d = exchange.data
    frame = client.funding_rates(d.symbol, int(d.funding_ms[0]), exchange.now_ms)
    np.testing.assert_array_equal(frame["ts_ms"].to_numpy(), d.funding_ms)
    calls = exchange.calls("/fapi/v1/fundingRate")
    assert int(calls[1]["startTime"]) == int(d.funding_ms[3]) + 1
    np.testing.assert_allclose(frame["funding_rate"].to_numpy(), d.funding_rate)


def test_signed_leverage_bracket(exchange):
    client, _ = client_for(exchange, api_key="test-key", api_secret="test-secret")
    tiers = client.leverage_brackets("BTCUSDT")
    assert [t["maintMarginRatio"] for t in tiers] == [0.004, 0.005, 0.01]
    sent = exchange.requests[-1]
    assert sent[2]["X-MBX-APIKEY"] == "test-key" and "timestamp" in sent[1] and "signature" in sent[1]

    wrong, _ = client_for(exchange, api_key="test-key", api_secret="other")
    with pytest.raises(FapiRequestError, match="401"):
        wrong.leverage_brackets("BTCUSDT")
    keyless, _ = client_for(exchange)
    with pytest.raises(FapiAuthMissing, match="BINANCE_API_KEY"):
        keyless.leverage_brackets("BTCUSDT")


def test_from_env_reads_url_budget_and_keys(monkeypatch):
    monkeypatch.setenv("LIQ_FAPI_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("LIQ_WEIGHT_BUDGET", "0.5")
    monkeypatch.setenv("BINANCE_API_KEY", "k")
    monkeypatch.setenv("BINANCE_API_SECRET", "s")
    client = FapiClient.from_env()
    assert client.base_url == "http://127.0.0.1:9" and client.weight_budget == 0.5 and client.has_keys
    monkeypatch.setenv("LIQ_WEIGHT_BUDGET", "lots")
    with pytest.raises(ValueError, match="LIQ_WEIGHT_BUDGET"):
        FapiClient.from_env()


def test_to_ms_is_utc_midnight():
    assert to_ms(dt.date(2026, 3, 1)) == day_ms(dt.date(2026, 3, 1)) == 1_772_323_200_000
    assert isinstance(MarketData().trade_ms, np.ndarray)
