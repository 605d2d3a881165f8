"""The answer files' format (warehouse/answer_files.py): a round trip, the atomic replace under concurrent
readers, and a clear error naming the file for each way a file can be bad."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from liq_pipeline.warehouse import answer_files as af

DAY = dt.date(2026, 1, 5)
T0 = dt.datetime(2026, 1, 5, 0, 15)
PRICES = {100: 95_000.0, 101: 95_100.5, 200: 103_000.25, 201: 103_200.0}


def snapshot(minutes: int, scale: float, mark=100_000.0, table="raw.mark_price_klines") -> af.Snapshot:
    longs, shorts = [100, 101], [200, 201]
    usd = [scale * x for x in (5e6, 7e6, 3e6, 4e6)]
    return af.Snapshot(T0 + dt.timedelta(minutes=minutes), 2, 2, af.pack_levels(longs + shorts, usd), mark, table)


def heatmap_bytes(scale: float = 1.0) -> bytes:
    bins = sorted(PRICES)
    return af.encode_heatmap("BTCUSDT", DAY, af.pack_prices(bins, [PRICES[b] for b in bins]), {
        "flow": [snapshot(15, 2 * scale), snapshot(0, scale)],  # written out of order: stored by time
        "ofi": [snapshot(0, 10 * scale, None, "")]})


@pytest.fixture
def folder(tmp_path):
    return af.folder_for(tmp_path / "liq.duckdb")


def write(folder, data: bytes = b"") -> af.Path:
    path = af.heatmap_path(folder, "BTCUSDT", DAY)
    af.write_atomically(path, data or heatmap_bytes())
    return path


def test_folder_sits_beside_the_warehouse_or_under_a_local_parquet_root(tmp_path):
    assert af.folder_for(tmp_path / "w" / "liq.duckdb") == tmp_path / "w" / "liq.answers"
    assert af.folder_for(None, "parquet", str(tmp_path / "pq")) == tmp_path / "pq" / "answers"
    assert af.folder_for(None, "parquet", "s3://bucket/pq") is None


def test_round_trip_gives_each_snapshot_its_levels_by_price_and_its_mark(folder):
    path = write(folder)
    with af.HeatmapFile(path) as f:
        assert (f.symbol, f.day, sorted(f.variants)) == ("BTCUSDT", DAY, ["flow", "ofi"])
        assert f.times("flow") == ["2026-01-05T00:15:00", "2026-01-05T00:30:00"]
        assert f.levels("flow", 1) == [("long", 100, 95_000.0, 10e6), ("long", 101, 95_100.5, 14e6),
                                       ("short", 200, 103_000.25, 6e6), ("short", 201, 103_200.0, 8e6)]
        assert f.mark("flow", 0) == (100_000.0, "raw.mark_price_klines")
        assert f.mark("ofi", 0) == (None, "")
        assert f.index_at("flow", dt.datetime(2026, 1, 5, 0, 29)) == 0
        assert f.index_at("flow", dt.datetime(2026, 1, 5, 0, 10)) is None
        assert f.index_at("flow", None) == 1
    assert af.days_with(folder, "BTCUSDT", af.HEATMAP_SUFFIX) == [DAY]
    assert af.days_with(folder, "ETHUSDT", af.HEATMAP_SUFFIX) == []


def test_heatmap_answer_takes_the_snapshot_at_or_before_and_the_day_before_at_midnight(folder):
    write(folder)
    answer = af.heatmap_answer(folder, "BTCUSDT", "flow", dt.datetime(2026, 1, 5, 0, 20))
    assert (answer.snapshot, answer.day, answer.levels[0][3]) == (dt.datetime(2026, 1, 5, 0, 15), DAY, 5e6)
    assert af.heatmap_answer(folder, "BTCUSDT", "flow", None).snapshot == dt.datetime(2026, 1, 5, 0, 30)
    # No file for the day (or, before the first snapshot, for the day before): the warehouse answers.
    assert af.heatmap_answer(folder, "BTCUSDT", "flow", dt.datetime(2026, 1, 6, 12)) is None
    assert af.heatmap_answer(folder, "BTCUSDT", "flow", dt.datetime(2026, 1, 5, 0, 5)) is None


def test_zones_round_trip_by_variant_side_and_rank(folder):
    as_of = dt.datetime(2026, 1, 6)
    rows = [("short", 1, 103_000.0, 102_900.0, 103_100.0, 4e6, 3.0, 0.45, as_of),
            ("long", 2, 95_000.0, 94_800.0, 95_200.0, 5e6, -5.0, 0.3, as_of),
            ("long", 1, 97_000.0, 96_500.0, 97_400.0, 7e6, -3.0, 0.5, as_of)]
    af.write_atomically(af.zones_path(folder, "BTCUSDT", DAY), af.encode_zones("BTCUSDT", DAY, {"flow": rows}))
    day, got = af.zones_answer(folder, "BTCUSDT", "flow", None)
    assert day == DAY and got == sorted(rows, key=lambda r: (r[0], r[1]))
    assert af.zones_answer(folder, "BTCUSDT", "ofi", DAY) == (DAY, [])
    assert af.zones_answer(folder, "BTCUSDT", "flow", DAY + dt.timedelta(days=1)) is None


def test_a_replaced_file_is_read_whole_old_or_new_never_mixed(folder):
    """Writers replace the file over and over while readers read it: every read is one of the two versions."""
    old, new = heatmap_bytes(1.0), heatmap_bytes(3.0)
    path = write(folder, old)
    expected = {}
    for data in (old, new):
        probe = folder / "probe.heatmap"
        af.write_atomically(probe, data)
        with af.HeatmapFile(probe) as f:
            expected[tuple(f.levels("flow", 1))] = tuple(f.levels("ofi", 0))
    stop = threading.Event()
    errors: list[str] = []

    def writer():
        i = 0
        while not stop.is_set():
            af.write_atomically(path, new if i % 2 else old)
            i += 1

    def reader():
        for _ in range(400):
            try:
                with af.HeatmapFile(path) as f:
                    first = tuple(f.levels("flow", 1))
                    second = tuple(f.levels("ofi", 0))
                if expected.get(first) != second:
                    errors.append(f"mixed read: {first[0]} with {second[0]}")
            except af.AnswerFileError as e:
                errors.append(str(e))

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    stop.set()
    threads[0].join()
    assert errors == []
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")], "a temporary file was left behind"


@pytest.mark.parametrize(("damage", "words"), [
    (lambda b: b[:5], "truncated"),
    (lambda b: b[:40], "truncated in its header"),
    (lambda b: b[:-7], "truncated: "),
    (lambda b: b + b"xx", "longer than written"),
    (lambda b: b"PK\x03\x04" + b[4:], "not a liq heatmap answer file"),
    (lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:], "corrupt header"),
    (lambda b: b[:-3] + bytes([b[-3] ^ 0xFF]) + b[-2:], "corrupt block ofi"),
    (lambda b: b"", "not a liq heatmap answer file"),
])
def test_a_bad_file_is_refused_with_its_cause_and_its_path(folder, damage, words):
    path = write(folder)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(af.AnswerFileError, match=words) as e:
        with af.HeatmapFile(path) as f:
            f.levels("ofi", 0)
    assert str(path) in str(e.value)


def test_a_variant_the_file_does_not_hold_is_named_with_those_it_holds(folder):
    write(folder)
    with pytest.raises(af.AnswerFileError, match=r"no 'hybrid' heatmap .* \(variants: flow, ofi\)"):
        af.heatmap_answer(folder, "BTCUSDT", "hybrid", None)


@pytest.mark.parametrize(("text", "words"), [("{\"format\": \"liq-zo", "corrupt or truncated"),
                                             ("[1, 2]", "not a liq zones answer file"),
                                             ("{\"format\": \"other\"}", "not a liq zones answer file")])
def test_a_bad_zones_file_is_refused_with_its_cause(folder, text, words):
    path = af.zones_path(folder, "BTCUSDT", DAY)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(af.AnswerFileError, match=words):
        af.zones_answer(folder, "BTCUSDT", "flow", DAY)


def test_a_block_that_does_not_match_its_level_counts_is_not_written():
    with pytest.raises(ValueError, match="bytes for 3 levels"):
        af.encode_heatmap("BTCUSDT", DAY, af.pack_prices([1], [1.0]),
                          {"flow": [af.Snapshot(T0, 2, 1, af.pack_levels([1, 1], [1.0, 2.0]), None, "")]})


def test_a_side_out_of_bin_order_is_refused_when_written():
    """Readers take a window of a side's bins by bisection (`block_in`): the writer refuses levels out of order."""
    with pytest.raises(ValueError, match="short levels are not in ascending bin"):
        af.encode_heatmap("BTCUSDT", DAY, af.pack_prices([1, 2, 3], [1.0, 2.0, 3.0]),
                          {"flow": [af.Snapshot(T0, 1, 2, af.pack_levels([1, 3, 2], [1.0, 2.0, 3.0]), None, "")]})


@pytest.mark.parametrize(("low", "high"), [(-(2**31), 2**31 - 1), (101, 200), (100, 100), (102, 199), (0, 99),
                                           (201, 10**6), (150, 150)])
def test_a_window_of_bins_is_the_block_s_levels_inside_it(tmp_path, low, high):
    path = tmp_path / "x.heatmap"
    path.write_bytes(heatmap_bytes())
    with af.HeatmapFile(path) as f:
        for i in range(len(f.times("flow"))):
            n_long, n_short, bins, usd = f.block("flow", i)
            kept = [(k < n_long, b, u) for k, (b, u) in enumerate(zip(bins, usd, strict=True)) if low <= b <= high]
            k_long, k_short, b_bytes, u_bytes = f.block_in("flow", i, low, high)
            assert (k_long, k_short) == (sum(x[0] for x in kept), sum(not x[0] for x in kept))
            assert list(af._unpack("i", b_bytes)) == [x[1] for x in kept]
            assert list(af._unpack("d", u_bytes)) == [x[2] for x in kept]
