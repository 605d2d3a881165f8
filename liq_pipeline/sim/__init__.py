"""The ground-truth market simulator: a seeded agent-based model of Binance USD-M perpetuals that writes a
local mirror in the data.binance.vision layout plus the truth the estimator is scored against.

Public face: `SimConfig` / `SCENARIOS` (parameters, config.py), `simulate(cfg)` (market.py). By concern:
price.py (price process and daily draws), speculators.py and providers.py (agents and their books),
accounting.py (funding, margins, metrics), book.py, writer.py and files.py (archive and truth files),
realism.py (truth-side figures) and facts.py (public statistics shared with real data, `liq realism`).
"""

from liq_pipeline.sim.config import SCENARIOS, SimConfig, epoch_ms
from liq_pipeline.sim.market import SimSummary, SymbolSummary, simulate, simulate_symbol

__all__ = ["SCENARIOS", "SimConfig", "SimSummary", "SymbolSummary", "epoch_ms", "simulate", "simulate_symbol"]
