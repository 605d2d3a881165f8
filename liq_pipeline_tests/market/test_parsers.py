"""Parsers on every documented variant of the archive CSVs (binance-data.md §2-§3)."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from liq_pipeline.market import parsers
from liq_pipeline.market.formats import AGG_TRADES_COLUMNS, KLINES_COLUMNS, METRICS_COLUMNS
from liq_pipeline_tests.support.archive_csv import AGG_ROWS, DAY, T0, write


def rows_of(sql):
    return duckdb.sql(sql).fetchall()


@pytest.mark.parametrize("header", [True, False])
def test_agg_trades_header_detected_sorted_and_deduplicated(tmp_path, header):
    path = write(tmp_path, "a.csv", AGG_TRADES_COLUMNS if header else None, AGG_ROWS)
    assert parsers.has_header(path, "aggTrades") is header
    got = rows_of(parsers.agg_trades_select(path, "BTCUSDT", DAY))
    assert [r[2] for r in got] == [1, 2, 3]
    assert got[0][0:2] == ("BTCUSDT", DAY)
    assert got[0][7] == dt.datetime(2026, 1, 5, 0, 0, 1)
    assert [r[8] for r in got] == [True, False, False]


def test_agg_trades_microseconds_and_capitalised_booleans(tmp_path):
    rows = [(1, "100.0", "1", 1, 1, (T0 + 1234) * 1000, "True"), (2, "100.0", "1", 2, 2, T0 + 5000, "FALSE")]
    got = rows_of(parsers.agg_trades_select(write(tmp_path, "a.csv", None, rows), "X", DAY))
    assert got[0][7] == dt.datetime(2026, 1, 5, 0, 0, 1, 234000)
    assert [r[8] for r in got] == [True, False]


def test_agg_trades_monthly_file_keeps_only_the_day_and_sorts_interleaved_ids(tmp_path):
    rows = [(10, "1", "1", 1, 1, T0 + 1, "true"), (5, "1", "1", 1, 1, T0 - 1, "true"),
            (7, "1", "1", 1, 1, T0 + 86_400_000, "true"), (6, "1", "1", 1, 1, T0 + 3, "false")]
    path = write(tmp_path, "m.csv", AGG_TRADES_COLUMNS, rows)
    got = rows_of(parsers.agg_trades_select(path, "X", DAY, only_day=True))
    assert [r[2] for r in got] == [6, 10]


def test_malformed_row_names_file_and_line(tmp_path):
    path = write(tmp_path, "bad.csv", AGG_TRADES_COLUMNS, [(1, "abc", "1", 1, 1, T0, "true")])
    with pytest.raises(duckdb.ConversionException) as err:
        rows_of(parsers.agg_trades_select(path, "X", DAY))
    message = str(parsers.describe_duckdb_error(err.value, path))
    assert "bad.csv" in message and "abc" in message


def test_bad_boolean_is_an_error_not_a_silent_null(tmp_path):
    path = write(tmp_path, "b.csv", None, [(1, "1", "1", 1, 1, T0, "maybe")])
    with pytest.raises(duckdb.Error, match="is_buyer_maker"):
        rows_of(parsers.agg_trades_select(path, "X", DAY))


def kline(open_ms, close="100", volume="5", taker="2"):
    return (open_ms, "100", "101", "99", close, volume, open_ms + 59_999, "500", 7, taker, "200", 0)


@pytest.mark.parametrize("header", [True, False])
def test_klines_parsed_with_interval_and_deduplicated(tmp_path, header):
    rows = [kline(T0 + 60_000), kline(T0), kline(T0)]
    path = write(tmp_path, "k.csv", KLINES_COLUMNS if header else None, rows)
    got = duckdb.sql(parsers.klines_select(path, "BTCUSDT", DAY, "1m")).df()
    assert list(got["open_time"]) == [dt.datetime(2026, 1, 5), dt.datetime(2026, 1, 5, 0, 1)]
    assert set(got["interval"]) == {"1m"} and set(got["source"]) == {"archive"}
    assert got["trade_count"].tolist() == [7, 7]
    assert got["close_time"][0] == dt.datetime(2026, 1, 5, 0, 0, 59, 999000)


def test_klines_empty_cells_are_null(tmp_path):
    path = write(tmp_path, "k.csv", None, [kline(T0, volume="", taker="")])
    got = duckdb.sql(parsers.klines_select(path, "X", DAY, "1m")).df()
    assert got["volume"].isna().all() and got["taker_buy_volume"].isna().all()


def metrics_row(minute, oi, ratio="1.1"):
    ts = dt.datetime(2026, 1, 5) + dt.timedelta(minutes=minute)
    return (ts.strftime("%Y-%m-%d %H:%M:%S"), "BTCUSDT", oi, oi * 90000, ratio, ratio, ratio, ratio)


def test_metrics_duplicates_keep_last_empty_ratios_null_and_header_detected(tmp_path):
    rows = [metrics_row(0, 100.0), metrics_row(5, 101.0), metrics_row(5, 102.0), metrics_row(10, 103.0, ratio="")]
    path = write(tmp_path, "m.csv", METRICS_COLUMNS, rows)
    assert parsers.has_header(path, "metrics")
    got = duckdb.sql(parsers.metrics_select(path, "BTCUSDT", DAY)).df()
    assert got["sum_open_interest"].tolist() == [100.0, 102.0, 103.0]
    assert got["count_long_short_ratio"].isna().tolist() == [False, False, True]
    assert not got["is_stale"].any()


def test_metrics_without_header_is_read_too(tmp_path):
    path = write(tmp_path, "m.csv", None, [metrics_row(0, 100.0)])
    assert not parsers.has_header(path, "metrics")
    assert len(duckdb.sql(parsers.metrics_select(path, "BTCUSDT", DAY)).fetchall()) == 1


def test_forward_filled_open_interest_is_flagged_stale(tmp_path):
    rows = [metrics_row(5 * i, 100.0 + i) for i in range(5)]
    rows += [metrics_row(5 * i, 200.0) for i in range(5, 5 + parsers.STALE_OI_RUN_ROWS + 1)]
    rows += [metrics_row(5 * 40, 300.0)]
    got = duckdb.sql(parsers.metrics_select(write(tmp_path, "m.csv", METRICS_COLUMNS, rows), "X", DAY)).df()
    assert got["is_stale"].sum() == parsers.STALE_OI_RUN_ROWS + 1
    assert not got["is_stale"].iloc[0] and not got["is_stale"].iloc[-1]


def test_funding_calc_time_snapped_and_filtered_to_the_day(tmp_path):
    settle = [T0 - 28_800_000 + 1, T0 + 1, T0 + 28_800_000, T0 + 57_600_000 - 1, T0 + 86_400_000 + 1]
    rows = [(t, 8, "0.0001") for t in settle]
    path = write(tmp_path, "f.csv", ["calc_time", "funding_interval_hours", "last_funding_rate"], rows)
    got = duckdb.sql(parsers.funding_select(path, "BTCUSDT", DAY)).df()
    assert [t.hour for t in got["funding_time"]] == [0, 8, 16]
    assert got["funding_time"][0] == dt.datetime(2026, 1, 5)


def test_funding_rate_converted_to_8h_equivalent(tmp_path):
    rows = [(T0 + h * 3_600_000, 4, "0.0002") for h in (0, 4, 8, 12, 16, 20)]
    got = duckdb.sql(parsers.funding_select(write(tmp_path, "f.csv", None, rows), "X", DAY)).df()
    assert len(got) == 6
    assert got["funding_rate_8h"].tolist() == pytest.approx([0.0004] * 6)
