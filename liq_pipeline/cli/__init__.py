"""The `liq` command line: `main.py` parses and dispatches; `live.py`, `scorecard.py` and `validation.py` add
their command groups. Nothing here computes: every command calls apps/, pipeline/ or warehouse/."""
