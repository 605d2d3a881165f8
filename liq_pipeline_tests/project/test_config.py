"""Model settings from the environment: read at import, validated with a message that names the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PRINT = "from liq_pipeline.config import MODEL as m; print(m.window_days, m.bin_mode, m.heatmap_step_minutes, m.heatmap_half_life_hours)"


def _run(**env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LIQ_")} | env
    return subprocess.run([sys.executable, "-c", PRINT], env=full, capture_output=True, text=True, timeout=60)


def test_defaults():
    assert _run().stdout.split() == ["30", "relative", "15", "None"]


def test_overrides():
    out = _run(LIQ_WINDOW_DAYS="7", LIQ_BIN_MODE="fixed", LIQ_HEATMAP_STEP_MINUTES="1", LIQ_HEATMAP_HALF_LIFE_HOURS="12")
    assert out.stdout.split() == ["7", "fixed", "1", "12.0"]


@pytest.mark.parametrize("name,value", [("LIQ_WINDOW_DAYS", "0"), ("LIQ_BIN_MODE", "linear"),
                                        ("LIQ_HEATMAP_STEP_MINUTES", "7"), ("LIQ_HEATMAP_HALF_LIFE_HOURS", "-1")])
def test_bad_values_name_the_variable(name, value):
    out = _run(**{name: value})
    assert out.returncode != 0 and name in out.stderr
