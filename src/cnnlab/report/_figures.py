"""Shared matplotlib plumbing: figures without pyplot, figure -> PNG bytes, atomic saving.

Figures are ``matplotlib.figure.Figure`` objects made directly: no pyplot, no backend switch,
so importing the report code leaves a notebook's inline plots (or any chosen backend) alone, and
the figures are never registered in pyplot's global state (no memory leak over many reports).
``Figure.savefig`` renders PNG with the Agg canvas whatever the current backend is.
"""
from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

from cnnlab.atomic import write_bytes_atomically

PNG_DPI = 100  # dots per inch: 8-inch-wide figures come out 800 px wide


def new_figure(width_in: float, height_in: float, constrained: bool = True) -> Figure:
    """A standalone figure (not registered with pyplot).

    ``constrained`` layout keeps long tick labels inside the canvas; it costs about half the
    rendering time, so image grids (no ticks) lay themselves out by hand instead.
    """
    return Figure(figsize=(width_in, height_in), layout="constrained" if constrained else None)


def figure_to_png_bytes(fig: Figure, metadata: dict[str, str] | None = None) -> bytes:
    """Render ``fig`` to PNG bytes; ``metadata`` goes into PNG text chunks (readable with PIL's ``.text``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PNG_DPI, metadata=metadata)
    return buffer.getvalue()


def save_figure(fig: Figure, out_png: Path) -> Path:
    """Save ``fig`` as PNG at ``out_png`` atomically and return the path."""
    return write_bytes_atomically(Path(out_png), figure_to_png_bytes(fig))


__all__ = ["new_figure", "figure_to_png_bytes", "save_figure", "PNG_DPI"]
