"""Dead runs: the run launcher of the local instances tells Dagster's run monitoring that a run's worker
process is gone, and the monitoring code of the daemon then fails the run instead of leaving it STARTED
(where it would hold the only run slot of `make ui` forever). The whole path with a real daemon, a real
`kill -9` and a queued run is in test_prod_local.py."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._core.events import EngineEventData
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.test_utils import create_run_for_test
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from liq_pipeline.deploy.run_launcher import LocalRunLauncher, process_gone

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    """An instance made from the repository's dagster.yaml (the one `make ui` and `make demo` use)."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    with DagsterInstance.from_config(str(home)) as inst:
        yield inst


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _started_run(instance, pid: int):
    run = create_run_for_test(instance, job_name="daily_refresh_job", status=DagsterRunStatus.STARTED)
    instance.report_engine_event(f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid))
    return run


def test_the_ui_instance_monitors_runs_with_the_local_launcher(instance):
    assert isinstance(instance.run_launcher, LocalRunLauncher)
    assert instance.run_monitoring_enabled
    assert instance.run_launcher.supports_check_run_worker_health


def test_a_live_process_is_alive_and_a_dead_or_zombie_one_is_not():
    assert process_gone(os.getpid(), time.time()) is None
    assert "no longer exists" in process_gone(_dead_pid(), time.time())
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        stat = Path(f"/proc/{zombie.pid}/stat")
        if not stat.exists():
            pytest.skip("no /proc here: zombies cannot be told apart")
        deadline = time.monotonic() + 30
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)  # exited but not reaped: a zombie
        assert "zombie" in process_gone(zombie.pid, time.time())
    finally:
        zombie.wait()


def test_a_pid_taken_over_by_a_newer_process_is_not_the_worker():
    if not Path("/proc/self/stat").exists():
        pytest.skip("no /proc here: process start times are unknown")
    assert "newer process" in process_gone(os.getpid(), recorded_at=time.time() - 10 * 365 * 86400)


def test_run_monitoring_fails_a_run_whose_worker_was_killed(instance):
    dead = _started_run(instance, _dead_pid())
    alive = _started_run(instance, os.getpid())
    assert instance.run_launcher.check_run_worker_health(dead).status == WorkerStatus.FAILED
    for run in (dead, alive):  # what the daemon's monitoring loop does with every STARTED run
        monitor_started_run(instance, None, instance.get_run_record_by_id(run.run_id), logging.getLogger(__name__))
    assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive.run_id).status == DagsterRunStatus.STARTED
    messages = [e.message for e in instance.all_logs(dead.run_id)]
    assert any("no longer exists (killed or crashed)" in m for m in messages), messages


def test_a_run_without_a_recorded_worker_is_left_to_the_timeouts(instance):
    run = create_run_for_test(instance, job_name="daily_refresh_job", status=DagsterRunStatus.STARTED)
    assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
