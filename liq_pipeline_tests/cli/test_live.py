"""The live layer against the fake exchange: REST gap fill, the archive-published sensor, live signals
within a time budget (with a partial outage), the "now" heatmap, and the bracket refresh asset."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time

import dagster as dg
import duckdb
import numpy as np
import pytest
from dagster_duckdb import DuckDBResource

from liq_pipeline import partitions
from liq_pipeline.assets.live import archive_day_published_sensor, leverage_brackets, rest_gap_fill
from liq_pipeline.market.formats import KLINES_COLUMNS, ArchiveFile
from liq_pipeline.market.rest import FapiClient
from liq_pipeline.model import variants
from liq_pipeline.model.margin import load_bracket_tables, table_for
from liq_pipeline.pipeline import live
from liq_pipeline.pipeline.flow_day import map_mix, map_scale, materialize_flow_day
from liq_pipeline.pipeline.live import (
    BaselineSignals,
    fetch_live_signals,
    fill_day_from_rest,
    funding_interval_hours,
)
from liq_pipeline.resources import MarketSource
from liq_pipeline.warehouse.readers.flow import load_book
from liq_pipeline.warehouse.schema import ensure_tables
from liq_pipeline_tests.support.fake_exchange import DAY_MS, FakeExchange, Scripted, day_ms
from liq_pipeline_tests.support.mirror_fixture import write_zip


@pytest.fixture
def exchange():
    with FakeExchange() as ex:
        yield ex


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield c
    c.close()


def make_client(ex: FakeExchange, **kw) -> FapiClient:
    kw.setdefault("timeout_s", 2.0)
    return FapiClient(base_url=ex.url, clock=lambda: ex.now_ms / 1000, sleep=lambda s: None, **kw)


# ---------------------------------------------------------------------------------------------- gap fill
def test_fill_day_from_rest_writes_every_raw_table_tagged_rest(exchange, con):
    d = exchange.data
    day = d.first_day + dt.timedelta(days=1)
    result = fill_day_from_rest(con, make_client(exchange), d.symbol, day)
    start = day_ms(day)
    n_trades = int(((d.trade_ms >= start) & (d.trade_ms < start + DAY_MS)).sum())
    assert result.rows == {"raw.klines": 1440, "raw.mark_price_klines": 1440, "raw.agg_trades": n_trades,
                           "raw.open_interest": 288, "raw.funding_rates": 3}
    assert result.skipped == {}
    for table in ("raw.klines", "raw.mark_price_klines", "raw.open_interest", "raw.funding_rates"):
        assert con.execute(f"SELECT DISTINCT source FROM {table}").fetchall() == [("rest",)]
    log = con.execute("SELECT table_name, status, rows FROM raw.ingest_log ORDER BY table_name").fetchall()
    assert [(t, s) for t, s, _ in log] == [(t, "rest") for t in sorted(result.rows)]
    assert {t: r for t, _, r in log} == result.rows
    # Values, not just counts: the first close, the trade ids of the day, the 8h funding.
    first_close = con.execute("SELECT close FROM raw.klines ORDER BY open_time LIMIT 1").fetchone()[0]
    assert first_close == pytest.approx(d.kline_close[1440])
    lo, hi = con.execute("SELECT min(agg_trade_id), max(agg_trade_id) FROM raw.agg_trades").fetchone()
    assert hi - lo + 1 == n_trades
    funding = con.execute("SELECT funding_interval_hours, last_funding_rate, funding_rate_8h FROM raw.funding_rates "
                          "ORDER BY funding_time").fetchall()
    assert all(h == 8 and r == pytest.approx(r8) for h, r, r8 in funding)
    assert con.execute("SELECT count(*) FROM raw.open_interest WHERE is_stale").fetchone()[0] == 0
    # Idempotent: the same day again replaces, never duplicates.
    again = fill_day_from_rest(con, make_client(exchange), d.symbol, day)
    assert again.rows == result.rows
    assert con.execute("SELECT count(*) FROM raw.ingest_log").fetchone()[0] == 5


def test_fill_day_skips_oi_outside_the_30_day_window(exchange, con):
    exchange.now_ms += 40 * DAY_MS
    d = exchange.data
    result = fill_day_from_rest(con, make_client(exchange), d.symbol, d.first_day)
    assert "raw.open_interest" in result.skipped and "30 days" in result.skipped["raw.open_interest"]
    assert result.rows["raw.klines"] == 1440
    assert con.execute("SELECT count(*) FROM raw.ingest_log WHERE table_name = 'raw.open_interest'").fetchone()[0] == 0


def test_fill_day_refuses_a_future_day(exchange, con):
    with pytest.raises(ValueError, match="has not started"):
        fill_day_from_rest(con, make_client(exchange), "BTCUSDT", dt.date(2030, 1, 1))


def test_funding_interval_from_settlement_spacing():
    h = 3_600_000
    np.testing.assert_array_equal(funding_interval_hours(np.array([0, 8 * h + 1, 16 * h, 20 * h])), [8, 8, 8, 4])
    np.testing.assert_array_equal(funding_interval_hours(np.array([5])), [8])


def test_rest_gap_fill_asset_reports_rows_and_skips(exchange, tmp_path, monkeypatch):
    monkeypatch.setenv("LIQ_FAPI_URL", exchange.url)
    day = exchange.data.first_day + dt.timedelta(days=1)
    ctx = dg.build_asset_context(partition_key=dg.MultiPartitionKey({"date": day.isoformat(), "symbol": "BTCUSDT"}))
    duck = DuckDBResource(database=str(tmp_path / "a.duckdb"))
    result = rest_gap_fill(ctx, duckdb=duck, market=MarketSource(kind="mirror", mirror_dir=str(tmp_path)))
    # The real clock is months after the fake data, so openInterestHist's 30-day window excludes the day.
    assert result.metadata["rows"].value == 1440 * 2 + 3 + int(
        ((exchange.data.trade_ms >= day_ms(day)) & (exchange.data.trade_ms < day_ms(day) + DAY_MS)).sum())
    assert "skipped" in result.metadata["partitions"].value


# ---------------------------------------------------------------------------------------------- sensor
def _log_rest(db_path, day: dt.date, tables: list[str]) -> None:
    with duckdb.connect(str(db_path)) as c:
        ensure_tables(c, "raw.ingest_log")
        for t in tables:
            c.execute("INSERT INTO raw.ingest_log VALUES ('BTCUSDT', ?, ?, 'x', NULL, 'rest', 1, now()::TIMESTAMP)", [day, t])


def _sensor_context(instance, resources):
    """A sensor context inside a repository holding assets with the raw keys (RunRequests name assets;
    stand-ins keep this test independent of assets/raw.py)."""
    def stand_in(name: str) -> dg.AssetsDefinition:
        @dg.asset(name=name, partitions_def=partitions.symbol_day)
        def _asset() -> None:
            raise AssertionError("never executed by the sensor test")
        return _asset

    assets = [stand_in(k) for k in ("klines", "mark_price_klines", "agg_trades", "open_interest", "funding_rates")]
    defs = dg.Definitions(assets=[*assets, rest_gap_fill, leverage_brackets], sensors=[archive_day_published_sensor],
                          resources=resources)
    return dg.build_sensor_context(instance=instance, definitions=defs, resources=resources)


def test_sensor_requests_the_raw_assets_whose_archive_file_appeared(tmp_path):
    day = dt.date(2026, 3, 2)
    db = tmp_path / "s.duckdb"
    _log_rest(db, day, ["raw.klines", "raw.agg_trades"])
    mirror = tmp_path / "mirror"
    write_zip(mirror, ArchiveFile("klines", "BTCUSDT", day, interval="1m"), KLINES_COLUMNS,
              [(day_ms(day), 1, 1, 1, 1, 0, day_ms(day) + 59_999, 0, 0, 0, 0, 0)])
    resources = {"duckdb": DuckDBResource(database=str(db)),
                 "market": MarketSource(kind="mirror", mirror_dir=str(mirror), cache_dir=str(tmp_path / "cache"))}
    with dg.instance_for_test() as instance:
        ctx = _sensor_context(instance, resources)
        result = archive_day_published_sensor.evaluate_tick(ctx)
    assert len(result.run_requests) == 1
    req = result.run_requests[0]
    assert req.asset_selection == [dg.AssetKey("klines")]
    assert req.partition_key == dg.MultiPartitionKey({"date": "2026-03-02", "symbol": "BTCUSDT"})
    assert result.cursor == "2026-03-02|BTCUSDT"


def test_sensor_skips_when_nothing_is_published(tmp_path):
    db = tmp_path / "s.duckdb"
    resources = {"duckdb": DuckDBResource(database=str(db)),
                 "market": MarketSource(kind="mirror", mirror_dir=str(tmp_path / "m"), cache_dir=str(tmp_path / "c"))}
    with dg.instance_for_test() as instance:
        empty = archive_day_published_sensor.evaluate_tick(_sensor_context(instance, resources))
        _log_rest(db, dt.date(2026, 3, 2), ["raw.agg_trades"])
        waiting = archive_day_published_sensor.evaluate_tick(_sensor_context(instance, resources))
    assert not empty.run_requests and "no partition" in empty.skip_message
    assert not waiting.run_requests and "in the archive yet" in waiting.skip_message


# ---------------------------------------------------------------------------------------------- live signals
def test_live_signals_all_answer(exchange):
    client = make_client(exchange)
    s = fetch_live_signals(client, "BTCUSDT", BaselineSignals(None), budget_s=2.0)
    d = exchange.data
    assert s.flags == ()
    assert s.mark_price == pytest.approx(exchange.mark_price)
    assert s.oi_usd == pytest.approx(d.oi_base[-1] * exchange.mark_price)
    i24 = np.searchsorted(d.oi_ms, exchange.now_ms - DAY_MS)
    assert s.oi_24h_ago_usd == pytest.approx(d.oi_base[i24] * exchange.mark_price)
    last = np.flatnonzero(d.funding_ms <= exchange.now_ms)[-1]
    assert s.funding_rate_8h == pytest.approx(d.funding_rate[last])
    assert set(s.latency_ms) == {"mark_price", "oi_base", "oi_24h_ago_usd", "funding_rate_8h", "signals_total"}


def test_partial_outage_falls_back_to_baseline_within_budget(exchange):
    client = make_client(exchange, max_retries=0)
    exchange.script("/fapi/v1/premiumIndex", Scripted(500, {"code": -1000}))
    exchange.script("/fapi/v1/fundingRate", Scripted(delay_s=3.0))  # far beyond the budget
    base = BaselineSignals(dt.date(2026, 3, 3), mark_price=49_000.0, oi_usd=1e9, oi_24h_ago_usd=9e8,
                           funding_rate_8h=0.0002)
    t0 = time.perf_counter()
    s = fetch_live_signals(client, "BTCUSDT", base, budget_s=0.5)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.5  # the 3 s call is abandoned at the budget, not awaited
    assert s.mark_price == 49_000.0 and s.funding_rate_8h == 0.0002
    assert s.oi_usd == pytest.approx(exchange.data.oi_base[-1] * 49_000.0)  # live OI × fallback mark
    assert any(f.startswith("mark_price_failed:FapiUnavailable") for f in s.flags)
    assert "mark_price_fallback_baseline" in s.flags
    assert any(f.startswith("funding_rate_8h_failed:no answer within") for f in s.flags)
    assert s.latency_ms["funding_rate_8h"] == pytest.approx(500.0)
    assert s.oi_24h_ago_usd != 9e8  # that signal answered live


def test_missing_signal_without_baseline_is_flagged_missing(exchange):
    exchange.script("/fapi/v1/fundingRate", Scripted(500, {}))
    s = fetch_live_signals(make_client(exchange, max_retries=0), "BTCUSDT", BaselineSignals(None), budget_s=2.0)
    assert s.funding_rate_8h is None and "funding_rate_8h_missing" in s.flags


# ---------------------------------------------------------------------------------------------- now heatmap
def _seed_warehouse(con, exchange) -> dt.date:
    """One day of trades, klines, OI and funding from the fake exchange, and every variant's book of that day
    (flow_book's computation: the book `liq now` reads)."""
    d = exchange.data
    day = d.first_day + dt.timedelta(days=2)
    fill_day_from_rest(con, make_client(exchange), d.symbol, day)
    materialize_flow_day(con, d.symbol, day)
    return day


def test_heatmap_now_reads_the_default_variants_book_and_survives_an_outage(exchange, con):
    day = _seed_warehouse(con, exchange)
    ensure_tables(con, "model.position_signals")
    con.execute("INSERT INTO model.position_signals VALUES ('BTCUSDT', ?, ?, ?, 4e9, 3.9e9, 0.025, 0.0001, '')",
                [day, dt.datetime.combine(day, dt.time(23, 59)), exchange.mark_price])
    exchange.script("/futures/data/openInterestHist", Scripted(500, {}))
    result = live.heatmap_now(con, make_client(exchange, max_retries=0), "BTCUSDT", budget_s=1.0)
    assert result.variant == variants.DEFAULT and result.baseline_day == day
    assert any(f.startswith("oi_24h_ago_usd_failed") for f in result.flags)
    assert result.signals.oi_24h_ago_usd == 3.9e9
    assert result.latency_ms["signals_total"] < 1500 and "total" in result.latency_ms
    levels = result.levels
    assert not levels.empty
    mark = result.signals.mark_price
    # Nothing the mark has already crossed is shown: longs liquidate below it, shorts above.
    assert (levels.loc[levels["side"] == "long", "price"] < mark).all()
    assert (levels.loc[levels["side"] == "short", "price"] > mark).all()
    # Conservation: shown + crossed + unpriced = the book scaled to now (its map scale × live OI / OI then).
    total = levels["notional_usd"].sum() + result.crossed_usd + result.unpriced_usd
    assert total == pytest.approx(result.book_usd, rel=1e-9)
    book = load_book(con, "BTCUSDT", day, variants.DEFAULT)
    scale = map_scale(map_mix(con, "BTCUSDT", day, variants.DEFAULT))
    assert result.book_usd == pytest.approx(book.total_usd * scale * result.signals.oi_usd / 4e9, rel=1e-9)
    payload = result.to_json()
    assert payload["symbol"] == "BTCUSDT" and payload["variant"] == variants.DEFAULT and payload["levels"]
    assert json.dumps(payload)


def test_heatmap_now_drops_levels_crossed_by_mark_since_the_books_end(exchange, con):
    day = _seed_warehouse(con, exchange)
    before = live.heatmap_now(con, make_client(exchange), "BTCUSDT", budget_s=2.0)
    # A stored mark candle after the book's end, 5 % below the mark, liquidated every long above it.
    wick = exchange.mark_price * 0.95
    t = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 30))
    con.execute("""INSERT INTO raw.mark_price_klines BY NAME SELECT symbol, ? AS day, interval, ? AS open_time, open,
                   high, ? AS low, close, volume, ? AS close_time, quote_volume, trade_count, taker_buy_volume,
                   taker_buy_quote_volume, source FROM raw.mark_price_klines WHERE symbol = 'BTCUSDT' LIMIT 1""",
                [day + dt.timedelta(days=1), t, wick, t + dt.timedelta(seconds=59)])
    after = live.heatmap_now(con, make_client(exchange), "BTCUSDT", budget_s=2.0)
    longs = after.levels[after.levels["side"] == "long"]
    assert (longs["price"] < wick).all()
    assert after.crossed_usd > before.crossed_usd
    assert longs["notional_usd"].sum() < before.levels.loc[before.levels["side"] == "long", "notional_usd"].sum()


