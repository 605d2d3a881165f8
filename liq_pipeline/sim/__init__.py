"""The ground-truth market simulator: a seeded agent-based model of Binance USD-M perpetuals that writes a
local mirror in the data.binance.vision layout plus the truth the estimator is scored against.

Public face: `SimConfig` / `SCENARIOS` (parameters, config.py), `simulate(cfg)` (market.py). By concern:
price.py (price process and daily draws), speculators.py and providers.py (agents and their books),
accounting.py (funding, margins, metrics), book.py, writer.py and files.py (archive and truth files),
realism.py (truth-side figures) and facts.py (public statistics shared with real data, `liq realism`).
"""

from importlib import import_module

#: The public face, imported on first use: `liq --help` reads light modules of this folder (episodes.py)
#: and must not pay for numpy, pandas and pyarrow through this package's import.
_PUBLIC = {"SCENARIOS": "config", "SimConfig": "config", "epoch_ms": "config", "SimSummary": "market",
           "SymbolSummary": "market", "simulate": "market", "simulate_symbol": "market"}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f"liq_pipeline.sim.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'liq_pipeline.sim' has no attribute {name!r}")
