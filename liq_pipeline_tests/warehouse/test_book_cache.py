"""warehouse/book_cache.py: a book kept while `sharing()` is the stored one bit for bit, in the readers' order;
nothing is kept outside `sharing()`, and only the newest day of each book."""

import datetime as dt

import duckdb
import numpy as np

from liq_pipeline.model import flow as fl
from liq_pipeline.pipeline.flow_day import book_frame
from liq_pipeline.warehouse import book_cache
from liq_pipeline.warehouse.io import write_frame
from liq_pipeline.warehouse.readers.flow import load_book, load_candidate_book

DAY = dt.date(2026, 1, 20)
DAY0_MS = 1_768_867_200_000  # 2026-01-20 00:00 UTC


def _book(n: int = 400, seed: int = 3) -> fl.Book:
    """Cells in no particular order, with ties on the first columns (as a day's cohorts have)."""
    rng = np.random.default_rng(seed)
    return fl.Book.from_columns({
        "open_ms": DAY0_MS + rng.integers(0, 4, n) * fl.MS_PER_HOUR, "side": rng.choice([1, -1], n),
        "entry_price": 90_000.0 + rng.integers(0, 5, n) * 90.0, "lev_bucket": rng.integers(0, 3, n),
        "leverage": rng.choice([5.0, 10.0, 20.0], n), "size_usd": rng.choice([2e3, 2e4], n),
        "mmr": rng.choice([0.004, 0.005], n), "lp_open": rng.uniform(8e4, 1e5, n),
        "funding_paid": rng.choice([0.0, 1e-4, -2e-4], n), "weight": rng.uniform(0, 1, n),
        "notional_usd": rng.uniform(0, 1e5, n)})


def _same(a: fl.Book, b: fl.Book) -> bool:
    return all(getattr(a, f).dtype == getattr(b, f).dtype and getattr(a, f).tobytes() == getattr(b, f).tobytes()
               for f in fl.Book.FIELDS)


def _stored(con, book: fl.Book, variant: str = "flow", half_life: float | None = None) -> None:
    frame = book_frame("BTCUSDT", DAY, book)
    if half_life is None:
        write_frame(con, "model.flow_book", "BTCUSDT", DAY, frame.assign(variant=variant))
    else:
        write_frame(con, "model.flow_candidate_books", "BTCUSDT", DAY, frame.assign(half_life_hours=half_life))


def test_a_kept_book_is_the_stored_book_bit_for_bit_in_the_readers_order():
    con = duckdb.connect()
    book, candidate = _book(), _book(seed=4)
    _stored(con, book)
    _stored(con, candidate, half_life=20.0)
    read, read_candidate = load_book(con, "BTCUSDT", DAY, "flow"), load_candidate_book(con, "BTCUSDT", DAY, 20.0)
    assert not _same(read, book)  # the engine's order is not the readers'
    with book_cache.sharing():
        book_cache.keep("model.flow_book", "BTCUSDT", DAY, "flow", book)
        book_cache.keep("model.flow_candidate_books", "BTCUSDT", DAY, 20.0, candidate)
        con.execute("DELETE FROM model.flow_book; DELETE FROM model.flow_candidate_books")  # answered from memory
        assert _same(load_book(con, "BTCUSDT", DAY, "flow"), read)
        assert _same(load_candidate_book(con, "BTCUSDT", DAY, 20.0), read_candidate)


def test_nothing_is_kept_outside_sharing_and_only_the_newest_day_inside():
    con = duckdb.connect()
    book = _book()
    book_cache.keep("model.flow_book", "BTCUSDT", DAY, "flow", book)  # not sharing: ignored
    assert book_cache.kept("model.flow_book", "BTCUSDT", DAY, "flow") is None
    with book_cache.sharing():
        book_cache.keep("model.flow_book", "BTCUSDT", DAY - dt.timedelta(days=1), "flow", book)
        book_cache.keep("model.flow_book", "BTCUSDT", DAY, "flow", book)
        assert book_cache.kept("model.flow_book", "BTCUSDT", DAY - dt.timedelta(days=1), "flow") is None
        assert book_cache.kept("model.flow_book", "BTCUSDT", DAY, "hybrid") is None
        assert book_cache.kept("model.flow_book", "ETHUSDT", DAY, "flow") is None
        assert book_cache.kept("model.flow_book", "BTCUSDT", DAY, "flow") is not None
    assert book_cache.kept("model.flow_book", "BTCUSDT", DAY, "flow") is None
    assert len(load_book(con, "BTCUSDT", DAY, "flow")) == 0  # nothing stored, nothing kept
