"""`/fapi/v1/fundingRate` answers carrying settlements outside the asked window: the reader keeps only the
window, as the other history readers do (found by the generated REST answers of test_hostile_inputs.py: a
fundingTime of 2019-01-01 came back as a settlement of the last day)."""

from __future__ import annotations

from liq_pipeline.market.rest import FapiClient
from liq_pipeline_tests.support.fake_exchange import DAY_MS, FakeExchange, Scripted

OLD_MS = 1_546_300_800_000  # 2019-01-01 00:00 UTC


def test_funding_settlements_outside_the_asked_window_are_dropped():
    with FakeExchange() as exchange:
        now = exchange.now_ms
        inside = now - 8 * 3_600_000
        exchange.script("/fapi/v1/fundingRate", Scripted(200, [
            {"symbol": "BTCUSDT", "fundingTime": OLD_MS, "fundingRate": "0.0001", "markPrice": "50000"},
            {"symbol": "BTCUSDT", "fundingTime": inside, "fundingRate": "0.0002", "markPrice": "50000"},
            {"symbol": "BTCUSDT", "fundingTime": now + DAY_MS, "fundingRate": "0.0003", "markPrice": "50000"}]))
        client = FapiClient(base_url=exchange.url, clock=lambda: now / 1000, sleep=lambda s: None, timeout_s=2.0)
        frame = client.funding_rates("BTCUSDT", now - DAY_MS, now)
    assert frame["ts_ms"].tolist() == [inside]
    assert frame["funding_rate"].tolist() == [0.0002]
