"""Heatmap evolution: consumption on mark price (not last price), OI shrink, OI-driven additions split by the
previous day's distribution, continuity across days, and the Dagster assets end to end on a tmp warehouse."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource

from liq_pipeline import config
from liq_pipeline.assets.flow import flow_book
from liq_pipeline.assets.heatmap import liquidation_heatmap, liquidation_zones
from liq_pipeline.model import flow as fl
from liq_pipeline.model import heatmap as hm
from liq_pipeline.model import variants as variant_registry
from liq_pipeline.pipeline.flow_day import book_frame, materialize_flow_day
from liq_pipeline.pipeline.heatmap_day import compute_heatmap_day
from liq_pipeline_tests.support.warehouse_rows import (
    DAY,
    GRID,
    SYMBOL,
    insert_candles,
    insert_distribution,
    insert_frame,
    insert_levels,
    insert_oi,
    insert_trades,
)


# ---------------------------------------------------------------------------------------------- fixtures
def end_state(result, variant: str = "hybrid") -> hm.LevelState:
    return result.variants[variant].evolution.end_state


def level_at(state: hm.LevelState, side: str, price: float) -> float:
    row = hm.LONG_ROW if side == "long" else hm.SHORT_ROW
    hit = state.bin_id == GRID.bin_id(price)
    return float(state.notional[row, hit].sum())


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield c
    c.close()


# ---------------------------------------------------------------------------------------------- pure model
def test_oi_at_never_uses_a_later_sample():
    t = np.array([0, 300_000, 600_000], dtype="datetime64[ms]")
    v = np.array([1.0, 2.0, 3.0])
    got = hm.oi_at(t, v, np.array([-1, 0, 299_999, 300_000, 900_000], dtype="datetime64[ms]"))
    assert np.isnan(got[0])
    assert got[1:].tolist() == [1.0, 1.0, 2.0, 3.0]


def test_steps_per_day_rejects_steps_that_do_not_divide_a_day():
    assert hm.steps_per_day(15) == 96 and hm.steps_per_day(1) == 1440
    with pytest.raises(ValueError, match="dividing a day"):
        hm.steps_per_day(7)


# ---------------------------------------------------------------------------------------------- on a warehouse
# The heatmap is read off each variant's book (one engine, model/flow.py): these tests store a D−1 book of the
# seed's `hybrid` rules (positions live until crossed, the book shrinks pro rata where OI falls), run
# flow_book's day and read the day's map back.
def insert_book(con, day: dt.date, rows: list[tuple[str, float, float]], variant: str = "hybrid") -> None:
    """model.flow_book cells of `day` at the given liquidation prices (side, lp, notional_usd): 5x cells, the
    seed mix's weight of 5x (so the per-step consumption reads back in USD)."""
    side, lp, notional = (np.array(x) for x in zip(*rows, strict=True))
    sign = np.where(side == "long", 1, -1)
    book = fl.Book.from_columns({
        "open_ms": np.full(lp.size, np.datetime64(dt.datetime.combine(day, dt.time()), "ms").astype(np.int64)),
        "side": sign, "entry_price": lp.astype(float) * (1 + 0.2 * sign), "lev_bucket": np.zeros(lp.size),
        "leverage": np.full(lp.size, 5.0), "size_usd": np.full(lp.size, 1000.0), "mmr": np.full(lp.size, 0.004),
        "lp_open": lp.astype(float), "funding_paid": np.zeros(lp.size), "weight": np.full(lp.size, 0.2),
        "notional_usd": notional.astype(float)})
    insert_frame(con, "model.flow_book", book_frame(SYMBOL, day, book).assign(variant=variant))


def insert_ofi(con, day: dt.date, long_prob: float, price: float = 100_000.0) -> None:
    b = GRID.bin_id(np.array([price]))
    insert_frame(con, "model.ofi_bins", pd.DataFrame({
        "symbol": SYMBOL, "day": day, "bin_id": b, "price_mid": GRID.mid(b), "buy_qty": [1.0], "sell_qty": [1.0],
        "ofi": [0.0], "long_prob": [long_prob], "split_known": [True]}))


def book_day(con, day: dt.date = DAY, variants: tuple[str, ...] = ("hybrid",)):
    materialize_flow_day(con, SYMBOL, day)
    return compute_heatmap_day(con, SYMBOL, day, variants=variants)


def test_level_crossed_by_mark_disappears_one_crossed_only_by_last_price_stays(con):
    insert_book(con, DAY - dt.timedelta(days=1), [("long", 95_000, 5e6), ("long", 97_000, 7e6), ("short", 105_000, 3e6)])
    close = np.full(1440, 100_000.0)
    mark_low = close.copy()
    mark_low[300] = 96_500.0  # mark dips through the 97k long level at 05:00
    last_low = close.copy()
    last_low[600] = 94_000.0  # only the last price wicks through the 95k long level at 10:00
    insert_candles(con, "raw.mark_price_klines", DAY, close, low=mark_low)
    insert_candles(con, "raw.klines", DAY, close, low=last_low)
    insert_trades(con, DAY, close)
    insert_oi(con, DAY, np.full(288, 1e9))

    result = book_day(con)
    state = end_state(result)
    assert level_at(state, "long", 97_000) == 0.0
    assert level_at(state, "long", 95_000) == pytest.approx(5e6)
    assert level_at(state, "short", 105_000) == pytest.approx(3e6)
    ev = result.variants["hybrid"].evolution
    assert ev.consumed_long_usd.sum() == pytest.approx(7e6)
    assert np.flatnonzero(ev.consumed_long_usd)[0] == 300 // 15  # consumed in the 05:00-05:15 step
    assert result.inputs.mark_source == "mark_price_klines"


