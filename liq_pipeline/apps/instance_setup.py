"""Initialise a Dagster instance folder ($DAGSTER_HOME) once, under a lock, before any command uses it.

Dagster's SQLite storage creates its tables and stamps their schema version the first time a process opens
them; two processes doing that at once leave two version heads behind, and every later command fails with
`alembic_version has more than one head present` (issue 28). `make` runs this before `demo`, `ui` and
`compare`, and `liq demo` calls `ensure_instance` itself: the first caller creates every storage while the
others wait on the lock, then find it ready.

    python -m liq_pipeline.apps.instance_setup [DAGSTER_HOME]
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from pathlib import Path

#: Written once every storage of the instance exists; its presence makes later calls return at once.
READY_MARK = ".liq-initialised"


def ensure_instance(home: Path, template: Path | None = None) -> Path:
    """Create `home` (with `template`'s dagster.yaml when it has none) and open every storage of its instance
    once, holding an exclusive lock on `home/.liq-init.lock`; returns `home`. Idempotent and safe to call
    from many processes at once."""
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    if (home / READY_MARK).exists():
        return home
    with open(home / ".liq-init.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (home / READY_MARK).exists():  # another process finished while this one waited
                return home
            if not (home / "dagster.yaml").exists() and template is not None and Path(template).is_file():
                shutil.copy(template, home / "dagster.yaml")
            _open_every_storage(home)
            (home / READY_MARK).write_text("every storage of this instance was created by liq_pipeline.apps.instance_setup\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return home


def _open_every_storage(home: Path) -> None:
    """Open the run, event-log and schedule storages, which creates and stamps each of them."""
    import dagster as dg

    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        instance = dg.DagsterInstance.get()
        try:
            instance.get_runs(limit=1)
            instance.get_latest_materialization_event(dg.AssetKey("liq_instance_setup"))
            instance.all_instigator_state()
        finally:
            instance.dispose()
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    home = Path(argv[0] if argv else os.environ.get("DAGSTER_HOME") or ".dagster_home")
    print(f"Dagster instance ready in {ensure_instance(home, Path('dagster.yaml'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
