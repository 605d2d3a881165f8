"""A fresh DAGSTER_HOME is initialised once, under a lock (issue 28, case 8): several first commands at once
leave a usable instance (without the lock, three processes opening a fresh SQLite instance at once left
`alembic_version has more than one head present` behind, and every later command failed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from liq_pipeline.apps.instance_setup import READY_MARK

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # several `liq` processes at once
def test_concurrent_first_commands_leave_a_usable_instance(tmp_path):
    home = tmp_path / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-m", "liq_pipeline.apps.instance_setup", str(home)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-400:] for _, err in outputs]
    assert (home / READY_MARK).exists() and (home / "dagster.yaml").exists()
    check = subprocess.run([sys.executable, "-c", "import dagster as dg; i = dg.DagsterInstance.get(); "
                            "print(len(i.get_runs(limit=1)), len(i.all_instigator_state()))"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert check.returncode == 0 and check.stdout.strip() == "0 0", check.stderr[-600:]
    assert "more than one head" not in check.stderr
