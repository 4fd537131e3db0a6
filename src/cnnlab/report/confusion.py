"""Confusion-matrix figures: counts and row-normalized, class names on both axes."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from cnnlab.report._figures import new_figure, save_figure

MAX_CLASSES_WITH_NUMBERS = 20  # above this, cell numbers are unreadable; the colour carries the value


def confusion_figure(confusion: np.ndarray | list, class_names: Sequence[str], normalize: bool = False,
                     title: str = "") -> Figure:
    """Heat map of a K x K confusion matrix (row = true class, column = predicted class).

    With ``normalize`` each row is divided by its total, so a cell is the share of that true
    class (rows with no examples stay 0).
    """
    counts = np.asarray(confusion, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"confusion must be a square K x K matrix, got shape {counts.shape}")
    n_classes = counts.shape[0]
    if len(class_names) != n_classes:
        raise ValueError(f"got {len(class_names)} class names for a {n_classes} x {n_classes} confusion matrix")
    values = counts
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)

    side = min(max(4.5, 0.45 * n_classes + 2.0), 24.0)  # inches: ~0.45 in per class, capped
    fig = new_figure(side + 1.0, side)
    ax = fig.subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1.0 if normalize else max(values.max(), 1.0))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(n_classes)
    label_size = 8 if n_classes <= MAX_CLASSES_WITH_NUMBERS else 5
    ax.set_xticks(ticks, [str(n) for n in class_names], rotation=90, fontsize=label_size)
    ax.set_yticks(ticks, [str(n) for n in class_names], fontsize=label_size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or ("confusion matrix (row-normalized)" if normalize else "confusion matrix (counts)"))
    if n_classes <= MAX_CLASSES_WITH_NUMBERS:
        threshold = values.max() / 2.0  # white text on dark cells
        for i in range(n_classes):
            for j in range(n_classes):
                text = f"{values[i, j]:.2f}" if normalize else f"{int(counts[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if values[i, j] > threshold else "black")
    return fig


def plot_confusion_matrix(confusion: np.ndarray | list, class_names: Sequence[str], out_png: Path,
                          normalize: bool = False, title: str = "") -> Path:
    """Save ``confusion_figure(...)`` as a PNG atomically; returns ``out_png``."""
    return save_figure(confusion_figure(confusion, class_names, normalize, title), Path(out_png))
