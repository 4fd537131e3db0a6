"""Figures of the explain page: channel grids, filter images, heatmaps over an image.

matplotlib Figure objects made without pyplot (cnnlab.report._figures), laid out by hand: image
grids have no ticks, and constrained layout would double the rendering time.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from cnnlab.report._figures import new_figure

HEAT_CMAP = "jet"     # the Grad-CAM paper's colours: blue = none, red = most
HEAT_ALPHA = 0.45     # opacity of a heatmap over its image
CELL_IN = 1.25        # inches per grid cell


def picture(image: np.ndarray) -> tuple[np.ndarray, dict]:
    """uint8 C x H x W -> (array for imshow, imshow keywords)."""
    image = np.asarray(image)
    if image.shape[0] == 1:
        return image[0], {"cmap": "gray", "vmin": 0, "vmax": 255}
    return image.transpose(1, 2, 0), {}


def _grid(count: int, columns: int, title: str, caption_in: float = 0.22) -> tuple[Figure, list]:
    columns = max(1, min(columns, count))
    rows = max(1, math.ceil(count / columns))
    title_in = 0.4 if title else 0.0
    cell_h = CELL_IN + caption_in
    height = rows * cell_h + title_in
    fig = new_figure(columns * CELL_IN, height, constrained=False)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - (title_in + caption_in) / height,
                        wspace=0.06, hspace=caption_in / CELL_IN)
    axes = list(np.atleast_1d(fig.subplots(rows, columns)).ravel())
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig, axes


def channel_grid_figure(activations: np.ndarray, title: str, columns: int = 8) -> Figure:
    """One panel per channel of a C x h x w activation, each scaled to its own range (viridis)."""
    fig, axes = _grid(len(activations), columns, title)
    for channel, (ax, amap) in enumerate(zip(axes, activations)):
        ax.imshow(amap, cmap="viridis", interpolation="nearest")
        ax.set_title(f"{channel}  max {float(amap.max()):.2g}", fontsize=7)
    return fig


def filter_grid_figure(images: np.ndarray, filters: Sequence[int], start: np.ndarray, end: np.ndarray,
                       title: str, columns: int = 8) -> Figure:
    """The gradient-ascent image of each filter, captioned "filter: mean activation start -> end"."""
    fig, axes = _grid(len(images), columns, title)
    for ax, image, f, a0, a1 in zip(axes, images, filters, start, end):
        array, kw = picture(image)
        ax.imshow(array, interpolation="nearest", **kw)
        ax.set_title(f"{f}: {a0:.2g} -> {a1:.2g}", fontsize=7)
    return fig


def overlay(ax, image: np.ndarray, heat: np.ndarray | None, title: str) -> None:
    array, kw = picture(image)
    ax.imshow(array, interpolation="nearest", **kw)
    if heat is not None:
        ax.imshow(heat, cmap=HEAT_CMAP, alpha=HEAT_ALPHA, vmin=0, vmax=1, interpolation="bilinear")
    ax.set_title(title, fontsize=7)


def heatmaps_figure(image: np.ndarray, panels: Sequence[tuple[str, np.ndarray]], title: str = "",
                    columns: int = 6) -> Figure:
    """The image, then each (caption, H x W map in [0, 1]) laid over it."""
    fig, axes = _grid(len(panels) + 1, columns, title, caption_in=0.36)
    overlay(axes[0], image, None, "image")
    for ax, (caption, heat) in zip(axes[1:], panels):
        overlay(ax, image, heat, caption)
    return fig


def cam_examples_figure(examples: Sequence[tuple[np.ndarray, str, np.ndarray, np.ndarray]], title: str = "",
                        per_row: int = 2) -> Figure:
    """Per example (image, caption, Grad-CAM of the predicted class, of the true class): three panels."""
    fig, axes = _grid(3 * len(examples), 3 * per_row, title, caption_in=0.36)
    for i, (image, caption, predicted, true) in enumerate(examples):
        overlay(axes[3 * i], image, None, caption)
        overlay(axes[3 * i + 1], image, predicted, "Grad-CAM: predicted")
        overlay(axes[3 * i + 2], image, true, "Grad-CAM: true")
    return fig


__all__ = ["cam_examples_figure", "channel_grid_figure", "filter_grid_figure", "heatmaps_figure", "overlay", "picture"]
