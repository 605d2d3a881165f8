"""With the simulated source the partitions end on the last simulated day (no "missing" badges for days
that do not exist), the schedule skips days past it, and the demo's stages run under real job names."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest

from liq_pipeline import partitions, schedules


def _manifest(folder, start="2026-01-01", days=12):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "simulation.json").write_text(json.dumps({"config": {"start": start, "days": days}}))


def test_simulated_last_day_comes_from_the_manifest(tmp_path):
    assert partitions.simulated_last_day(tmp_path) is None
    _manifest(tmp_path, days=12)
    assert partitions.simulated_last_day(tmp_path) == dt.date(2026, 1, 12)
    (tmp_path / "simulation.json").write_text("{not json")
    assert partitions.simulated_last_day(tmp_path) is None


def test_partitions_cover_the_simulated_range_only_for_the_simulated_source(tmp_path, monkeypatch):
    _manifest(tmp_path / "archive-sim", days=45)
    for name in ("LIQ_SIM_DIR", "LIQ_END_DATE", "LIQ_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIQ_DATA_DIR", str(tmp_path))
    assert partitions.last_partition_day() == dt.date(2026, 2, 14)
    keys = partitions._daily(dt.date(2026, 1, 1), partitions.last_partition_day()).get_partition_keys()
    assert (keys[0], keys[-1], len(keys)) == ("2026-01-01", "2026-02-14", 45)
    monkeypatch.setenv("LIQ_END_DATE", "2026-01-05")
    assert partitions.last_partition_day() == dt.date(2026, 1, 5)
    monkeypatch.setenv("LIQ_END_DATE", "yesterday")
    assert partitions.last_partition_day() is None
    monkeypatch.setenv("LIQ_END_DATE", "soon")
    with pytest.raises(ValueError, match="LIQ_END_DATE must be a date"):
        partitions.last_partition_day()
    monkeypatch.delenv("LIQ_END_DATE")
    monkeypatch.setenv("LIQ_SOURCE", "mirror")  # a real source runs to yesterday
    assert partitions.last_partition_day() is None
    keys = partitions._daily(dt.date(2026, 1, 1), None).get_partition_keys()
    assert keys[-1] >= (dt.date.today() - dt.timedelta(days=2)).isoformat()


def test_daily_tick_skips_days_after_the_last_partition(monkeypatch):
    monkeypatch.setattr(partitions, "LAST_DAY", dt.date(2026, 2, 14))
    out = schedules.daily_run_requests(dt.datetime(2026, 2, 16, 0, 30), "simulated", dt.date(2026, 2, 16))
    assert isinstance(out, dg.SkipReason) and "after the last partition day 2026-02-14" in out.skip_message
    inside = schedules.daily_run_requests(dt.datetime(2026, 2, 15, 0, 30), "simulated", dt.date(2026, 2, 15))
    assert [r.partition_key.keys_by_dimension["date"] for r in inside] == ["2026-02-14"] * len(inside)


def test_demo_stages_are_named_jobs():
    from liq_pipeline.definitions import defs

    names = {"ingest_job": {"agg_trades", "true_positions"}, "volume_profile_job": {"volume_profile_daily"},
             "model_job": {"position_distribution", "liquidation_levels"},
             "heatmap_job": {"liquidation_heatmap", "liquidation_zones"}}
    for name, some_assets in names.items():
        job = defs.resolve_job_def(name)
        keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
        assert some_assets <= keys, (name, keys)
    assert "volume_profile_daily" not in {k.to_user_string() for k in
                                          defs.resolve_job_def("model_job").asset_layer.executable_asset_keys}
