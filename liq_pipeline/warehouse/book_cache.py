"""The end books flow_book has just stored, kept in memory while a batch owns the warehouse (`make demo`), so
the next day's run starts from them without reading them back (readers/flow.py `load_book`,
`load_candidate_book`). Off by default: only inside `sharing()` is anything kept.

A kept book is the stored one bit for bit: the same cells with the same values (DOUBLE, INTEGER and
millisecond TIMESTAMP columns round-trip exactly) in the order the readers return them (`ORDER BY ALL` over
Book.FIELDS, side as ±1: `stored_order`). Only the newest day of each (table, symbol, book) is kept, the one
the next day starts from, so memory stays at one day's books.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

import numpy as np

from liq_pipeline.model import flow as fl

_kept: dict[tuple, tuple[dt.date, fl.Book]] | None = None


@contextlib.contextmanager
def sharing() -> Iterator[None]:
    """Keep the books written until the block ends (nested: the outer block's store is used)."""
    global _kept
    if _kept is not None:
        yield
        return
    _kept = {}
    try:
        yield
    finally:
        _kept = None


def stored_order(book: fl.Book) -> fl.Book:
    """`book` with its cells in the order of `SELECT ... ORDER BY ALL` over Book.FIELDS (the readers' order)."""
    order = np.lexsort([getattr(book, f) for f in reversed(fl.Book.FIELDS)])
    return fl.Book.from_columns({f: getattr(book, f)[order] for f in fl.Book.FIELDS})


def keep(table: str, symbol: str, day: dt.date, key: str | float, book: fl.Book) -> None:
    """Record that `book` is now stored in `table` for (symbol, day, key) (key: the variant or the candidate's
    half-life); replaces the book of an earlier day of the same (table, symbol, key)."""
    if _kept is not None:
        _kept[(table, symbol, key)] = (day, stored_order(book))


def kept(table: str, symbol: str, day: dt.date, key: str | float) -> fl.Book | None:
    """The book stored in `table` for (symbol, day, key) if it was kept, else None (read it)."""
    if _kept is None:
        return None
    got = _kept.get((table, symbol, key))
    return got[1] if got is not None and got[0] == day else None

