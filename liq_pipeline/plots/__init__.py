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

#: Line breaks matplotlib's wrapping chose for a note, per (text, position, figure size, dpi, style).
_WRAPPED: dict[tuple, str] = {}


def markdown_image(png: bytes, alt: str) -> str:
    """A PNG embedded as base64 markdown, which the Dagster UI renders on the asset page."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def price_label(price: float) -> str:
    """A price as a tick label: thousands separators, cents only below 1,000."""
    return f"{price:,.0f}" if abs(price) >= 1_000 else f"{price:,.2f}"


def figure_note(fig, x: float, y: float, text: str, **kwargs):
    """`fig.text(x, y, text, wrap=True, **kwargs)`, wrapped by matplotlib once per figure size, text and style
    and then drawn with those line breaks: the same picture, without measuring the words again at each
    layout pass and draw of every figure (a third of a liquidation map's drawing time)."""
    key = (text, x, y, tuple(fig.get_size_inches()), fig.dpi, tuple(sorted(kwargs.items())))
    if key not in _WRAPPED:
        note = fig.text(x, y, text, wrap=True, **kwargs)
        try:  # matplotlib's own wrapping (private: where it is missing, the note wraps at every draw)
            note._renderer = fig.canvas.get_renderer()
            _WRAPPED[key] = note._get_wrapped_text()
        except AttributeError:
            return note
        note.remove()
    return fig.text(x, y, _WRAPPED[key], **kwargs)
