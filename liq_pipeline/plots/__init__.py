"""Pictures: PNGs (matplotlib, Agg backend) for asset metadata and HTML reports (plotly)."""

from __future__ import annotations

import base64

import matplotlib

matplotlib.use("Agg")


def markdown_image(png: bytes, alt: str) -> str:
    """A PNG embedded as base64 markdown, which the Dagster UI renders on the asset page."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