def test_missing_mark_klines_fall_back_to_last_price_with_a_flag(con):
    insert_book(con, DAY - dt.timedelta(days=1), [("long", 95_000, 5e6)])
    close = np.full(1440, 100_000.0)
    low = close.copy()
    low[600] = 94_000.0
    insert_candles(con, "raw.klines", DAY, close, low=low)
    insert_oi(con, DAY, np.full(288, 1e9))
    result = book_day(con)
    assert level_at(end_state(result), "long", 95_000) == 0.0
    assert result.inputs.mark_source == "klines"
    assert any("last-price klines used" in f for f in result.flags)


def test_falling_oi_shrinks_every_level_proportionally(con):
    insert_book(con, DAY - dt.timedelta(days=1), [("long", 95_000, 4e6), ("short", 105_000, 6e6)])
    flat_day_without_oi(con)
    oi = np.full(288, 1e7)
    oi[144:] = 0.8e7  # OI (all of it in the book here) falls 20 % at 12:00
    insert_oi(con, DAY, oi)
    state = end_state(book_day(con))
    assert level_at(state, "long", 95_000) == pytest.approx(3.2e6)
    assert level_at(state, "short", 105_000) == pytest.approx(4.8e6)


def test_stale_oi_samples_are_ignored(con):
    insert_book(con, DAY - dt.timedelta(days=1), [("long", 95_000, 4e6)])
    flat_day_without_oi(con)
    oi = np.full(288, 4e6)
    stale = np.zeros(288, bool)
    oi[100], stale[100] = 2e6, True  # one stale sample: must neither shrink nor re-grow the levels
    insert_oi(con, DAY, oi, stale)
    state = end_state(book_day(con))
    assert level_at(state, "long", 95_000) == pytest.approx(4e6)


def flat_day_without_oi(con) -> np.ndarray:
    close = np.full(1440, 100_000.0)
    insert_candles(con, "raw.mark_price_klines", DAY, close)
    insert_candles(con, "raw.klines", DAY, close)
    insert_trades(con, DAY, close)
    return close


def test_rising_oi_opens_levels_split_by_each_variants_rule(con):
    insert_ofi(con, DAY - dt.timedelta(days=1), long_prob=0.8)
    flat_day_without_oi(con)
    oi = np.full(288, 1e9)
    oi[144:] = 1.1e9  # +$100M at 12:00
    insert_oi(con, DAY, oi)
    result = book_day(con, variants=("hybrid", "ofi", "volume_5050"))
    hyb = end_state(result, "hybrid")
    long_total = hyb.notional[hm.LONG_ROW].sum()
    short_total = hyb.notional[hm.SHORT_ROW].sum()
    assert long_total + short_total == pytest.approx(1e8, rel=1e-6)
    # No funding: hybrid splits by the entry bin's OFI probability of D−1, like ofi; volume_5050 50/50.
    assert long_total / (long_total + short_total) == pytest.approx(0.8, rel=1e-6)
    ofi = end_state(result, "ofi")
    assert ofi.notional[hm.LONG_ROW].sum() == pytest.approx(8e7, rel=1e-6)
    assert end_state(result, "volume_5050").notional[hm.LONG_ROW].sum() == pytest.approx(5e7, rel=1e-6)
    price = GRID.mid(hyb.bin_id)
    assert np.all(price[hyb.notional[hm.LONG_ROW] > 0] < 100_000)  # longs liquidate below entry
    assert np.all(price[hyb.notional[hm.SHORT_ROW] > 0] > 100_000)
    assert result.variants["hybrid"].start_state == "flow_book D-1"


def test_next_day_starts_from_previous_day_end_state(con):
    prev = DAY - dt.timedelta(days=1)
    insert_book(con, prev - dt.timedelta(days=1), [("long", 95_000, 5e6), ("short", 104_000, 2e6)])
    for day in (prev, DAY):
        close = np.full(1440, 100_000.0)
        insert_candles(con, "raw.mark_price_klines", day, close)
        insert_candles(con, "raw.klines", day, close)
        insert_trades(con, day, close)
    oi_prev = np.full(288, 7e6)
    oi_prev[200:] = 6.3e6
    insert_oi(con, prev, oi_prev)
    insert_oi(con, DAY, np.full(288, 6.3e6))

    first = book_day(con, prev)
    second = book_day(con, DAY)
    a, b = end_state(first), end_state(second)
    assert level_at(b, "long", 95_000) == pytest.approx(level_at(a, "long", 95_000)) == pytest.approx(4.5e6)
    # The first snapshot of D continues the last of D-1 (nothing happened at 00:00-00:15).
    ev = second.variants["hybrid"].evolution
    assert ev.notional_usd[ev.step == 0].sum() == pytest.approx(a.total_usd)


