"""Argument types of the `liq` command: every count, width, time and date is checked by the parser, so a hostile
argument ends in one line naming it and exit code 2 (`OneLineParser`), before any work and never in a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys

#: Times and dates the data can hold: Binance USD-M futures started in 2019; far-future values are typos.
EARLIEST = dt.datetime(2019, 1, 1)
LATEST = dt.datetime(2100, 1, 1)


def terminal_columns() -> int:
    """The terminal's width as `shutil.get_terminal_size().columns` gives it: COLUMNS when a positive number,
    else the width of the terminal on stdout, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help formatter, at the width argparse's own takes (the terminal's, minus 2), found without
    importing `shutil`: argparse makes a formatter for every `add_argument`, and `shutil` loads bz2 and lzma,
    about 2 ms of CPU of a cold `liq heatmap` (docs/answer-files.md, "Cost"). The same help text."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        super().__init__(prog, indent_increment, max_help_position, terminal_columns() - 2 if width is None else width)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, `<prog>: <what is wrong>`, with exit code 2 (`liq --help`
    and `liq COMMAND --help` still print the usage). Sub-command parsers inherit the class and its formatter."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D102 (argparse API)
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def positive_int(text: str) -> int:
    """A whole number >= 1 (counts, bar widths, top-N)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {value}")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds, budgets)."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (USD thresholds)."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def in_range(at: dt.datetime, what: str) -> dt.datetime:
    """`at` (naive UTC) within [EARLIEST, LATEST); ValueError naming `what` otherwise."""
    if not EARLIEST <= at < LATEST:
        raise ValueError(f"{what} {at:%Y-%m-%d %H:%M} is outside the data's range: expected a time between "
                         f"{EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    return at


def date(text: str) -> dt.date:
    """A YYYY-MM-DD date between EARLIEST and LATEST."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None
    try:
        in_range(dt.datetime.combine(day, dt.time()), "date")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return day
