"""plot_curves: two panels, validation omitted when null, atomic PNG output."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.report.curves import MetricsFormatError, curves_figure, plot_curves, plot_learning_rate


def _metrics(epochs: int, with_val: bool) -> list[dict]:
    rows = []
    for e in range(1, epochs + 1):
        rows.append({
            "epoch": e, "train_loss": 2.0 / e, "train_acc": 0.2 + 0.1 * e,
            "val_loss": (2.2 / e) if with_val else None, "val_acc": (0.15 + 0.1 * e) if with_val else None,
            "lr": 0.1 * 0.5 ** e, "seconds": 1.0, "images_per_sec": 100.0,
        })
    return rows


def test_plot_curves_writes_a_decodable_png_and_no_temp_files(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "curves.png"
    returned = plot_curves(_metrics(5, with_val=True), out, title="run A")
    assert returned == out
    with Image.open(out) as image:
        width, height = image.size
        pixels = np.asarray(image.convert("L"))
    assert width > 500 and height > 200
    assert pixels.std() > 5  # not a blank canvas
    assert sorted(p.name for p in out.parent.iterdir()) == ["curves.png"]


def test_curves_figure_has_train_and_validation_lines_with_accuracy_in_percent() -> None:
    fig = curves_figure(_metrics(4, with_val=True))
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.get_lines()] == ["train", "validation"]
    train_acc = acc_ax.get_lines()[0].get_ydata()
    np.testing.assert_allclose(train_acc, [30, 40, 50, 60])
    np.testing.assert_allclose(loss_ax.get_lines()[1].get_xdata(), [1, 2, 3, 4])


def test_validation_line_is_omitted_when_null() -> None:
    fig = curves_figure(_metrics(3, with_val=False))
    for ax in fig.axes:
        assert [line.get_label() for line in ax.get_lines()] == ["train"]


def test_empty_or_malformed_metrics_raise_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MetricsFormatError, match="empty"):
        plot_curves([], tmp_path / "c.png")
    with pytest.raises(MetricsFormatError, match="epoch"):
        plot_curves([{"train_loss": 1.0}], tmp_path / "c.png")
    assert not any(tmp_path.iterdir())


def test_plot_learning_rate_writes_png(tmp_path: Path) -> None:
    out = plot_learning_rate(_metrics(6, with_val=False), tmp_path / "lr.png")
    with Image.open(out) as image:
        assert image.size[0] > 300


def test_the_loss_panel_shows_the_total_loss_only_when_there_is_a_penalty():
    from cnnlab.report.curves import curves_figure

    rows = [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5, "val_loss": 1.2 / e, "val_acc": 0.4,
             "train_loss_total": 1.0 / e, "val_loss_total": 1.2 / e} for e in (1, 2, 3)]
    labels = lambda fig: [line.get_label() for line in fig.axes[0].get_lines()]  # noqa: E731
    assert labels(curves_figure(rows)) == ["train", "validation"]
    for r in rows:
        r["train_loss_total"] += 0.3
        r["val_loss_total"] += 0.3
    assert labels(curves_figure(rows)) == ["train", "train + L2 penalty", "validation", "validation + L2 penalty"]


def test_stage_boundaries_are_marked_between_epochs():
    from cnnlab.report.curves import curves_figure, stage_boundaries

    rows = [{"epoch": e, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0, "val_acc": 0.5, "stage": s}
            for e, s in ((1, "head"), (2, "head"), (3, "block5"), (4, "block5"))]
    assert stage_boundaries(rows) == [(2.5, "block5")]
    fig = curves_figure(rows)
    assert any(list(line.get_xdata()) == [2.5, 2.5] for line in fig.axes[0].get_lines())
    assert stage_boundaries([{**r, "stage": "train"} for r in rows]) == []
