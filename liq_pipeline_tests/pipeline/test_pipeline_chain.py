"""The whole chain on a small simulated market, through the real Definitions: simulator → archive files →
raw tables (round trip against the simulator's ground truth) → model → heatmap → zones → validation report.

This is what `make demo` does, at a scale that takes seconds.
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import duckdb
import pytest

from liq_pipeline.config import FLOW
from liq_pipeline.model import variants
from liq_pipeline_tests.support.shared_market import DAYS, FIRST, SYMBOL, copy_market, materializer


@pytest.fixture(scope="module")
def chain(shared_market):
    """The run's shared market (support/shared_market.py), read only."""
    return {"tmp": shared_market.root, "summary": shared_market.summary, "checks": shared_market.checks,
            "db": shared_market.db}


@pytest.fixture
def writable_chain(shared_market, tmp_path):
    """A copy of the shared market, for the tests that materialize again or change tables."""
    market = copy_market(shared_market, tmp_path / "market")
    mp = market.env()
    yield {"tmp": market.root, "db": market.db, "run": materializer()}
    mp.undo()


def _query(chain, sql, params=None):
    with duckdb.connect(str(chain["db"]), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_raw_tables_hold_exactly_what_the_simulator_wrote(chain):
    rows = chain["summary"]["rows"]
    for table, kind in [("raw.agg_trades", "aggTrades"), ("raw.klines", "klines"),
                        ("raw.mark_price_klines", "markPriceKlines"), ("raw.open_interest", "metrics"),
                        ("raw.funding_rates", "fundingRate")]:
        assert _query(chain, f"SELECT count(*) FROM {table}")[0][0] == rows[kind], table
    # aggTrade ids are continuous across the whole range, and each trade sits in its partition day
    lo, hi, n, outside = _query(chain, """SELECT min(agg_trade_id), max(agg_trade_id), count(*),
        count(*) FILTER (WHERE CAST(transact_time AS DATE) <> day) FROM raw.agg_trades""")[0]
    assert hi - lo + 1 == n and outside == 0


def test_open_interest_is_sum_long_and_sum_short_of_the_true_open_positions_at_day_ends(chain):
    # Every contract has a holder on each side (speculators and providers): the 00:00 sample of D+1 is the
    # book at the end of D.
    n, worst_oi, worst_sides = _query(chain, """
        WITH book AS (
            SELECT day, sum(quantity) FILTER (WHERE side = 'long') AS longs,
                   sum(quantity) FILTER (WHERE side = 'short') AS shorts
            FROM truth.open_positions GROUP BY day)
        SELECT count(*), max(abs(o.sum_open_interest - b.longs)), max(abs(b.longs - b.shorts))
        FROM book b JOIN raw.open_interest o ON o.create_time = b.day + INTERVAL 1 DAY""")[0]
    assert n == DAYS - 1 and worst_oi < 1e-6 and worst_sides < 1e-6


def test_every_true_liquidation_was_triggered_by_mark_price(chain):
    total, crossed, orphans = _query(chain, """
        SELECT count(*),
               count(*) FILTER (WHERE (l.side = 'long' AND m.low <= l.price) OR (l.side = 'short' AND m.high >= l.price)),
               count(*) FILTER (WHERE p.outcome IS DISTINCT FROM 'liquidated')
        FROM truth.liquidations l
        JOIN raw.mark_price_klines m ON m.symbol = l.symbol AND m.open_time = date_trunc('minute', l.liq_time)
        LEFT JOIN truth.positions p USING (position_id)""")[0]
    assert total == chain["summary"]["liquidations"] > 0
    assert crossed == total and orphans == 0


def test_model_checks_hold_on_the_simulated_market(chain):
    # check names may end in the symbol (one check per symbol): compare on the check's own name
    evaluations = {name.removesuffix(f"_{SYMBOL}"): passed for name, passed in chain["checks"]["model"].items()}
    for check in ["position_distribution/oi_is_conserved", "liquidation_levels/longs_liquidate_below_mark",
                  "liquidation_levels/shorts_liquidate_above_mark"]:
        assert evaluations[check] is True, check
    for table in ["model.volume_profile_daily", "model.position_distribution", "model.liquidation_levels",
                  "model.liquidation_heatmap", "model.liquidation_zones"]:
        days = _query(chain, f"SELECT count(DISTINCT day) FROM {table} WHERE symbol = ?", [SYMBOL])[0][0]
        assert days == DAYS, table


def test_rematerializing_a_heatmap_day_gives_identical_rows(writable_chain):
    chain = writable_chain

    def fingerprint():
        return _query(chain, """SELECT day, count(*), sum(hash(COLUMNS(*)))::HUGEINT
                                FROM model.liquidation_heatmap GROUP BY day ORDER BY day""")
    before = fingerprint()
    day = FIRST + dt.timedelta(days=2)
    chain["run"](dg.AssetSelection.assets("liquidation_heatmap"), tags={},
                 partition_key=dg.MultiPartitionKey({"date": day.isoformat(), "symbol": SYMBOL}))
    assert fingerprint() == before


def test_validation_report_scores_against_ground_truth(chain):
    report = json.loads((chain["tmp"] / "reports" / f"validation-{FIRST:%Y-%m}.json").read_text())
    sym = report["symbols"][SYMBOL]
    assert sym["ground_truth"]["available"] is True
    for variant in ("volume_5050", "ofi", "funding", "hybrid"):
        gt = sym["variants"][variant]["ground_truth"]
        assert gt["exact_formula_mare"] == 0.0 < gt["simplified_formula_mare"]
        assert 0.0 < gt["overlap_levels"] <= 1.0
        assert 0.0 < gt["ceiling"] <= 1.0 and gt["overlap_over_ceiling"] > 0
        assert set(sym["variants"][variant]["backtest"]["baselines"]) == {"leverage_only", "bar_range", "side_excursion"}
        assert sym["variants"][variant]["grade"]["letter"] in {"A", "B", "C", "F"}
    checks = {name.split("/")[-1].removesuffix(f"_{SYMBOL}") for name in chain["checks"]["validation"]}
    assert "hybrid_beats_volume_baseline" in checks


def test_every_variant_levels_heatmap_and_distribution_come_from_one_book(chain):
    # The heatmap's rows of every variant are flow_book's snapshots of that variant, and its levels are its last
    # snapshot: per day and variant, the levels' total equals the end-of-day heatmap total (one engine).
    diff = _query(chain, """
        SELECT count(*) FROM (SELECT day, variant, snapshot_time, side, bin_id, notional_usd FROM model.flow_snapshots
                              EXCEPT SELECT day, variant, snapshot_time, side, bin_id, notional_usd
                              FROM model.liquidation_heatmap)""")[0][0]
    assert diff == 0
    totals = _query(chain, """
        WITH last AS (SELECT day, variant, sum(notional_usd) AS heatmap_usd FROM model.liquidation_heatmap h
                      WHERE snapshot_time = (SELECT max(snapshot_time) FROM model.liquidation_heatmap
                                             WHERE day = h.day AND variant = h.variant) GROUP BY ALL),
             lv AS (SELECT day, variant, sum(notional_usd) AS levels_usd FROM model.liquidation_levels GROUP BY ALL)
        SELECT variant, day, levels_usd, heatmap_usd FROM lv FULL JOIN last USING (day, variant) ORDER BY ALL""")
    assert {v for v, *_ in totals} == set(variants.NAMES)
    for variant, day, levels_usd, heatmap_usd in totals:
        assert levels_usd == pytest.approx(heatmap_usd, rel=1e-9), (variant, day)
    worst = _query(chain, """
        WITH last AS (SELECT day, variant, side, bin_id, notional_usd FROM model.flow_snapshots s
                      WHERE snapshot_time = (SELECT max(snapshot_time) FROM model.flow_snapshots
                                             WHERE day = s.day AND variant = s.variant)),
             lv AS (SELECT day, variant, side, bin_id, sum(notional_usd) AS n FROM model.liquidation_levels GROUP BY ALL)
        SELECT max(abs(coalesce(l.n, 0) - coalesce(s.notional_usd, 0)) / (SELECT max(notional_usd) FROM last))
        FROM lv l FULL JOIN last s USING (day, variant, side, bin_id)""")[0][0]
    assert worst < 1e-6
    oi_err = _query(chain, """
        SELECT max(abs(d.total - s.oi_usd) / s.oi_usd) FROM
            (SELECT day, variant, sum(long_usd + short_usd) AS total FROM model.position_distribution
             GROUP BY ALL) d JOIN model.position_signals s USING (day)""")[0][0]
    assert oi_err < 1e-9


def test_flow_estimate_is_unchanged_when_the_simulator_truth_is_gone(writable_chain):
    from liq_pipeline.market.liquidation_imports import import_liquidation_file

    chain = writable_chain
    with duckdb.connect(str(chain["db"])) as con:
        import_liquidation_file(con, chain["tmp"] / "archive-sim" / "truth" / "forceOrder" / f"{SYMBOL}.jsonl")

    def fingerprint():
        return [_query(chain, f"SELECT count(*), sum(hash(COLUMNS(*)))::HUGEINT FROM {t}")[0]
                for t in ("model.flow_book", "model.flow_snapshots", "model.flow_steps", "model.flow_parameters",
                          "model.flow_candidate_books")]

    chain["run"](dg.AssetSelection.assets("flow_book"))
    learned = _query(chain, "SELECT count(*) FROM model.flow_parameters WHERE source = 'learned'")[0][0]
    assert learned > 0  # the mix was fitted on the public forceOrder stream, not taken from the prior
    # Four days are too few for the survival fit (its candidate books are warm from day 4): the prior H, τ,
    # stored with the reason, and one candidate book per candidate half-life and day.
    survival = _query(chain, """SELECT source, detail, count(*) FROM model.flow_parameters
                                WHERE parameter IN ('half_life_hours', 'age_hazard_hours') GROUP BY ALL""")
    assert {r[0] for r in survival} == {"prior"} and sum(r[2] for r in survival) == 2 * DAYS
    assert any("warm candidate books" in r[1] for r in survival)
    books = _query(chain, "SELECT count(DISTINCT (day, half_life_hours)) FROM model.flow_candidate_books")[0][0]
    assert books == DAYS * len(FLOW.survival_candidates)
    before = fingerprint()
    with duckdb.connect(str(chain["db"])) as con:
        for t in ("positions", "liquidations"):
            con.execute(f"ALTER TABLE truth.{t} RENAME TO hidden_{t}")
    try:
        chain["run"](dg.AssetSelection.assets("flow_book"))
        assert fingerprint() == before
    finally:
        with duckdb.connect(str(chain["db"])) as con:
            for t in ("positions", "liquidations"):
                con.execute(f"DROP TABLE IF EXISTS truth.{t}")
                con.execute(f"ALTER TABLE truth.hidden_{t} RENAME TO {t}")
