"""Shared matplotlib plumbing: headless backend, figure -> PNG bytes, atomic saving."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot import
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cnnlab.atomic import write_bytes_atomically  # noqa: E402

PNG_DPI = 100  # dots per inch: 8-inch-wide figures come out 800 px wide


def new_figure(width_in: float, height_in: float, constrained: bool = True) -> Figure:
    """A figure not registered with pyplot's global state, so it never leaks memory.

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


__all__ = ["plt", "new_figure", "figure_to_png_bytes", "save_figure", "PNG_DPI"]
