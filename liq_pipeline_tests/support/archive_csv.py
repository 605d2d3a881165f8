"""Archive CSV files written by hand for the parser tests: a file under a name, and four aggTrades rows
(one duplicated, out of id order) of 2026-01-05."""

from __future__ import annotations

import datetime as dt

DAY = dt.date(2026, 1, 5)
T0 = 1767571200000  # 2026-01-05 00:00:00 UTC in ms


def write(tmp_path, name, header, rows):
    path = tmp_path / name
    lines = ([",".join(header)] if header else []) + [",".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines))
    return path


AGG_ROWS = [
    (3, "90000.5", "0.010", 30, 31, T0 + 2000, "false"),
    (1, "90000.1", "0.500", 10, 12, T0 + 1000, "true"),
    (2, "90000.2", "0.001", 20, 20, T0 + 1500, "false"),
    (2, "90000.2", "0.001", 20, 20, T0 + 1500, "false"),  # duplicated row
]
