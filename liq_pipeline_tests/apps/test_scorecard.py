"""The real-data scorecard's plain parts: reading a mirror's layout, planning the days, the environment
guard, the targets, and what a learning variant stored."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from liq_pipeline.apps import scorecard
from liq_pipeline.market.formats import KLINES_COLUMNS, ArchiveFile
from liq_pipeline_tests.support.mirror_fixture import write_zip


def _mirror(root, days, mark=True):
    for day in days:
        write_zip(root, ArchiveFile("klines", "BTCUSDT", day, interval="15m"), KLINES_COLUMNS, [])
        write_zip(root, ArchiveFile("klines", "BTCUSDT", day, interval="1h"), KLINES_COLUMNS, [])
        if mark:
            write_zip(root, ArchiveFile("markPriceKlines", "BTCUSDT", day, interval="1h"), KLINES_COLUMNS, [])


def test_layout_and_plan_come_from_the_mirror_files(tmp_path):
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(10)]
    _mirror(tmp_path, days)
    (tmp_path / "realized_liquidations_1h.csv").write_text("bar_start_ms,long_usd,short_usd\n")
    run = scorecard.plan_run(tmp_path, tmp_path / "out", warm_up_days=3)
    assert (run.layout.kline_interval, run.layout.mark_interval) == ("15m", "1h")
    assert (run.first_day, run.score_from, run.last_day) == (days[0], days[3], days[-1])
    assert run.liquidations == tmp_path / "realized_liquidations_1h.csv"
    env = run.env()
    assert env["LIQ_SOURCE"] == "mirror" and env["LIQ_PROFILE_SOURCE"] == "klines"
    assert env["LIQ_WAREHOUSE"].startswith(env["LIQ_DATA_DIR"])  # never the demo's warehouse
    with pytest.raises(ValueError, match="not inside the mirror"):
        scorecard.plan_run(tmp_path, tmp_path / "out", last_day=dt.date(2026, 2, 1))
    with pytest.raises(ValueError, match="leave no day to score"):
        scorecard.plan_run(tmp_path, tmp_path / "out", first_day=days[-2], warm_up_days=3)


def test_missing_parts_of_a_mirror_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no mirror folder"):
        scorecard.plan_run(tmp_path / "absent", tmp_path / "out")
    _mirror(tmp_path, [dt.date(2026, 1, 1)], mark=False)
    with pytest.raises(FileNotFoundError, match="no daily mark-price klines of BTCUSDT"):
        scorecard.plan_run(tmp_path, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no daily klines of ETHUSDT"):
        scorecard.plan_run(tmp_path, tmp_path / "out", symbol="ETHUSDT")


def test_the_chain_refuses_a_process_not_set_for_the_run(tmp_path, monkeypatch):
    _mirror(tmp_path, [dt.date(2026, 1, 1), dt.date(2026, 1, 2)])
    run = scorecard.plan_run(tmp_path, tmp_path / "out", warm_up_days=1)
    monkeypatch.setenv("LIQ_SOURCE", "simulated")
    with pytest.raises(RuntimeError, match="LIQ_SOURCE"):
        scorecard.run_chain(run)


def test_targets_are_checked_on_the_variant_figures():
    met = scorecard.targets_for({"spearman_map": 0.76, "spearman_side_excursion": 0.73, "partial_spearman": 0.5,
                                 "top10_recall_vs_excursion": 1.2, "realized_share_where_map_zero": 0.05})
    assert set(met) == set(scorecard.TARGETS)
    assert all(t["met"] for t in met.values())
    missed = scorecard.targets_for({"spearman_map": 0.75, "spearman_side_excursion": 0.73, "partial_spearman": 0.49,
                                    "top10_recall_vs_excursion": 1.19, "realized_share_where_map_zero": 0.051})
    assert not any(t["met"] for t in missed.values())
    assert missed["rho_minus_excursion"]["value"] == pytest.approx(0.02)
    unknown = scorecard.targets_for({})
    assert all(t["met"] is None for t in unknown.values())


def test_learned_parameters_are_read_from_the_learning_variant():
    con = duckdb.connect()
    assert scorecard.learned_parameters(con, "BTCUSDT", dt.date(2026, 1, 1), dt.date(2026, 1, 2)) == {}
    con.execute("CREATE SCHEMA model")
    con.execute("""CREATE TABLE model.flow_parameters (symbol VARCHAR, day DATE, parameter VARCHAR, side VARCHAR,
                   value DOUBLE, source VARCHAR, detail VARCHAR)""")
    con.execute("""INSERT INTO model.flow_parameters VALUES
        ('BTCUSDT', DATE '2026-01-01', 'near_liquidation_share', 'long', 0.5, 'prior', ''),
        ('BTCUSDT', DATE '2026-01-02', 'near_liquidation_share', 'long', 0.3, 'learned', ''),
        ('BTCUSDT', DATE '2026-01-02', 'weight_10x', 'long', 0.6, 'learned', ''),
        ('ETHUSDT', DATE '2026-01-02', 'near_liquidation_share', 'long', 0.9, 'learned', '')""")
    learned = scorecard.learned_parameters(con, "BTCUSDT", dt.date(2026, 1, 1), dt.date(2026, 1, 2))
    assert learned["as_of"] == "2026-01-02"
    assert learned["values"] == {"long": {"near_liquidation_share": 0.3, "weight_10x": 0.6}}
    assert learned["near_share_source_days"] == {"learned": 1, "prior": 1}
    assert learned["sources"] == {"long": {"near_liquidation_share": "learned", "weight_10x": "learned"}}
