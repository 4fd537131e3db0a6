"""Training curves: loss and accuracy per epoch, train vs validation."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cnnlab.report._figures import new_figure, save_figure


class MetricsFormatError(ValueError):
    """The per-epoch metrics are not in the format metrics.jsonl promises."""


def _series(metrics: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(epochs, values) for ``key``, skipping epochs where the value is null or NaN."""
    epochs: list[int] = []
    values: list[float] = []
    for row in metrics:
        value = row.get(key)
        if value is None:
            continue
        value = float(value)
        if math.isnan(value):
            continue
        epochs.append(int(row["epoch"]))
        values.append(value)
    return epochs, values


def epoch_axis(ax: Any, last_epoch: int) -> None:
    """Whole-number epoch ticks from 1 to ``last_epoch`` (also sensible for a one-epoch run)."""
    ax.set_xlim(0.5, max(last_epoch, 1) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def _check_metrics(metrics: Sequence[dict[str, Any]]) -> None:
    if len(metrics) == 0:
        raise MetricsFormatError("no epochs to plot: metrics is empty (did training finish at least one epoch?)")
    for i, row in enumerate(metrics):
        if not isinstance(row, dict) or "epoch" not in row:
            raise MetricsFormatError(
                f"metrics[{i}] has no 'epoch' key; each row must be a dict like "
                "{'epoch': 1, 'train_loss': ..., 'train_acc': ..., 'val_loss': ..., 'val_acc': ...}"
            )


def _has_penalty(metrics: Sequence[dict[str, Any]], split: str) -> bool:
    """True when the rows carry a total loss that differs from the data loss (an L2 penalty)."""
    return any(row.get(f"{split}_loss_total") is not None and row.get(f"{split}_loss") is not None
               and abs(row[f"{split}_loss_total"] - row[f"{split}_loss"]) > 1e-12 for row in metrics)


def stage_boundaries(metrics: Sequence[dict[str, Any]]) -> list[tuple[float, str]]:
    """(x, stage name) where a staged fine-tuning enters a new stage: between the two epochs' points."""
    out = []
    for before, row in zip(metrics, metrics[1:]):
        if row.get("stage") is not None and row.get("stage") != before.get("stage"):
            out.append((int(before["epoch"]) + 0.5, str(row["stage"])))
    return out


def curves_figure(metrics: list[dict], title: str = "") -> Figure:
    """Two-panel figure (loss, accuracy in percent) per epoch, train vs validation.

    Validation lines are omitted where ``val_*`` is null. When the run has an L2 penalty, the loss
    panel also shows the total loss (data loss + penalty, dashed): that is what Keras reports as
    loss and val_loss, so these are the curves to compare with a Keras run.
    """
    _check_metrics(metrics)
    fig = new_figure(10, 4)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for ax, key, ylabel, scale in ((loss_ax, "loss", "loss", 1.0), (acc_ax, "acc", "accuracy (%)", 100.0)):
        for split, label, style in (("train", "train", "-o"), ("val", "validation", "-s"),
                                    ("test", "test (monitored)", "-^")):   # test_*: only with monitor_test
            epochs, values = _series(metrics, f"{split}_{key}")
            if epochs:
                line, = ax.plot(epochs, [v * scale for v in values], style, markersize=3, label=label)
                if key == "loss" and _has_penalty(metrics, split):
                    t_epochs, totals = _series(metrics, f"{split}_loss_total")
                    ax.plot(t_epochs, totals, "--", color=line.get_color(), label=f"{label} + L2 penalty")
        epoch_axis(ax, max(int(row["epoch"]) for row in metrics))
        for boundary, name in stage_boundaries(metrics):
            ax.axvline(boundary, color="0.5", linestyle=":", linewidth=1)
            ax.annotate(name, (boundary, 1), xycoords=("data", "axes fraction"), fontsize=7, color="0.4",
                        ha="left", va="top", rotation=90)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    loss_ax.set_title("loss")
    acc_ax.set_title("accuracy")
    if title:
        fig.suptitle(title)
    return fig


def plot_curves(metrics: list[dict], out_png: Path, title: str = "") -> Path:
    """Plot loss and accuracy per epoch (train vs validation) into a two-panel PNG.

    ``metrics`` is the list of per-epoch rows of ``metrics.jsonl``. Validation lines are
    omitted where ``val_*`` is null. The PNG is written atomically; returns ``out_png``.
    """
    return save_figure(curves_figure(metrics, title), Path(out_png))


def learning_rate_figure(metrics: list[dict], title: str = "") -> Figure:
    """Learning rate per epoch (log scale when it spans more than 10x)."""
    _check_metrics(metrics)
    epochs, lrs = _series(metrics, "lr")
    fig = new_figure(6, 3.5)
    ax = fig.subplots()
    if epochs:
        ax.plot(epochs, lrs, "-o", markersize=3)
        positive = [v for v in lrs if v > 0]
        if positive and len(positive) == len(lrs) and max(positive) / min(positive) > 10:
            ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no learning rate recorded", ha="center", va="center", transform=ax.transAxes)
    epoch_axis(ax, max(int(row["epoch"]) for row in metrics))
    ax.set_ylabel("learning rate")
    ax.set_title(title or "learning rate")
    ax.grid(True, alpha=0.3)
    return fig


def plot_learning_rate(metrics: list[dict], out_png: Path, title: str = "") -> Path:
    """Plot the learning rate per epoch into a PNG written atomically; returns ``out_png``."""
    return save_figure(learning_rate_figure(metrics, title), Path(out_png))