@pytest.mark.slow  # pictures and reports through Dagster
def test_assets_materialize_heatmap_zones_pictures_and_report(tmp_path, monkeypatch):
    """A two-day range run: day 2 starts from day 1's heatmap; pictures, report and zones are produced."""
    monkeypatch.setenv("LIQ_DATA_DIR", str(tmp_path / "data"))
    db = tmp_path / "w.duckdb"
    prev = DAY - dt.timedelta(days=1)
    with duckdb.connect(str(db)) as c:
        insert_levels(c, prev - dt.timedelta(days=1), [("long", 95_000, 5e6), ("long", 95_100, 4e6),
                                                       ("short", 104_000, 6e6)])
        rng = np.random.default_rng(3)
        for day in (prev, DAY):
            insert_distribution(c, day - dt.timedelta(days=1), long_share=0.6)
            close = 100_000 * np.exp(np.cumsum(rng.normal(0, 0.0008, 1440)))
            insert_candles(c, "raw.mark_price_klines", day, close, high=close * 1.0005, low=close * 0.9995)
            insert_candles(c, "raw.klines", day, close, high=close * 1.0007, low=close * 0.9993)
            insert_trades(c, day, close)
            insert_oi(c, day, 1e9 * (1 + 0.05 * np.sin(np.arange(288) / 20)))
    result = dg.materialize(
        [flow_book, liquidation_heatmap, liquidation_zones], resources={"duckdb": DuckDBResource(database=str(db))},
        tags={"dagster/asset_partition_range_start": f"{prev.isoformat()}|{SYMBOL}",
              "dagster/asset_partition_range_end": f"{DAY.isoformat()}|{SYMBOL}"},
        instance=dg.DagsterInstance.ephemeral())
    assert result.success
    # Each partition of the range run carries its own day's pictures, zones, report and bookkeeping.
    by_day = {m.partition: m.metadata for m in result.asset_materializations_for_node("liquidation_heatmap")}
    assert set(by_day) == {f"{d.isoformat()}|{SYMBOL}" for d in (prev, DAY)}
    for day, start in ((prev, "flow_book D-1"), (DAY, "flow_book D-1")):
        meta = by_day[f"{day.isoformat()}|{SYMBOL}"]
        assert meta["partition"].value == f"{SYMBOL} {day}"
        assert meta["start_state"].value["hybrid"] == start
        assert meta["heatmap"].value.startswith(f"![{SYMBOL} {day} liquidation heatmap ({variant_registry.DEFAULT})](data:image/png;base64,")
        assert meta["liquidation_map"].value.startswith(f"![{SYMBOL} {day} liquidation map](data:image/png;base64,")
        assert meta["top_zones"].value.startswith(f"{SYMBOL} {day}, end of day")
        assert meta["report"].value.endswith(f"heatmap-{SYMBOL}-{day.isoformat()}.html")
        assert meta["run_range"].value.startswith(f"{prev}…{DAY}, 2 symbol-days")
    assert by_day[f"{prev.isoformat()}|{SYMBOL}"]["heatmap"].value != by_day[f"{DAY.isoformat()}|{SYMBOL}"]["heatmap"].value
    zone_meta = {m.partition: m.metadata for m in result.asset_materializations_for_node("liquidation_zones")}
    assert zone_meta[f"{prev.isoformat()}|{SYMBOL}"][f"top_zones_{variant_registry.DEFAULT}"].value.startswith(f"{SYMBOL} {prev}")
    report = config.reports_dir() / f"heatmap-{SYMBOL}-{DAY.isoformat()}.html"
    assert report.exists() and str(tmp_path) in str(report.resolve())
    html = report.read_text()
    # plotly.js beside the report (works offline), every variant in the menu.
    assert 'src="http' not in html and (report.parent / "plotly.min.js").exists()
    assert all(f'"label":"{v}"' in html for v in variant_registry.NAMES)
    with duckdb.connect(str(db), read_only=True) as c:
        variants = {v for (v,) in c.execute("SELECT DISTINCT variant FROM model.liquidation_heatmap").fetchall()}
        assert variants == set(variant_registry.NAMES)
        snaps = c.execute("SELECT day, count(DISTINCT snapshot_time) FROM model.liquidation_heatmap "
                          "WHERE variant = 'hybrid' GROUP BY day ORDER BY day").fetchall()
        assert snaps == [(prev, 96), (DAY, 96)]
        zones = c.execute("SELECT day, side, zone_rank, price_low, price_high, centroid_price, share_of_side "
                          "FROM model.liquidation_zones WHERE variant = 'hybrid' ORDER BY day, side, zone_rank"
                          ).fetchall()
    assert {z[0] for z in zones} == {prev, DAY}, "zones expected for both days"
    for _day, _side, _rank, low, high, centroid, share in zones:
        assert low <= centroid <= high and 0 < share <= 1