def test_heatmap_now_without_a_book_says_what_to_materialize(exchange, con):
    with pytest.raises(LookupError, match="flow_book"):
        live.heatmap_now(con, make_client(exchange), "BTCUSDT")


def test_now_command_exits_2_with_a_clear_message_when_the_warehouse_is_empty(exchange, tmp_path, capsys):
    from liq_pipeline.cli.live import now_command

    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()
    args = argparse.Namespace(symbol="BTCUSDT", format="json", base_url=exchange.url, budget=1.0, top=5,
                              warehouse=str(db))
    assert now_command(args) == 2
    assert "flow_book" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- brackets
def test_leverage_brackets_skips_without_keys(monkeypatch):
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("BINANCE_API_SECRET", raising=False)
    result = leverage_brackets(dg.build_asset_context())
    assert result.metadata["skipped"].value is True
    assert "BINANCE_API_KEY" in result.metadata["reason"].value


def test_leverage_brackets_stores_a_dated_table_that_margin_reads(exchange, tmp_path, monkeypatch):
    monkeypatch.setenv("LIQ_FAPI_URL", exchange.url)
    monkeypatch.setenv("BINANCE_API_KEY", exchange.api_key)
    monkeypatch.setenv("BINANCE_API_SECRET", exchange.api_secret)
    monkeypatch.setenv("LIQ_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LIQ_SYMBOLS", "BTCUSDT")
    result = leverage_brackets(dg.build_asset_context())
    today = dt.datetime.now(dt.UTC).date()
    path = tmp_path / "brackets" / f"BTCUSDT@{today.isoformat()}.json"
    assert result.metadata["skipped"].value is False and path.is_file()
    snap = json.loads(path.read_text())
    assert snap["complete"] is True and snap["as_of"] == today.isoformat() and snap["tiers"][-1]["notional_cap"] is None
    choice = table_for("BTCUSDT", today, load_bracket_tables(tmp_path / "brackets"))
    assert choice.table.id == f"BTCUSDT@{today.isoformat()}"
    assert list(choice.table.mmr) == [0.004, 0.005, 0.01]


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_registers_now_and_records_liquidations_end_to_end(tmp_path, capsys):
    from liq_pipeline.cli.live import now_command, register
    from liq_pipeline_tests.support.fake_exchange import FakeForceOrderStream, force_order_event

    parser = argparse.ArgumentParser(prog="liq")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["now", "btcusdt", "--format", "json", "--base-url", "http://127.0.0.1:9"])
    assert args.func is now_command and args.symbol == "BTCUSDT" and args.format == "json"

    db = tmp_path / "rec.duckdb"
    with FakeForceOrderStream([[force_order_event(i) for i in range(3)]]) as server:
        args = parser.parse_args(["record-liquidations", "--ws-url", server.url, "--max-events", "3",
                                  "--duration", "10", "--warehouse", str(db), "--symbols", "BTCUSDT"])
        assert args.func(args) == 0
    assert "received 3 events, stored 3 new" in capsys.readouterr().out
    with duckdb.connect(str(db)) as c:
        assert c.execute("SELECT count(*), min(side) FROM raw.realized_liquidations").fetchone() == (3, "long")


