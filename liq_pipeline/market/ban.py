"""Remember an HTTP 418 ban (and its Retry-After) across steps and processes until it expires.

Binance bans an IP that keeps sending after 429s, for 2 minutes up to 3 days, and escalates when requests
continue (binance-data.md §5.1). Every Dagster step builds its own client, and runs are separate processes,
so the ban is kept in a small JSON file under the data folder (`<data dir>/state/http-bans.json`): one
entry per host with the instant the ban ends. Clients read it before every request and send nothing while
a ban lasts.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from liq_pipeline import config


def default_path() -> Path:
    return config.data_dir() / "state" / "http-bans.json"


@dataclass(frozen=True)
class Ban:
    host: str
    until: float  # epoch seconds
    reason: str

    def remaining_s(self, now: float) -> float:
        return max(0.0, self.until - now)


class BanMemory:
    """The ban file: `active(host)` before a request, `record(host, seconds, reason)` on a 418."""

    def __init__(self, path: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.clock = clock

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # an unreadable file must not stop the pipeline: the server will say 418 again
        return data if isinstance(data, dict) else {}

    def active(self, host: str) -> Ban | None:
        """The ban on `host` that has not expired yet, else None."""
        entry = self._read().get(host)
        if not isinstance(entry, dict):
            return None
        try:
            ban = Ban(host, float(entry["until"]), str(entry.get("reason", "")))
        except (KeyError, TypeError, ValueError):
            return None
        return ban if ban.until > self.clock() else None

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def record(self, host: str, seconds: float, reason: str) -> Ban:
        """Remember a ban of `seconds` on `host` (a longer ban already recorded is kept)."""
        with self._locked():
            data = self._read()
            now = self.clock()
            until = now + max(0.0, seconds)
            previous = data.get(host)
            if isinstance(previous, dict) and float(previous.get("until", 0)) > until:
                until = float(previous["until"])
            data = {h: e for h, e in data.items() if isinstance(e, dict) and float(e.get("until", 0)) > now}
            data[host] = {"until": until, "reason": reason,
                          "until_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))}
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".http-bans.", suffix=".part")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f, indent=1)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return Ban(host, until, reason)
