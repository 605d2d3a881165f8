"""`liq compare`: the pair specs, the scoring of a materialized market with the validation yardsticks, the
table and the bootstrap comparisons built from it, and bad input (one line, exit 2)."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import numpy as np
import pytest

from liq_pipeline.apps import compare
from liq_pipeline.cli import main as cli
from liq_pipeline.model import variants
from liq_pipeline.sim import SimConfig
from liq_pipeline.validation.bootstrap import block_mean_interval, week_of
from liq_pipeline_tests.support.shared_market import FIRST, LAST, SYMBOL, copy_market

SCORED = (dt.date(2026, 1, 2), LAST)


@pytest.fixture(scope="module")
def scored(shared_market, tmp_path_factory):
    """A copy of the run's shared 4-day single-symbol market (materialized up to the validation; scoring
    creates the tables it reads when missing), scored on days 2–4 by compare."""
    market = copy_market(shared_market, tmp_path_factory.mktemp("compare") / "market")
    mp = market.env()
    with duckdb.connect(str(market.db)) as con:
        symbols = compare.score_warehouse(con, [SYMBOL], *SCORED)
    yield {"tmp": market.root, "symbols": symbols}
    mp.undo()


def _result(symbols: dict, label: str) -> dict:
    pair = compare.parse_pair(label)
    return {"pair": pair.label, "scenario": pair.scenario, "seed": pair.seed, "ofi_signal": pair.ofi_signal,
            "days": 4, "warm_up": 1, "scored": [d.isoformat() for d in SCORED], "symbols": symbols}


def test_every_variant_is_scored_with_the_yardsticks(scored):
    sym = scored["symbols"][SYMBOL]
    assert set(sym["variants"]) == set(variants.NAMES)
    for variant, entry in sym["variants"].items():
        gt, bt = entry["ground_truth"], entry["backtest"]
        assert gt["days"] == 3, variant
        assert 0 < gt["overlap_levels"] <= gt["ceiling"] * 2 and 0 < gt["ceiling"] <= 1
        assert bt["status"] == "scored" and {"side_excursion"} <= set(bt["baselines"])
    assert {r["day"] for r in sym["ground_truth_daily"]} == {d.isoformat() for d in
                                                              (SCORED[0], SCORED[0] + dt.timedelta(days=1), SCORED[1])}


def test_table_has_one_row_per_pair_symbol_and_variant(scored):
    results = [_result(scored["symbols"], "calm/7"), _result(scored["symbols"], "calm/7/no-ofi")]
    rows = compare.table_rows(results)
    assert [(r["pair"], r["variant"]) for r in rows] == [(p, v) for p in ("calm/7", "calm/7/no-ofi")
                                                         for v in variants.NAMES]
    flow = scored["symbols"][SYMBOL]["variants"]["flow"]
    row = rows[-1]
    assert row["overlap_over_ceiling"] == flow["ground_truth"]["overlap_over_ceiling"]
    assert row["side_excursion_recall"] == flow["backtest"]["baselines"]["side_excursion"]["top_k"]["notional_recall"]
    md = compare.markdown(results, rows, compare.comparisons(results))
    table = [line for line in md.splitlines() if line.startswith("| calm/7")]
    assert len(table) == 2 * len(variants.NAMES)
    assert all(line.count("|") == len(compare.COLUMNS) + 1 for line in table)


def test_comparisons_are_the_bootstrap_of_the_daily_differences(scored):
    results = [_result(scored["symbols"], "calm/7"), _result(scored["symbols"], "trending/11"),
               _result(scored["symbols"], "calm/7/no-ofi")]
    by = {(c["challenger"], c["baseline"], c["scope"]): c for c in compare.comparisons(results)}
    daily = scored["symbols"][SYMBOL]["ground_truth_daily"]

    def per_day(variant):
        return np.array([r[compare.MEASURE] for r in sorted(daily, key=lambda r: r["day"])
                         if r["variant"] == variant])

    days = sorted({r["day"] for r in daily})
    diff = per_day("flow") - per_day("volume_5050")
    pooled = by[("flow", "volume_5050", "all pairs, OFI signal on")]
    # Whole weeks of each (pair, symbol) series are resampled: the book carries over from day to day.
    keys = [(pair, SYMBOL, d) for pair in ("calm/7", "trending/11") for d in days]
    expected = block_mean_interval(np.concatenate([diff, diff]), [week_of(k) for k in keys], 0.90)
    assert pooled["units"] == 6 and pooled["pairs"] == ["calm/7", "trending/11"]
    assert pooled["mean"] == pytest.approx(diff.mean())
    assert (pooled["low"], pooled["high"]) == pytest.approx((expected.low, expected.high))
    assert pooled["verdict"] == compare.verdict(expected.low, expected.high)
    off = by[("ofi", "volume_5050", "all pairs, OFI signal off")]
    assert off["units"] == 3 and off["pairs"] == ["calm/7/no-ofi"]
    assert off["mean"] == pytest.approx((per_day("ofi") - per_day("volume_5050")).mean())
    assert ("flow", "hybrid", "calm/7/no-ofi") in by


def test_outputs_are_written_as_json_and_markdown(scored, tmp_path):
    results = [_result(scored["symbols"], "cascade/13")]
    out, md, _, _ = compare.write_outputs(results, tmp_path)
    stored = json.loads((tmp_path / "compare.json").read_text())
    assert stored["rows"] == json.loads(json.dumps(out["rows"]))
    assert (tmp_path / "compare.md").read_text() == md + "\n"
    assert "| flow − volume_5050 | all pairs, OFI signal on | 3 |" in md


def test_verdict_says_beats_only_when_the_interval_excludes_zero():
    assert compare.verdict(0.001, 0.02) == "beats"
    assert compare.verdict(-0.001, 0.02) == "no difference shown"
    assert compare.verdict(-0.02, -0.001) == "worse"
    assert compare.verdict(None, None).startswith("inconclusive")


def test_pair_specs():
    assert compare.parse_pair("calm/7") == compare.Pair("calm", 7, True)
    off = compare.parse_pair("Trending/11/no-ofi")
    assert (off.scenario, off.seed, off.ofi_signal, off.taker_open_share) == ("trending", 11, False, 0.5)
    assert off.label == "trending/11/no-ofi" and off.dirname == "trending-11-no-ofi"
    assert compare.parse_pair("calm/7").taker_open_share is None


@pytest.mark.parametrize("argv, message", [
    (["compare", "storm/7"], "unknown scenario 'storm' in pair 'storm/7': choose one of calm, trending, cascade"),
    (["compare", "calm-7"], "pair 'calm-7' is not scenario/seed[/no-ofi]"),
    (["compare", "calm/seven"], "seed 'seven' is not a whole number"),
    (["compare", "calm/7/ofi-off"], "the third part can only be 'no-ofi'"),
    (["compare", "calm/7", "calm/7"], "a pair is listed twice"),
    (["compare", "--days", "8"], "--days 8 leaves fewer than 2 scored days"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LIQ_DATA_DIR", str(tmp_path))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "compare").exists()  # nothing simulated or written


def test_targets_count_the_flow_rows_that_meet_each_one(scored):
    results = [_result(scored["symbols"], "calm/7"), _result(scored["symbols"], "calm/7/no-ofi")]
    rows = compare.table_rows(results)
    lines = compare.targets(results, rows, compare.comparisons(results))
    flow = next(r for r in rows if r["variant"] == "flow" and r["pair"] == "calm/7")
    overlap = next(line for line in lines if "oracle ceiling" in line)
    assert ("(met in 1 of 1 " in overlap) == (flow["overlap_over_ceiling_10pct"] >= 0.85)  # no-ofi not counted
    long_share = next(line for line in lines if "constant-0.5" in line)
    beats = flow["long_share_error"] < flow["long_share_error_constant_half"]
    assert ("(met in 1 of 1 " in long_share) == beats
    assert any(line.startswith("- ofi does not hurt with the signal off") for line in lines)
    assert any(line.startswith("- flow beats every seed variant") for line in lines)


@pytest.mark.slow  # runs `liq compare` in its own process
def test_a_failed_pair_names_itself_and_its_log(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LIQ_DATA_DIR", str(tmp_path))
    assert cli.main(["compare", "calm/7", "--score-only"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("liq compare: pair run failed: calm/7 (see ") and "calm-7/compare.log" in err[-1]
    log = (tmp_path / "compare" / "calm-7" / "compare.log").read_text()
    assert "--score-only: calm/7 has no materialized market" in log
    assert not (tmp_path / "reports").exists()


def test_a_simulation_is_reused_only_with_the_same_taker_open_share(tmp_path):
    from liq_pipeline.apps.demo import _simulation_current

    cfg = SimConfig.for_scenario("calm", symbols=(SYMBOL,), start=FIRST, days=4, seed=7, out_dir=tmp_path)
    (tmp_path / "simulation.json").write_text(json.dumps({"config": cfg.to_json()}))
    assert _simulation_current(tmp_path, (SYMBOL,), FIRST, 4, 7, "calm", cfg.taker_open_share)
    assert not _simulation_current(tmp_path, (SYMBOL,), FIRST, 4, 7, "calm", compare.NO_OFI_TAKER_OPEN_SHARE)
    assert not _simulation_current(tmp_path, (SYMBOL,), FIRST, 4, 8, "calm", cfg.taker_open_share)
