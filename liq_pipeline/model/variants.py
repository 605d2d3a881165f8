"""The variants of the liquidation map: the one registry of their names and of the rules each passes to the book
engine (model/flow.py). Nothing outside this module spells a variant's name; code asks for a role
(`DEFAULT`, `NAIVE`, `SEED_CHALLENGER`, `NO_FUNDING_INPUT`) or walks `NAMES`.

A variant is a set of rules for the one book of leveraged positions:
- `split`: how the notional opened in a step splits long/short (liquidation-math.md §8 for the seed's rules):
  `even` 50/50; `ofi` the long probability 0.5 + 0.35·tanh(1.5·OFI) of the entry bin's window OFI
  (model.ofi_bins); `funding` 50/50 tilted by the funding multipliers of the latest settled rate;
  `hybrid` the OFI probability tilted by the funding multipliers; `crowding` the mean of the public
  crowding signals (funding, premium, account ratio, taker flow while OI rises);
- `leverage_mix`: `seed` (ModelParams: 5/10/20/50/100x at 20/35/25/15/5 %) or `flow` (FlowParams' prior,
  learned from public liquidations when `learned`);
- `close`: `until_crossed` (opens only where OI rises, the book shrinks pro rata where it falls, a position
  lives until the mark crosses its liquidation price) or `survival` (gross opens with turnover, closes by a
  hazard that falls with age and rises with leverage);
- `learned`: whether the leverage mix, the leveraged share and the survival time scale are fitted each day.
"""

from __future__ import annotations

from collections import namedtuple

SPLIT_EVEN, SPLIT_OFI, SPLIT_FUNDING, SPLIT_HYBRID, SPLIT_CROWDING = "even", "ofi", "funding", "hybrid", "crowding"
SPLITS = (SPLIT_EVEN, SPLIT_OFI, SPLIT_FUNDING, SPLIT_HYBRID, SPLIT_CROWDING)
LEVERAGE_MIXES = ("seed", "flow")
CLOSES = ("until_crossed", "survival")


class Variant(namedtuple("Variant", "name split leverage_mix close learned summary")):
    """One variant: its name, `split`, `leverage_mix`, `close`, whether it is `learned`, and `summary`, one line for
    tables and help texts. Immutable and checked when made. (A named tuple rather than a dataclass: `liq heatmap`
    reads the names without importing `dataclasses`, about 10 ms of CPU of a cold start.)"""

    __slots__ = ()

    def __new__(cls, name: str, split: str, leverage_mix: str, close: str, learned: bool, summary: str):
        for value, allowed in ((split, SPLITS), (leverage_mix, LEVERAGE_MIXES), (close, CLOSES)):
            if value not in allowed:
                raise ValueError(f"variant {name}: {value!r} is not one of {', '.join(allowed)}")
        if learned and leverage_mix != "flow":
            raise ValueError(f"variant {name}: only the flow leverage mix is learned")
        return super().__new__(cls, name, split, leverage_mix, close, learned, summary)

    @property
    def is_seed(self) -> bool:
        """One of the seed's four rules (split by profile/OFI/funding, the seed's leverage mix)."""
        return self.leverage_mix == "seed"


REGISTRY: tuple[Variant, ...] = (
    Variant("volume_5050", "even", "seed", "until_crossed", False, "opens split 50/50: the naive baseline"),
    Variant("ofi", "ofi", "seed", "until_crossed", False, "opens split by the entry bin's window order-flow imbalance"),
    Variant("funding", "funding", "seed", "until_crossed", False, "opens split 50/50, tilted by funding"),
    Variant("hybrid", "hybrid", "seed", "until_crossed", False, "OFI split tilted by funding: the seed's best guess"),
    Variant("flow", "crowding", "flow", "survival", True,
            "crowding-signal split, learned leverage mix, survival closes"),
)
BY_NAME = {v.name: v for v in REGISTRY}
NAMES: tuple[str, ...] = tuple(BY_NAME)
SEED: tuple[str, ...] = tuple(v.name for v in REGISTRY if v.is_seed)
LEARNED: tuple[str, ...] = tuple(v.name for v in REGISTRY if v.learned)

#: The variant the CLI, `liq now`, the pictures and the zones summary show unless told otherwise: `flow`, since
#: it ranks first on the validation's primary figure (overlap / oracle ceiling) in every pair, symbol and month
#: measured (README, "Comparing the variants across markets").
DEFAULT = "flow"
#: The naive baseline every comparison is made against.
NAIVE = "volume_5050"
#: The seed's best guess: the monthly report's challenger of the naive baseline.
SEED_CHALLENGER = "hybrid"
#: The variant without a funding input, so its long share can be correlated with funding without circularity.
NO_FUNDING_INPUT = "ofi"
#: The paired test of the monthly report (its name in model.validation_results).
SEED_TEST = f"{SEED_CHALLENGER}_vs_{NAIVE}"
#: The pair that isolates the order-flow signal (the same rules but the split).
OFI_PAIR = (NO_FUNDING_INPUT, NAIVE)

if len(LEARNED) > 1:  # the learned parameters' tables (model.flow_parameters) hold one learned variant
    raise ValueError(f"at most one learned variant, not {LEARNED}")


def get(name: str) -> Variant:
    """The variant called `name`; KeyError naming the known ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown variant {name!r}: one of {', '.join(NAMES)}") from None
