"""Image grids of classified examples, captioned with true and predicted class."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

from cnnlab.report._figures import new_figure, save_figure


class ImageFormatError(ValueError):
    """The images passed in are not a uint8 N x C x H x W array."""


def as_image_array(images: Any) -> np.ndarray:
    """uint8 N x C x H x W (C = 1 or 3) from a numpy array or a torch tensor on any device."""
    if hasattr(images, "detach"):  # torch tensor, possibly on CUDA
        images = images.detach().cpu().numpy()
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ImageFormatError(
            f"images must be N x C x H x W with C = 1 or 3 (channels first), got shape {images.shape}; "
            "for N x H x W x C use images.transpose(0, 3, 1, 2)"
        )
    if images.dtype != np.uint8:
        raise ImageFormatError(f"images must be uint8 in [0, 255] (unnormalized), got dtype {images.dtype}")
    return images


def examples_figure(examples: Sequence[dict[str, Any]], images: np.ndarray, title: str = "",
                    columns: int = 3) -> Figure:
    """Grid of the images of ``examples`` (rows from ``example_groups``), looked up by their ``row``.

    ``images`` (uint8 N x C x H x W) is aligned with the predictions: ``images[row]`` is the
    image of predictions row ``row`` (the split's images in the order they were predicted; the
    ``idx`` shown in tables is the index in the source split). Each caption reads
    "true: y_cat / pred: pred_cat (pred_prob)", green when right and red when wrong.
    """
    images = as_image_array(images)
    count = len(examples)
    rows = max(1, math.ceil(count / columns))
    title_in = 0.45 if title else 0.0  # inches reserved above the grid for the title
    height_in = 2.4 * rows + title_in
    fig = new_figure(2.2 * columns, height_in, constrained=False)
    # each cell is 2.4 in tall: ~0.55 in of two-line caption above a 1.85 in image
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1.0 - (title_in + 0.5) / height_in,
                        wspace=0.1, hspace=0.55 / 1.85)
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    if count == 0:
        axes[0].text(0.5, 0.5, "no examples in this group", ha="center", va="center", transform=axes[0].transAxes)
    for ax, example in zip(axes, examples):
        row = int(example["row"])
        if not 0 <= row < len(images):
            raise ImageFormatError(
                f"example row {row} is outside images (N = {len(images)}); pass the split's images in the "
                "order of its predictions (one image per row of probs)"
            )
        picture = images[row].transpose(1, 2, 0)
        if picture.shape[2] == 1:
            ax.imshow(picture[:, :, 0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(picture)
        right = example["pred_cat"] == example["y_cat"]
        ax.set_title(f"true: {example['y_cat']}\npred: {example['pred_cat']} ({example['pred_prob']:.3f})",
                     fontsize=8, color="green" if right else "red")
    if title:
        fig.suptitle(title)
    return fig


def plot_examples(examples: Sequence[dict[str, Any]], images: np.ndarray, out_png: Path, title: str = "") -> Path:
    """Save ``examples_figure(...)`` as a PNG atomically; returns ``out_png``."""
    return save_figure(examples_figure(examples, images, title), Path(out_png))
