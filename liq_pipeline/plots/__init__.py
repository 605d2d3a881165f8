"""Pictures: PNGs (matplotlib, Agg backend) for asset metadata and HTML reports (plotly).

One colour convention in every picture: long liquidations in `LONG_COLOR` (cyan, below the mark), short
liquidations in `SHORT_COLOR` (red, above the mark), the mark price in white, on a dark background.
"""

from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")

BACKGROUND = "#0b0b12"
LONG_COLOR = "#35c3f2"
SHORT_COLOR = "#f2545b"
MARK_COLOR = "#ffffff"


def markdown_image(png: bytes, alt: str) -> str:
    """A PNG embedded as base64 markdown, which the Dagster UI renders on the asset page."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def price_label(price: float) -> str:
    """A price as a tick label: thousands separators, cents only below 1,000."""
    return f"{price:,.0f}" if abs(price) >= 1_000 else f"{price:,.2f}"
