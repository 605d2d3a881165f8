"""`liq serve` reads the answer files (docs/answer-files.md): the same page data as from the warehouse, and
answers while a writer holds the warehouse's lock (realized liquidations then said to be unavailable)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from liq_pipeline.apps import serve_data as sd
from liq_pipeline.warehouse import answer_files as af
from liq_pipeline.warehouse import answer_view
from liq_pipeline.warehouse.answer_view import AnswerSource
from liq_pipeline_tests.support.serve_answers import NOW, from_warehouse, writer_holds
from liq_pipeline_tests.support.shared_market import LAST, SYMBOL, copy_market


@pytest.fixture(scope="module")
def market(shared_market, tmp_path_factory):
    copy = copy_market(shared_market, tmp_path_factory.mktemp("serve-answers") / "market")
    mp = copy.env()
    yield copy.db
    mp.undo()


def page(src: AnswerSource, **params) -> tuple[dict, dict]:
    catalog = src.materialized()
    q = sd.parse_query({"symbol": SYMBOL, **params}, catalog)
    return sd.view(src, q, NOW, catalog), sd.instant(src, q, q.end - dt.timedelta(hours=5))


@pytest.mark.parametrize("params", [{"lookback": "1d"}, {"lookback": "3d", "end": "2026-01-04T06:00"},
                                    {"lookback": "range", "from": "2026-01-02", "to": "2026-01-03"}])
def test_the_page_reads_the_same_from_the_files_as_from_the_warehouse(market, params):
    assert af.days_with(af.folder_for(market), SYMBOL, af.HEATMAP_SUFFIX)
    with AnswerSource(str(market)) as files, from_warehouse(market) as warehouse:
        assert files.materialized() == warehouse.materialized()
        (view_f, inst_f), (view_w, inst_w) = page(files, **params), page(warehouse, **params)
    for key in ("times", "price_low", "shape", "usd", "totals_last", "candles", "mark", "candle_minutes"):
        assert view_f[key] == view_w[key], key
    assert view_f["shape"][1] > 10 and len(view_f["candles"]["t"]) > 10
    assert inst_f["time"] == inst_w["time"] and inst_f["mark"] == inst_w["mark"] and inst_f["mark"] is not None
    for side in ("long", "short"):
        assert np.allclose(inst_f["sides"][side]["usd"], inst_w["sides"][side]["usd"])
    assert inst_f["zones"] == inst_w["zones"]


def test_the_page_answers_while_a_writer_holds_the_warehouse(market):
    answer_view._REALIZED_DAYS.clear()  # nothing known of the realized liquidations: the page must ask
    with writer_holds(market), AnswerSource(str(market)) as src:
        view, instant = page(src, lookback="1d")
    assert view["shape"][1] > 10 and instant["sides"]["long"]["total_usd"] > 0
    assert "realized liquidations not shown: the warehouse is locked by a running materialization" in view["notes"]


def test_a_window_without_realized_liquidations_does_not_open_the_warehouse(market):
    with AnswerSource(str(market)) as src:
        page(src, lookback="1d")  # learns which days hold realized liquidations (none in this market)
    with writer_holds(market), AnswerSource(str(market)) as src:
        view, _ = page(src, lookback="1d")
        assert src._con is None and not [n for n in view["notes"] if "realized" in n]


def test_a_corrupt_answer_file_is_refused_naming_it(market, tmp_path):
    copy = tmp_path / "w"
    copy.mkdir()
    folder = af.folder_for(copy / "liq.duckdb")
    source = af.folder_for(market)
    (folder / SYMBOL).mkdir(parents=True)
    for p in (source / SYMBOL).iterdir():
        (folder / SYMBOL / p.name).write_bytes(p.read_bytes())
    bad = af.heatmap_path(folder, SYMBOL, LAST)
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(af.AnswerFileError, match=f"answer file {bad}: truncated"):
        with AnswerSource(str(copy / "liq.duckdb")) as src:
            page(src, lookback="1d")
