"""The replay of `make test`'s schedule (support/schedule_replay.py) on toy suites whose answer is known."""

from __future__ import annotations

import json

import pytest

from liq_pipeline_tests.support.schedule_replay import Item, items_from_log, replay


def cpu_test(name: str, seconds: float, scope: str | None = None, market: bool = False) -> Item:
    return Item(name, scope or name, seconds, seconds, market=market)


def test_cpu_bound_tests_share_the_cores():
    tests = [cpu_test(f"t{i}", 10.0) for i in range(3)]
    assert replay(tests, workers=1)["makespan_s"] == pytest.approx(30, abs=0.2)
    assert replay(tests, workers=2)["makespan_s"] == pytest.approx(20, abs=0.2)  # 10 + 10 on one worker
    assert replay(tests, workers=3)["makespan_s"] == pytest.approx(15, abs=0.2)  # 30 s of CPU on 2 cores


def test_a_worker_waiting_on_a_clock_leaves_its_core_to_a_third_worker():
    # A file of three tests, the first waiting 100 s on a clock (so no unit is queued behind it until it ends).
    waiting = [Item("ticks::1", "ticks", cpu_s=10.0, wall_s=100.0, on_clock=True),
               *(Item(f"ticks::{i}", "ticks", cpu_s=0.1, wall_s=0.1) for i in (2, 3))]
    tests = [*waiting, *(cpu_test(f"t{i}", 40.0) for i in range(4))]
    # Two workers: the other one runs the four CPU tests (all handed out before the wait ends): 160 s.
    assert replay(tests, workers=2)["makespan_s"] == pytest.approx(160, abs=0.5)
    # Three: two workers share the cores for 160 s of CPU (about 84 s beside the clock's tenth of a core).
    three = replay(tests, workers=3)
    assert three["makespan_s"] == pytest.approx(100.2, abs=0.5) and three["cores_used"] > 1.5


def test_xdist_queues_a_unit_behind_a_short_file():
    # A one-test file has 2 tests or fewer pending at once, so xdist hands its worker a second unit at the start.
    tests = [Item("ticks", "ticks", cpu_s=10.0, wall_s=100.0, on_clock=True), *(cpu_test(f"t{i}", 40.0) for i in range(4))]
    assert replay(tests, workers=3)["makespan_s"] == pytest.approx(140, abs=0.5)


def test_a_file_stays_on_one_worker_and_market_users_wait_for_the_builder():
    tests = [cpu_test("a::1", 10.0, "a"), cpu_test("a::2", 10.0, "a"),
             cpu_test("m::build", 30.0, "m", market=True), cpu_test("n::use", 5.0, "n", market=True)]
    out = replay(tests, workers=3)
    # File a: 20 s on one worker; the user waits for the 30 s build, then runs 5 s (cores shared at the start).
    assert out["makespan_s"] == pytest.approx(35, abs=1.5)
    assert max(out["ends_s"]) == pytest.approx(out["makespan_s"], abs=0.1)


def test_the_log_gives_idle_cpu_and_given_walls(tmp_path):
    log = tmp_path / "times.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in [
        {"test": "liq_pipeline_tests/x/test_a.py::t", "cpu_s": 20.0, "wall_s": 10.0},
        {"test": "liq_pipeline_tests/x/test_b.py::t", "cpu_s": 8.0, "wall_s": 30.0}]) + "\nnot json\n")
    collected = [("liq_pipeline_tests/x/test_a.py::t", False), ("liq_pipeline_tests/x/test_b.py::t", True),
                 ("liq_pipeline_tests/x/test_c.py::t", False)]
    a, b, c = items_from_log(log, collected, {"x/test_b.py"}, 0.5, {"test_b": (60.0, True)})
    assert (a.cpu_s, a.wall_s, a.scope) == (10.0, 5.0, "x/test_a.py")  # parallelism 2 kept
    assert (b.cpu_s, b.wall_s, b.on_clock, b.market, b.scope) == (4.0, 60.0, True, True, "liq_pipeline_tests/x/test_b.py::t")
    assert c.cpu_s == pytest.approx(0.025)  # not in the log
