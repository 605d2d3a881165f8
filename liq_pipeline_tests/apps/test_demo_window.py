"""The demo's window and its cost line: the default window is one month whose first week only warms up,
so the demo writes one monthly report; the cost line gives wall and CPU time with pass/MISS verdicts."""

from __future__ import annotations

import datetime as dt

from liq_pipeline import config
from liq_pipeline.apps import demo
from liq_pipeline.cli.main import build_parser


def test_default_window_is_one_month_with_one_report_after_its_warm_up():
    start = dt.date(2026, 1, 1)
    assert build_parser(load_plugins=False).parse_args(["demo"]).days == config.DEMO_DAYS
    first_model, last, months = demo.demo_window(start, config.DEMO_DAYS)
    assert last == dt.date(2026, 1, 31)
    assert first_model == start + dt.timedelta(days=demo.WARM_UP_DAYS)  # the heatmap starts the day after
    assert months == [dt.date(2026, 1, 1)]


def test_longer_windows_and_explicit_model_days_report_every_month_touched():
    start = dt.date(2026, 1, 1)
    assert demo.demo_window(start, 45)[2] == [dt.date(2026, 1, 1), dt.date(2026, 2, 1)]
    first_model, last, months = demo.demo_window(start, 45, model_days=3)
    assert (first_model, last, months) == (dt.date(2026, 2, 11), dt.date(2026, 2, 14), [dt.date(2026, 2, 1)])


def test_cost_line_gives_wall_and_cpu_time_with_verdicts(monkeypatch):
    cost = demo.Cost()
    sum(i * i for i in range(200_000))  # some CPU
    line = cost.verdict()
    assert line.startswith("demo finished in ") and "s wall (pass: target <= 240 s)" in line
    assert "s CPU (pass: target <= 180 s" in line and "load average" in line
    monkeypatch.setattr(cost, "wall_s", lambda: 300.0)
    monkeypatch.setattr(cost, "cpu_s", lambda: 200.0)
    line = cost.verdict()
    assert "300 s wall (MISS: target <= 240 s)" in line and "200 s CPU (MISS: target <= 180 s" in line