def test_now_without_live_mark_exits_2_and_never_prints_stale_data_as_now(exchange, tmp_path, capsys):
    """Binance unreachable: the map would be the stored baseline; `liq now` says so on stderr, prints no
    map on stdout and exits 2 (issue 27). Warnings go to stderr as one short line each."""
    from liq_pipeline.cli.live import now_command

    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as c:
        _seed_warehouse(c, exchange)
        ensure_tables(c, "model.position_signals")
        c.execute("INSERT INTO model.position_signals VALUES ('BTCUSDT', DATE '2026-03-03', "
                  "TIMESTAMP '2026-03-03 23:59', ?, 4e9, 3.9e9, 0.025, 0.0001, '')", [exchange.mark_price])
    args = argparse.Namespace(symbol="BTCUSDT", format="table", base_url="http://127.0.0.1:9", budget=0.3, top=5,
                              warehouse=str(db))
    assert now_command(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "live data unavailable" in err and "not now" in err and "mark_price_fallback_baseline" in err
    assert all(len(line) < 400 for line in err.splitlines())
    # With the exchange answering, the same command prints the map and exits 0, warnings (none here) apart.
    args.base_url = exchange.url
    exchange.now_ms = int(time.time() * 1000)  # answers stamped far from our clock are refused as stale (issue 28)
    assert now_command(args) == 0
    out, err = capsys.readouterr()
    assert "BTCUSDT now" in out and "warning" not in out


# ---------------------------------------------------------------------------------------------- issue 28, case 5
# Every REST answer is checked (symbol echo, freshness, finite positive values); a failed check falls back to the
# stored signals, flagged with the field that failed, or exits 2 naming it when nothing is stored.
BASE = BaselineSignals(dt.date(2026, 3, 3), mark_price=49_000.0, oi_usd=1e9, oi_24h_ago_usd=9e8, funding_rate_8h=1e-4)


def _premium(exchange, **fields) -> dict:
    body = {"symbol": "BTCUSDT", "markPrice": f"{exchange.mark_price:.2f}", "indexPrice": "50001.00",
            "estimatedSettlePrice": "50000.00", "lastFundingRate": "0.0001", "interestRate": "0.0001",
            "nextFundingTime": exchange.now_ms + 3_600_000, "time": exchange.now_ms}
    return {**body, **fields}


def _oi(exchange, **fields) -> dict:
    return {**{"symbol": "BTCUSDT", "openInterest": "80000.000", "time": exchange.now_ms}, **fields}


@pytest.mark.parametrize("path, body, field", [
    ("/fapi/v1/premiumIndex", lambda ex: _premium(ex, symbol="ETHUSDT", markPrice="3000.00"), "'symbol' = 'ETHUSDT'"),
    ("/fapi/v1/premiumIndex", lambda ex: _premium(ex, time=1_577_836_800_000), "'time' = 1577836800000 (2020-01-01"),
    ("/fapi/v1/premiumIndex", lambda ex: _premium(ex, markPrice="NaN"), "'markPrice' = 'NaN' is not a finite number > 0"),
    ("/fapi/v1/premiumIndex", lambda ex: _premium(ex, markPrice="-5"), "'markPrice' = '-5' is not a finite number > 0"),
])
def test_a_mark_that_fails_its_check_falls_back_to_the_stored_mark_naming_the_field(exchange, path, body, field):
    exchange.script(path, Scripted(200, body(exchange)))
    s = fetch_live_signals(make_client(exchange, max_retries=0), "BTCUSDT", BASE, budget_s=2.0)
    assert s.mark_price == 49_000.0 and "mark_price_fallback_baseline" in s.flags
    failed = [f for f in s.flags if f.startswith("mark_price_failed:FapiMalformedResponse")]
    assert failed and field in failed[0], s.flags


@pytest.mark.parametrize("body, field", [
    (lambda ex: _oi(ex, openInterest="Infinity"), "'openInterest' = 'Infinity' is not a finite number > 0"),
    (lambda ex: _oi(ex, symbol="ETHUSDT"), "'symbol' = 'ETHUSDT'"),
    (lambda ex: _oi(ex, time=1_577_836_800_000), "behind our clock"),
])
def test_open_interest_that_fails_its_check_falls_back_to_the_stored_oi(exchange, body, field):
    exchange.script("/fapi/v1/openInterest", Scripted(200, body(exchange)))
    s = fetch_live_signals(make_client(exchange, max_retries=0), "BTCUSDT", BASE, budget_s=2.0)
    assert s.oi_usd == 1e9 and "oi_usd_fallback_baseline" in s.flags
    assert any(f.startswith("oi_base_failed:FapiMalformedResponse") and field in f for f in s.flags), s.flags


def test_liq_now_with_a_foreign_answer_and_nothing_stored_exits_2_naming_the_field(exchange, con, tmp_path, capsys):
    from liq_pipeline.cli.live import now_command

    _seed_warehouse(con, exchange)  # a baseline profile, but no stored position signals to fall back on
    con.close()
    exchange.script("/fapi/v1/premiumIndex", Scripted(200, _premium(exchange, symbol="ETHUSDT", markPrice="3000.00")))
    args = argparse.Namespace(symbol="BTCUSDT", format="table", base_url=exchange.url, budget=2.0, top=5,
                              warehouse=str(tmp_path / "w.duckdb"))
    assert now_command(args) == 2
    err = capsys.readouterr().err
    assert "field 'symbol' = 'ETHUSDT', but BTCUSDT was asked for" in err and "Traceback" not in err


def test_liq_now_labels_values_taken_from_the_warehouse_as_stale(exchange, con, tmp_path, capsys):
    from liq_pipeline.cli.live import now_command

    _seed_warehouse(con, exchange)
    ensure_tables(con, "model.position_signals")
    con.execute("INSERT INTO model.position_signals VALUES ('BTCUSDT', DATE '2026-03-03', TIMESTAMP '2026-03-03 23:59', "
                "?, 4e9, 3.9e9, 0.025, 0.0001, '')", [exchange.mark_price])
    con.close()
    exchange.script("/fapi/v1/openInterest", Scripted(200, _oi(exchange, openInterest="Infinity")))
    args = argparse.Namespace(symbol="BTCUSDT", format="table", base_url=exchange.url, budget=2.0, top=5,
                              warehouse=str(tmp_path / "w.duckdb"))
    # The open interest fell back to the warehouse: the map would not be live, so no map is printed as
    # "now" (issue 27); stderr names the fallback and the field that failed its check, and the exit is 2.
    assert now_command(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert "live data unavailable" in err and "oi_usd_fallback_baseline" in err
    assert "field 'openInterest' = 'Infinity' is not a finite number > 0" in err or "behind our clock" in err
