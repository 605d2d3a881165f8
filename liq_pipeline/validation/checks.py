"""The logic of the model checks that can fail, kept out of the Dagster layer (assets/validation.py wires it).

- OI conservation. The seed variants' distributions are scaled to OI when they are written, so their
  Σ(long + short) = OI is an INVARIANT (a failure is a bug, not a finding). What the model can get wrong is
  the `flow` book before any scaling: its opens, closes and liquidations must keep Σ(book) = OI (model/flow.py
  step (d)); when opens undershoot or closes overshoot, the unscaled book drifts from OI and the check fails.
- Verdicts: an inconclusive test (flat funding, too few days, no figure) is never reported as passed.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from liq_pipeline.model import scoring, variants
from liq_pipeline.validation.common import ensure_read_tables
from liq_pipeline.validation.seed import oi_conservation
from liq_pipeline.warehouse.readers import seed as seed_readers
from liq_pipeline.warehouse.schema import ensure_tables

#: |Σ unscaled flow book − OI| / OI above which the flow book is not conserving open interest (%).
FLOW_BOOK_TOLERANCE_PCT = 5.0
INVARIANT, CHECK = "invariant", "check"
OI_COLUMNS = ["symbol", "day", "variant", "kind", "estimated_usd", "oi_usd", "error_pct", "tolerance_pct"]


def flow_book_oi(con: duckdb.DuckDBPyConnection, symbol: str, day: dt.date) -> pd.DataFrame:
    """The learned variant's book (model.flow_book): its UNSCALED Σ notional at the end of `day` against the OI
    of model.position_signals then (one row, kind 'check'; none when the day has no such book). The seed
    variants' books open only where OI rises, so their Σ tracks OI only once old: they are not checked."""
    ensure_read_tables(con)
    ensure_tables(con, "model.flow_book")
    (learned,) = variants.LEARNED
    frame = seed_readers.book_oi(con, symbol, day, learned)
    return frame.assign(variant=learned, kind=CHECK, tolerance_pct=FLOW_BOOK_TOLERANCE_PCT)


def oi_table(con: duckdb.DuckDBPyConnection, targets: list[tuple[str, dt.date]],
             invariant_tolerance_pct: float) -> pd.DataFrame:
    """Per (symbol, day): the seed variants' scaled Σ vs OI (invariants) and the flow book's unscaled Σ vs OI
    (the check), with error_pct = |Σ − OI| / OI · 100 (nan when OI is unknown)."""
    frames = []
    for symbol, day in targets:
        seed = oi_conservation(con, symbol, day).assign(kind=INVARIANT, tolerance_pct=invariant_tolerance_pct)
        # The flow variant's distribution is scaled to OI as well: its own Σ is the invariant; its book is checked.
        frames += [seed.assign(symbol=symbol, day=day.isoformat()),
                   flow_book_oi(con, symbol, day).assign(symbol=symbol, day=day.isoformat())]
    table = pd.concat([f for f in frames if not f.empty], ignore_index=True) if any(not f.empty for f in frames) \
        else pd.DataFrame(columns=OI_COLUMNS)
    oi = table["oi_usd"].astype("float64").to_numpy()
    est = table["estimated_usd"].astype("float64").to_numpy()
    ok = np.isfinite(oi) & (oi > 0)
    table["error_pct"] = np.where(ok, np.abs(est - oi) / np.where(ok, oi, 1.0) * 100.0, np.nan)
    return table[OI_COLUMNS]


def oi_verdict(table: pd.DataFrame) -> tuple[str, str]:
    """(verdict, description): FAIL when any row exceeds its tolerance, INCONCLUSIVE when rows lack OI or
    nothing was checked (no flow book: the invariants alone validate nothing), PASS otherwise."""
    if table.empty:
        return scoring.INCONCLUSIVE, "no position distribution rows for the partition"
    over = table[table["error_pct"] >= table["tolerance_pct"]]
    broken = over[over["kind"] == INVARIANT]
    drifting = over[over["kind"] == CHECK]
    if not broken.empty:
        return scoring.FAIL, (f"invariant broken: a scaled distribution misses OI by up to "
                              f"{broken['error_pct'].max():.4f} % (a bug)")
    if not drifting.empty:
        return scoring.FAIL, (f"the flow book's unscaled notional misses OI by up to {drifting['error_pct'].max():.2f} % "
                              f"(tolerance {FLOW_BOOK_TOLERANCE_PCT} %) on {len(drifting)} day(s)")
    missing = table[table["error_pct"].isna()]
    if not missing.empty:
        return scoring.INCONCLUSIVE, f"actual OI missing for {len(missing)} row(s): conservation cannot be verified"
    checked = table[table["kind"] == CHECK]
    if checked.empty:
        return scoring.INCONCLUSIVE, "only invariants (no flow book to check): the model's bookkeeping is not verified"
    return scoring.PASS, (f"flow book within {checked['error_pct'].max():.2f} % of OI (tolerance "
                          f"{FLOW_BOOK_TOLERANCE_PCT} %); invariants hold")


def overall_verdict(verdicts: list[str]) -> tuple[bool, str]:
    """(passed, overall) of several verdicts: FAIL if any fails; else INCONCLUSIVE if any (or every one, or
    none at all) could not decide, which does NOT pass; else MODERATE if any, else PASS."""
    if scoring.FAIL in verdicts:
        return False, scoring.FAIL
    if not verdicts or scoring.INCONCLUSIVE in verdicts:
        return False, scoring.INCONCLUSIVE
    return True, scoring.MODERATE if scoring.MODERATE in verdicts else scoring.PASS
