"""Real episodes of the development window that the `trending` and `cascade` scenarios stand for.

`liq realism --episode NAME` compares a simulated market with the episode alone: the real statistics are
those of the episode's days, the band comes from windows of whole episode days drawn with replacement
(a block bootstrap over days: an episode of two weeks has too few weeks to resample). docs/simulator.md
shows each scenario against its episode.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Episode:
    name: str
    scenario: str
    first_day: dt.date
    last_day: dt.date  # inclusive
    what: str

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


#: Found in the development window (real BTCUSDT 2025-12-05 .. 2026-02-20) by its daily returns and
#: liquidations; docs/simulator.md gives the figures.
EPISODES: dict[str, Episode] = {e.name: e for e in (
    # The two weeks of steady decline before the crash: -6.5 % and -5.6 %, no day beyond +-5.4 %, liquidations
    # at about the window's average level, 80-85 % of them longs (the side the trend runs against).
    Episode("trending", "trending", dt.date(2026, 1, 16), dt.date(2026, 1, 29),
            "the steady slide of 2026-01-16 .. 01-29 (two weeks, -12 %, no crash day)"),
    # The window's liquidation storm: 2026-01-30 .. 02-12 holds its four largest liquidation days (02-05:
    # -15 % in a day, 2.2 % of OI liquidated on Binance's share, 86 % longs; 02-06: +11.5 % rebound; 01-31,
    # 02-03) and its largest hour (02-05 20:00 UTC, 134.5 M USD of longs on three exchanges).
    Episode("cascade", "cascade", dt.date(2026, 1, 30), dt.date(2026, 2, 12),
            "the liquidation storm of 2026-01-30 .. 02-12 (two weeks, the window's four largest liquidation days)"),
)}
