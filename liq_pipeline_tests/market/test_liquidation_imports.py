"""User liquidation files (forceOrder JSON lines, liquidationSnapshot CSV, per-bar totals) land in the warehouse
correctly: format detection, side mapping, duplicate removal, idempotent re-import, clear errors."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from liq_pipeline.market import liquidation_imports as li

FORCE_ORDER = (
    '{"e":"forceOrder","E":1736899205120,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT","f":"IOC","q":"0.250",'
    '"p":"95990.10","ap":"96012.40","X":"FILLED","l":"0.250","z":"0.250","T":1736899205117}}\n'
    '{"e":"forceOrder","E":1736899206120,"o":{"s":"ETHUSDT","S":"BUY","o":"LIMIT","f":"IOC","q":"2.000",'
    '"p":"3300.00","ap":"3301.00","X":"FILLED","l":"2.000","z":"2.000","T":1736899206117}}\n'
)
SNAPSHOT_HEADER = ("time,side,order_type,time_in_force,original_quantity,price,average_price,order_status,"
                   "last_fill_quantity,accumulated_fill_quantity\n")
SNAPSHOT_ROWS = ("1736899205117,SELL,LIMIT,IOC,0.5,95000.0,95100.0,FILLED,0.5,0.5\n"
                 "1736899205117,SELL,LIMIT,IOC,0.5,95000.0,95100.0,FILLED,0.5,0.5\n"
                 "1736902805117,BUY,LIMIT,IOC,1.0,97000.0,0,FILLED,1.0,1.0\n")


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield c
    c.close()


def test_detects_each_format(tmp_path):
    (tmp_path / "a.jsonl").write_text(FORCE_ORDER)
    (tmp_path / "b.csv").write_text(SNAPSHOT_HEADER + SNAPSHOT_ROWS)
    (tmp_path / "c.csv").write_text(SNAPSHOT_ROWS)
    (tmp_path / "d.csv").write_text("timestamp,long_usd,short_usd\n2025-01-15T00:00:00Z,1,2\n")
    assert [li.detect_format(tmp_path / n) for n in ("a.jsonl", "b.csv", "c.csv", "d.csv")] == [
        "forceorder", "snapshot", "snapshot", "bars"]
    (tmp_path / "e.csv").write_text("x,y\n1,2\n")
    with pytest.raises(li.LiquidationImportError, match="unknown liquidation file format"):
        li.detect_format(tmp_path / "e.csv")


def test_force_order_lines_map_sell_to_long_and_filter_symbol(tmp_path, con):
    path = tmp_path / "stream.jsonl"
    path.write_text(FORCE_ORDER + FORCE_ORDER)  # recorded twice: duplicates dropped
    result = li.import_liquidation_file(con, path, symbol="BTCUSDT")
    assert result.format == "forceorder" and result.rows == 1 and result.symbols == ("BTCUSDT",)
    side, notional, day, source = con.execute(
        "SELECT side, notional_usd, day, source FROM raw.realized_liquidations").fetchone()
    assert side == "long" and notional == pytest.approx(0.25 * 96012.40)
    assert day == dt.date(2025, 1, 15) and source == "file:stream.jsonl"


def test_snapshot_dedupes_rows_and_uses_symbol_from_file_name(tmp_path, con):
    path = tmp_path / "BTCUSDT-liquidationSnapshot-2025-01-15.csv"
    path.write_text(SNAPSHOT_HEADER + SNAPSHOT_ROWS)
    result = li.import_liquidation_file(con, path)
    assert result.rows == 2 and result.symbols == ("BTCUSDT",)
    rows = con.execute("SELECT side, notional_usd FROM raw.realized_liquidations ORDER BY trade_time").fetchall()
    # the short's average price is 0: notional falls back to the order price
    assert rows == [("long", pytest.approx(0.5 * 95100.0)), ("short", pytest.approx(97000.0))]


def test_snapshot_without_symbol_is_a_clear_error(tmp_path):
    path = tmp_path / "liq.csv"
    path.write_text(SNAPSHOT_HEADER + SNAPSHOT_ROWS)
    with pytest.raises(li.LiquidationImportError, match="--symbol"):
        li.read_liquidation_snapshot(path, configured=["BTCUSDT", "ETHUSDT"])
    # with one configured symbol there is nothing to choose
    assert li.read_liquidation_snapshot(path, configured=["BTCUSDT"])["symbol"].unique().tolist() == ["BTCUSDT"]


def test_bars_infer_width_from_spacing_and_accept_epochs(tmp_path, con):
    path = tmp_path / "provider.csv"
    # ms epochs, hourly with a missing bar: width stays one hour
    path.write_text("Timestamp,Long,Short\n1736899200000,100,50\n1736902800000,0,10\n1736910000000,5,5\n")
    result = li.import_liquidation_file(con, path, symbol="BTCUSDT")
    assert result.table == li.BARS_TABLE and result.rows == 3
    widths = con.execute("SELECT DISTINCT bar_end - bar_start FROM raw.realized_liquidation_bars").fetchall()
    assert widths == [(dt.timedelta(hours=1),)]
    first = con.execute("SELECT bar_start, long_usd FROM raw.realized_liquidation_bars ORDER BY bar_start").fetchone()
    assert first == (dt.datetime(2025, 1, 15, 0, 0), 100.0)


# The per-bar spellings users have: the real-data window's file, Coinglass exports (UI and API field names),
# epoch seconds, ISO with an offset, a symbol column naming the coin.
BAR_SPELLINGS = {
    "bar_start_utc,bar_start_ms": "bar_start_utc,bar_start_ms,long_usd,short_usd\n"
    "2025-12-05T00:00:00Z,1764892800000,825267.2879,136430.29791\n"
    "2025-12-05T01:00:00Z,1764896400000,0.0,166602.66688\n"
    "2025-12-05T03:00:00Z,1764903600000,10,20\n",
    "coinglass export": "timestamp,datetime_utc,longUsd,shortUsd,totalUsd\n"
    "1764892800000,2025-12-05T00:00:00.000Z,825267.2879,136430.29791,961697.58581\n"
    "1764896400000,2025-12-05T01:00:00.000Z,0,166602.66688,166602.66688\n"
    "1764903600000,2025-12-05T03:00:00.000Z,10,20,30\n",
    "coinglass api v2": "t,longVolUsd,shortVolUsd\n1764892800,825267.2879,136430.29791\n"
    "1764896400,0,166602.66688\n1764903600,10,20\n",
    "coinglass api v4": "time,aggregated_long_liquidation_usd,aggregated_short_liquidation_usd\n"
    "1764892800000,825267.2879,136430.29791\n1764896400000,0,166602.66688\n1764903600000,10,20\n",
    "iso offset, UI headers, coin symbol": "Date,Symbol,Longs (USD),Shorts (USD)\n"
    "2025-12-05 01:00:00+01:00,BTC,825267.2879,136430.29791\n2025-12-05 02:00:00+01:00,BTC,0,166602.66688\n"
    "2025-12-05 04:00:00+01:00,BTC,10,20\n",
    "longUsd only, bar_start": "bar_start,longUsd,shortUsd\n2025-12-05 00:00:00,825267.2879,136430.29791\n"
    "2025-12-05 01:00:00,0,166602.66688\n2025-12-05 03:00:00,10,20\n",
}


@pytest.mark.parametrize("spelling", sorted(BAR_SPELLINGS))
def test_bar_spellings_read_the_same_bars(tmp_path, con, spelling, monkeypatch):
    monkeypatch.setenv("LIQ_SYMBOLS", "BTCUSDT")
    path = tmp_path / "bars.csv"
    path.write_text(BAR_SPELLINGS[spelling])
    assert li.detect_format(path) == "bars"
    result = li.import_liquidation_file(con, path)  # no --symbol: the one configured
    assert (result.rows, result.symbols, result.bar_seconds) == (3, ("BTCUSDT",), 3600)  # a missing hour: still 1 h
    assert (result.first_time, result.last_time) == (dt.datetime(2025, 12, 5, 0), dt.datetime(2025, 12, 5, 3))
    assert any("bar width 1 h" in line for line in result.understood)
    rows = con.execute("SELECT bar_start, bar_end, long_usd, short_usd FROM raw.realized_liquidation_bars "
                       "ORDER BY bar_start").fetchall()
    assert rows[0] == (dt.datetime(2025, 12, 5, 0), dt.datetime(2025, 12, 5, 1), 825267.2879, 136430.29791)
    assert [r[0].hour for r in rows] == [0, 1, 3]


def test_bars_without_symbol_need_one_configured_symbol_or_the_option(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(BAR_SPELLINGS["bar_start_utc,bar_start_ms"])
    with pytest.raises(li.LiquidationImportError, match="names no symbol and 2 symbols are configured"):
        li.read_liquidation_bars(path, configured=["BTCUSDT", "ETHUSDT"])
    frame = li.read_liquidation_bars(path, symbol="ETHUSDT", configured=["BTCUSDT", "ETHUSDT"])
    assert frame["symbol"].unique().tolist() == ["ETHUSDT"]


def test_bar_start_columns_that_disagree_are_refused(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text("bar_start_utc,bar_start_ms,long_usd,short_usd\n2025-12-05T00:00:00Z,1764892800000,1,2\n"
                    "2025-12-05T01:00:00Z,1764892800000,1,2\n")
    with pytest.raises(li.LiquidationImportError, match="disagree in data row 2"):
        li.read_liquidation_bars(path, configured=["BTCUSDT"])


def test_bars_reject_negative_amounts(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,long_usd,short_usd\n2025-01-15 00:00:00,-1,2\n")
    with pytest.raises(li.LiquidationImportError, match="non-negative"):
        li.read_liquidation_file(path, symbol="BTCUSDT")


def test_reimport_replaces_the_file_rows(tmp_path, con):
    path = tmp_path / "stream.jsonl"
    path.write_text(FORCE_ORDER)
    li.import_liquidation_file(con, path)
    again = li.import_liquidation_file(con, path)
    assert again.replaced == 2
    assert con.execute("SELECT count(*) FROM raw.realized_liquidations").fetchone()[0] == 2
    # The same file with its BTCUSDT event corrected: that event is replaced, ETHUSDT's is not touched.
    path.write_text(FORCE_ORDER.splitlines()[0].replace('"ap":"96012.40"', '"ap":"96000.00"') + "\n")
    assert li.import_liquidation_file(con, path).replaced == 1
    assert con.execute("SELECT symbol, avg_price FROM raw.realized_liquidations ORDER BY symbol").fetchall() == [
        ("BTCUSDT", 96000.0), ("ETHUSDT", 3301.0)]


# ---- issue 28, case 4: an import never deletes rows it did not replace ----------------------------------
def _forceorders(symbol: str, n: int, t0_ms: int = 1736899205117) -> str:
    return "".join(
        f'{{"e":"forceOrder","E":{t0_ms + 1000 * i + 3},"o":{{"s":"{symbol}","S":"SELL","o":"LIMIT","f":"IOC",'
        f'"q":"0.1","p":"95000","ap":"95000","X":"FILLED","l":"0.1","z":"0.1","T":{t0_ms + 1000 * i}}}}}\n'
        for i in range(n))


def test_import_of_another_symbol_replaces_nothing_and_is_an_error(tmp_path, con, capsys):
    path = tmp_path / "f.jsonl"
    path.write_text(_forceorders("BTCUSDT", 20))
    db = tmp_path / "cli.duckdb"
    assert _cli(["import-liquidations", str(path), "--warehouse", str(db)]) == 0
    assert _cli(["import-liquidations", str(path), "--symbol", "ETHUSDT", "--warehouse", str(db)]) == 2
    err = capsys.readouterr().err
    assert "no rows to import for ETHUSDT (the file holds BTCUSDT)" in err and "nothing stored was replaced" in err
    with duckdb.connect(str(db)) as c:
        assert c.execute("SELECT count(*) FROM raw.realized_liquidations").fetchone()[0] == 20


def test_same_named_file_from_another_folder_keeps_the_earlier_import(tmp_path, con):
    first, other = tmp_path / "a" / "f.jsonl", tmp_path / "b" / "f.jsonl"
    first.parent.mkdir()
    other.parent.mkdir()
    first.write_text(_forceorders("BTCUSDT", 20))
    other.write_text(_forceorders("BTCUSDT", 5, t0_ms=1736999205117))  # a later period, same name
    li.import_liquidation_file(con, first)
    assert li.import_liquidation_file(con, other).replaced == 0
    assert con.execute("SELECT count(*) FROM raw.realized_liquidations").fetchone()[0] == 25


@pytest.mark.parametrize("text, bar_seconds, expected", [
    ("timestamp,long_usd,short_usd\n1736899200000,1,2\n1736899200500,3,4\n", None, "0.5 s apart"),
    ("timestamp,long_usd,short_usd\n1736899200000,1,2\n1736899230000,3,4\n", None, "30 s apart"),
    ("timestamp,long_usd,short_usd\n1736899200000,1,2\n1736899260000,3,4\n", 3600, "60 s apart do not fit bars 1 h"),
    ("timestamp,long_usd,short_usd\n1736899200000,1,2\n", 0, "declared width"),
])
def test_bar_width_is_validated_against_the_spacing_and_the_declared_width(tmp_path, con, text, bar_seconds, expected):
    path = tmp_path / "bars.csv"
    path.write_text(text)
    with pytest.raises(li.LiquidationImportError, match=expected):
        li.import_liquidation_file(con, path, symbol="BTCUSDT", bar_seconds=bar_seconds)
    assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'realized_liquidation_bars'"
                           ).fetchone()[0] or not con.execute("SELECT count(*) FROM raw.realized_liquidation_bars").fetchone()[0]


def test_folder_import_reports_bad_files_and_loads_the_rest(tmp_path, con):
    folder = tmp_path / "liquidations"
    folder.mkdir()
    (folder / "good.jsonl").write_text(FORCE_ORDER)
    (folder / "broken.jsonl").write_text('{"e":"trade"}\n')
    (folder / ".hidden").write_text("ignored")
    results, errors = li.import_liquidation_folder(con, folder)
    assert [r.rows for r in results] == [2]
    assert len(errors) == 1 and "broken.jsonl, line 1" in errors[0]


def test_bad_format_name(tmp_path):
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(li.LiquidationImportError, match="format must be one of"):
        li.read_liquidation_file(tmp_path / "x.csv", fmt="excel")


def _cli(argv: list[str]) -> int:
    import argparse

    from liq_pipeline.cli import validation as validation_cli

    parser = argparse.ArgumentParser(prog="liq")
    validation_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_imports_a_folder_and_reports_bad_files_without_traceback(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "BTCUSDT-liquidationSnapshot-2025-01-15.csv").write_text(SNAPSHOT_HEADER + SNAPSHOT_ROWS)
    (folder / "z.csv").write_text("what,is,this\n")
    db = tmp_path / "w.duckdb"
    assert _cli(["import-liquidations", str(folder), "--warehouse", str(db)]) == 2
    out, err = capsys.readouterr()
    assert "2 rows (snapshot)" in out and "z.csv: unknown liquidation file format" in err and "Traceback" not in err
    with duckdb.connect(str(db)) as c:
        assert c.execute("SELECT count(*) FROM raw.realized_liquidations").fetchone()[0] == 2


def test_cli_missing_path_and_missing_warehouse_are_clear_errors(tmp_path, capsys):
    assert _cli(["import-liquidations", str(tmp_path / "nope.csv"), "--warehouse", str(tmp_path / "w.duckdb")]) == 2
    assert _cli(["backtest", "BTCUSDT", "--start", "2026-01-01", "--end", "2026-01-02",
                 "--warehouse", str(tmp_path / "missing.duckdb")]) == 2
    err = capsys.readouterr().err
    assert "no such file or folder" in err and "no warehouse" in err


def test_cli_reports_what_it_understood_of_a_bar_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LIQ_SYMBOLS", "BTCUSDT")
    path = tmp_path / "realized_liquidations_1h.csv"
    path.write_text(BAR_SPELLINGS["bar_start_utc,bar_start_ms"])
    assert _cli(["import-liquidations", str(path), "--warehouse", str(tmp_path / "w.duckdb")]) == 0
    out = capsys.readouterr().out
    assert "3 rows (bars) → raw.realized_liquidation_bars [BTCUSDT] 2025-12-05 00:00:00 … 2025-12-05 03:00:00" in out
    assert "bar start 'bar_start_ms' = 'bar_start_utc', longs 'long_usd', shorts 'short_usd'" in out
    assert "symbol: BTCUSDT (the one configured symbol)" in out and "bar width 1 h" in out
