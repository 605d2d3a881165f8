"""Dagster's default run launcher plus a worker health check, so run monitoring can fail a dead run.

Dagster 1.13's `DefaultRunLauncher` has no `check_run_worker_health`: with it, the daemon's run monitoring
only enforces start, cancel and maximum-runtime timeouts, and a run whose process was killed (`kill -9`,
out of memory, a machine restart) stays STARTED and holds a slot of the run queue until someone marks it
failed by hand. `LocalRunLauncher` launches exactly as the default one does and adds the health check:
every run records the pid of its worker process in its first engine event ("Started process for run
(pid: N)" for a launched run, "Executing steps in process (pid: N)" for `dagster asset materialize`); a
run whose recorded process no longer exists, is a zombie, or is a newer process that reused the pid, is
reported FAILED and run monitoring marks it failed.

Only for instances whose runs all execute on the machine of the daemon (`make ui`, `make prod-local`):
a pid means nothing on another host. Kubernetes deployments use `K8sRunLauncher`, which checks its Jobs.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun

#: Engine events read to find the worker's pid: it is among the first events of every run.
_FIRST_EVENTS = 20
#: A process that started this long after its pid was recorded is another process with a reused pid.
_PID_REUSE_SLACK_S = 5.0


class LocalRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` (one process per run, started by the code server) that tells run monitoring
    whether a STARTED run's worker process is still alive on this machine."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        recorded = worker_pid(self._instance, run.run_id)
        if recorded is None:
            # Nothing to check yet (the worker records its pid right after it starts): the run-start and
            # maximum-runtime timeouts of run monitoring still apply.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker pid recorded yet")
        pid, recorded_at = recorded
        why_dead = process_gone(pid, recorded_at)
        if why_dead:
            return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {pid} {why_dead}")
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker process {pid} is alive")


def worker_pid(instance, run_id: str) -> tuple[int, float] | None:
    """(pid, unix time it was recorded) of the run's worker: the first engine event carrying a pid."""
    for entry in instance.event_log_storage.get_logs_for_run(
            run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=_FIRST_EVENTS, ascending=True):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        value = data.metadata.get("pid") if data is not None else None
        if value is not None:
            try:
                return int(value.value), float(entry.timestamp)
            except (TypeError, ValueError):
                continue
    return None


def process_gone(pid: int, recorded_at: float) -> str | None:
    """Why process `pid` (recorded at unix time `recorded_at`) is no longer the run's worker, or None."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "no longer exists (killed or crashed)"
    except PermissionError:
        pass  # exists, owned by another user
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None  # no /proc (not Linux): existence is all we can tell
    if fields[0] in ("Z", "X"):
        return "has exited (zombie)"
    started = _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    if started > recorded_at + _PID_REUSE_SLACK_S:
        return "has exited (its pid now belongs to a newer process)"
    return None


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0
