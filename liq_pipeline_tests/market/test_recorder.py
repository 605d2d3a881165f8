"""Realized-liquidation recorder: parsing, dedupe, batching, and a real WebSocket on 127.0.0.1 that drops
the connection mid-stream."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket

import duckdb
import pytest

from liq_pipeline.market.recorder import (
    LiquidationBuffer,
    MalformedEvent,
    append_liquidations,
    events_frame,
    parse_force_orders,
    record_liquidations,
)
from liq_pipeline_tests.support.fake_exchange import FakeForceOrderStream, force_order_event


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield c
    c.close()


def stored(con) -> list[tuple]:
    return con.execute("SELECT symbol, trade_time, side, price, quantity FROM raw.realized_liquidations "
                       "ORDER BY trade_time").fetchall()


def test_parse_maps_sell_to_long_and_reads_numbers():
    e = parse_force_orders(force_order_event(0, side="SELL"))[0]
    assert e["side"] == "long" and e["price"] == 50_000.0 and e["quantity"] == pytest.approx(0.1)
    assert parse_force_orders(force_order_event(0, side="BUY"))[0]["side"] == "short"
    wrapped = json.dumps({"stream": "!forceOrder@arr", "data": json.loads(force_order_event(1))})
    assert parse_force_orders(wrapped)[0]["trade_ms"] == json.loads(force_order_event(1))["o"]["T"]


@pytest.mark.parametrize("message", ["not json", '{"e": "aggTrade"}', '{"e": "forceOrder", "o": {"s": "X", "S": "HOLD"}}'])
def test_parse_rejects_malformed_messages(message):
    with pytest.raises(MalformedEvent, match="forceOrder stream"):
        parse_force_orders(message)


def test_frame_notional_and_day():
    frame = events_frame(parse_force_orders(force_order_event(2)))
    row = frame.iloc[0]
    assert row["notional_usd"] == pytest.approx(50_008.0 * 0.12)
    assert row["day"] == dt.date(2026, 3, 1) and row["source"] == "forceOrder_ws"


def test_append_dedupes_within_and_across_batches(con):
    events = [parse_force_orders(force_order_event(i))[0] for i in range(3)]
    assert append_liquidations(con, events_frame(events + events[:1])) == 3
    assert append_liquidations(con, events_frame(events[1:] + [parse_force_orders(force_order_event(3))[0]])) == 1
    assert len(stored(con)) == 4


def test_buffer_writes_in_batches(con):
    buffer = LiquidationBuffer(con, batch_size=3, flush_interval_s=3600)
    buffer.add(parse_force_orders(force_order_event(0)) + parse_force_orders(force_order_event(1)))
    assert not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'realized_liquidations'"
                           ).fetchone()[0]
    buffer.add(parse_force_orders(force_order_event(2)))
    assert len(stored(con)) == 3 and buffer.pending == []


def test_buffer_keeps_only_requested_symbols(con):
    buffer = LiquidationBuffer(con, symbols=frozenset({"ETHUSDT"}), batch_size=1)
    assert buffer.add(parse_force_orders(force_order_event(0, symbol="BTCUSDT"))) == 0
    assert buffer.add(parse_force_orders(force_order_event(1, symbol="ETHUSDT"))) == 1
    assert [r[0] for r in stored(con)] == ["ETHUSDT"]


def test_recorder_survives_a_disconnect_without_loss_or_duplicates(con):
    first = [force_order_event(i) for i in range(5)]
    # After the reconnect the server re-sends the last two events, then new ones.
    second = [force_order_event(i) for i in range(3, 10)]
    with FakeForceOrderStream([first, second]) as server:
        buffer = LiquidationBuffer(con, batch_size=4, flush_interval_s=3600)
        stats = asyncio.run(record_liquidations(buffer, server.url, max_events=12, duration_s=10,
                                                backoff_s=0.01))
    assert stats.received == 12 and stats.reconnects >= 1 and stats.connections >= 2
    rows = stored(con)
    expected = [parse_force_orders(force_order_event(i))[0] for i in range(10)]
    assert len(rows) == 10 == stats.inserted
    assert [r[3] for r in rows] == [e["price"] for e in expected]


def test_recorder_stops_after_duration_on_a_silent_stream(con):
    with FakeForceOrderStream([]) as server:
        stats = asyncio.run(record_liquidations(LiquidationBuffer(con), server.url, duration_s=0.3))
    assert stats.received == 0 and stats.connections == 1 and stats.reconnects == 0


def test_recorder_gives_up_after_max_reconnects_with_backoff(con):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError, match="gave up after 3 failed connections"):
        asyncio.run(record_liquidations(LiquidationBuffer(con), f"ws://127.0.0.1:{port}/ws", duration_s=10,
                                        backoff_s=0.01, max_reconnects=2))
