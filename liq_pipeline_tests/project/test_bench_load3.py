"""`make bench`'s load-3 rows (bench/answers.py): a section counts as measured at load 3 only if the lowest
1-minute load average sampled while it ran was 3 or more; otherwise its row is a MISS saying so, whatever
its latency. No timing asserted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import answers  # noqa: E402


def verdict(*ok: bool) -> str:
    return "pass" if all(ok) else "MISS"


def cold(load_min: float, median_ms: float = 80) -> dict:
    return {"heatmap_median_ms": median_ms, "heatmap_max_ms": 90, "heatmap_cpu_median_ms": 60, "zones_median_ms": 70,
            "zones_max_ms": 75, "zones_cpu_median_ms": 55, "load_start": max(load_min, 3.4), "load_end": 3.6,
            "load_min": load_min, "burners": "3-4", "concurrent_materialization": True,
            "at_load": load_min >= answers.TARGET_LOAD, "load_average_1m": 3.6}


def test_a_section_at_load_3_passes_on_its_latency_and_says_its_load():
    rows = answers.load3_rows({"cold_load3": cold(3.1)}, verdict, 150, 50, 300)
    assert [r[-1] for r in rows] == ["pass", "pass"]
    assert "load average 3.4 → 3.6 (lowest 3.1) with 3-4 CPU burners and a concurrent materialization" in rows[0][3]
    assert "NOT" not in rows[0][3]


def test_a_section_that_never_reached_load_3_is_a_miss_naming_why():
    rows = answers.load3_rows({"cold_load3": cold(2.2)}, verdict, 150, 50, 300)
    assert [r[-1] for r in rows] == ["MISS", "MISS"] and "NOT at load 3" in rows[0][3]


def test_a_slow_answer_at_load_3_is_a_miss():
    rows = answers.load3_rows({"cold_load3": cold(3.5, median_ms=180)}, verdict, 150, 50, 300)
    assert [r[-1] for r in rows] == ["MISS", "pass"]


class Writer:
    def __init__(self, running: bool):
        self.running = running

    def still_running(self) -> bool:
        return self.running


def test_measure_records_the_load_it_ran_at_and_needs_the_concurrent_run_alive():
    with answers.AtLoad(Writer(True), max_warm_up_s=0, target=0) as load:  # target 0: no burner needed
        out = load.measure(lambda x: {"x": x}, 7)
    assert out["x"] == 7 and out["at_load"] is True and out["concurrent_materialization"] is True
    assert out["load_min"] <= out["load_start"] and out["load_min"] <= out["load_end"] and load.burners == 0
    with answers.AtLoad(Writer(False), max_warm_up_s=0, target=0) as load, pytest.raises(RuntimeError, match="stopped"):
        load.measure(dict)
