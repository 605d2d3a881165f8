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
import math
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from liq_pipeline import config

#: The longest ban Binance documents (binance-data.md §5.1: bans escalate from 2 minutes to 3 days): a longer,
#: infinite or unreadable wait is remembered as this, never as an error.
MAX_BAN_S = 3 * 86_400.0


def bounded_wait_s(seconds: float) -> float:
    """`seconds` clipped to [0, MAX_BAN_S]; NaN is the longest ban (an unreadable wait must not shorten one)."""
    if math.isnan(seconds):
        return MAX_BAN_S
    return min(max(0.0, seconds), MAX_BAN_S)


def _until(entry: object) -> float | None:
    """The finite `until` (epoch seconds) of a ban-file entry, else None (a corrupt entry is ignored)."""
    if not isinstance(entry, dict):
        return None
    try:
        until = float(entry["until"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    return until if math.isfinite(until) else None


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
        until = _until(entry)
        if until is None:
            return None
        # A file edited by hand cannot hold a ban beyond the longest Binance documents.
        ban = Ban(host, min(until, self.clock() + MAX_BAN_S), str(entry.get("reason", "")))
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
        """Remember a ban of `seconds` (bounded by `bounded_wait_s`) on `host`; a longer ban already recorded is
        kept, corrupt or expired entries are dropped (a corrupt file is rewritten, never fatal)."""
        with self._locked():
            data = self._read()
            now = self.clock()
            until = now + bounded_wait_s(float(seconds))
            previous = _until(data.get(host))
            if previous is not None and until < previous <= now + MAX_BAN_S:
                until = previous
            data = {h: e for h, e in data.items() if (u := _until(e)) is not None and u > now}
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
