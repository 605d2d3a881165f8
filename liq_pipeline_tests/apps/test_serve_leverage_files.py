"""The leverage filter of `liq serve` reads the flow book from the answer files' leverage blocks (issue 29: it
opened the warehouse and summed model.flow_book per request): the same page as from the warehouse, an answer
while a writer holds the warehouse's lock, the warehouse again for a file written before the blocks, and a
corrupt block refused naming its file."""

from __future__ import annotations

import base64
import datetime as dt

import numpy as np
import pytest

from liq_pipeline.apps import serve_data as sd
from liq_pipeline.model.grid import grid_for
from liq_pipeline.warehouse import answer_files as af
from liq_pipeline.warehouse import heatmap_view as wv
from liq_pipeline.warehouse.answer_view import AnswerSource
from liq_pipeline_tests.support.serve_answers import NOW, from_warehouse, writer_holds
from liq_pipeline_tests.support.shared_market import FIRST, LAST, SYMBOL, copy_market

LEV = "3,5,10,20"


@pytest.fixture(scope="module")
def market(shared_market, tmp_path_factory):
    copy = copy_market(shared_market, tmp_path_factory.mktemp("serve-leverage") / "market")
    mp = copy.env()
    yield copy.db
    mp.undo()


def usd(view: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(view["usd"]), "<f4")


def leverage_page(src: AnswerSource, **params) -> tuple[dict, dict]:
    catalog = src.materialized()
    q = sd.parse_query({"symbol": SYMBOL, "lev": LEV, **params}, catalog)
    return sd.view(src, q, NOW, catalog), sd.instant(src, q, q.end - dt.timedelta(hours=5))


def test_every_heatmap_file_holds_the_book_of_its_day_by_leverage_bucket(market):
    folder = af.folder_for(market)
    days = af.days_with(folder, SYMBOL, af.HEATMAP_SUFFIX)
    assert days[0] <= FIRST + dt.timedelta(days=1) and days[-1] == LAST
    with wv.open_read_only(market) as con:
        for day in days:
            with af.HeatmapFile(af.heatmap_path(folder, SYMBOL, day)) as f:
                assert f.leverage("hybrid") is None  # the seed's fixed mix: not offered by the filter
                n, data = f.leverage("flow")
            book = wv.flow_book_leverage(con, SYMBOL, "flow", grid_for(SYMBOL), day, day)
            assert n == book["notional_usd"].size > 0
            stored = {(int(s), int(b), int(k)): v for b, k, s, v in zip(
                *(np.frombuffer(data, "<i4", n, 4 * n * c) for c in range(3)), np.frombuffer(data, "<f8", n, 12 * n),
                strict=True)}
            assert stored == {(int(s), int(b), int(k)): float(v) for s, b, k, v in zip(
                book["side"], book["bin_id"], book["lev_bucket"], book["notional_usd"], strict=True)}


@pytest.mark.parametrize("params", [{"lookback": "1d"}, {"lookback": "3d", "end": "2026-01-04T06:00"}])
def test_the_leverage_filter_reads_the_same_from_the_files_as_from_the_warehouse(market, params):
    with AnswerSource(str(market)) as files, from_warehouse(market) as warehouse:
        (view_f, inst_f), (view_w, inst_w) = leverage_page(files, **params), leverage_page(warehouse, **params)
    assert view_f["shape"] == view_w["shape"] and view_f["leverages"] == view_w["leverages"] == [3, 5, 10, 20]
    # The same book summed in another order (the warehouse's GROUP BY has none): equal to the last bits.
    assert np.allclose(usd(view_f), usd(view_w), rtol=1e-6, atol=0) and usd(view_f).sum() > 0
    assert view_f["totals_last"] == pytest.approx(view_w["totals_last"], rel=1e-12)
    for side in ("long", "short"):
        assert np.allclose(inst_f["sides"][side]["usd"], inst_w["sides"][side]["usd"], rtol=1e-12, atol=0)
    with AnswerSource(str(market)) as files:  # and less than the whole book
        whole = sd.view(files, sd.parse_query({"symbol": SYMBOL, **params}, files.materialized()), NOW)
    assert 0 < usd(view_f).sum() < usd(whole).sum()


def test_the_leverage_filter_answers_while_a_writer_holds_the_warehouse(market):
    with AnswerSource(str(market)) as src:
        expected, _ = leverage_page(src, lookback="1d")
    with writer_holds(market), AnswerSource(str(market)) as src:
        view, _ = leverage_page(src, lookback="1d")
        assert src._con is None  # neither the book nor the realized liquidations opened it
    assert view["usd"] == expected["usd"]


def test_a_file_without_leverage_blocks_falls_back_to_the_warehouse(market, monkeypatch):
    with from_warehouse(market) as warehouse:
        expected, _ = leverage_page(warehouse, lookback="1d")
    monkeypatch.setattr(af.HeatmapFile, "leverage", lambda self, variant: None)  # as written before the blocks
    with AnswerSource(str(market)) as src:
        view, _ = leverage_page(src, lookback="1d")
        assert src._con is not None
    assert view["usd"] == expected["usd"]


def test_a_corrupt_leverage_block_is_refused_naming_the_file(tmp_path):
    block = af.pack_leverage([10, 11], [0, 3], [1, -1], [5.0, 7.5])
    data = bytearray(af.encode_heatmap(SYMBOL, LAST, af.pack_prices([10, 11], [1.0, 2.0]), {}, leverage={"flow": block}))
    path = tmp_path / "x.heatmap"
    path.write_bytes(bytes(data))
    with af.HeatmapFile(path) as f:
        assert f.leverage("flow") == (2, block) and f.leverage("other") is None
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with af.HeatmapFile(path) as f, pytest.raises(af.AnswerFileError, match=f"answer file {path}: corrupt flow leverage"):
        f.leverage("flow")
    with pytest.raises(ValueError, match="a leverage block of 19 bytes is not n × 20"):
        af.encode_heatmap(SYMBOL, LAST, b"", {}, leverage={"flow": block[:19]})
