"""Confusion-matrix and example-grid figures."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.evaluate.examples import example_groups
from cnnlab.report.confusion import confusion_figure, plot_confusion_matrix
from cnnlab.report.example_grid import ImageFormatError, examples_figure, plot_examples

NAMES = ["airplane", "automobile", "truck"]
CONFUSION = np.array([[8, 1, 1], [0, 5, 5], [0, 0, 0]])


def test_confusion_figure_labels_axes_with_class_names_and_normalizes_rows() -> None:
    fig = confusion_figure(CONFUSION, NAMES, normalize=True)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert [t.get_text() for t in ax.get_yticklabels()] == NAMES
    shown = ax.get_images()[0].get_array()
    np.testing.assert_allclose(shown[0], [0.8, 0.1, 0.1])
    np.testing.assert_allclose(shown[2], [0, 0, 0])  # empty row stays 0, not NaN
    assert "0.50" in [t.get_text() for t in ax.texts]


def test_confusion_counts_png_and_bad_shapes(tmp_path: Path) -> None:
    out = plot_confusion_matrix(CONFUSION, NAMES, tmp_path / "cm.png")
    with Image.open(out) as image:
        assert min(image.size) > 300
    with pytest.raises(ValueError, match="square"):
        confusion_figure(np.zeros((2, 3)), NAMES)
    with pytest.raises(ValueError, match="class names"):
        confusion_figure(CONFUSION, NAMES[:2])


def test_hundred_classes_render_without_cell_numbers() -> None:
    fig = confusion_figure(np.eye(100, dtype=int), [f"c{i}" for i in range(100)])
    assert len(fig.axes[0].texts) == 0


def test_example_grid_captions_and_looks_up_images_by_prediction_row(tmp_path: Path) -> None:
    images = np.zeros((2, 3, 8, 8), dtype=np.uint8)  # one image per prediction row
    images[0] = 255
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1]])
    groups = example_groups(probs, np.array([0, 2]), NAMES, indices=np.array([4000, 17]))
    fig = examples_figure(groups["right_highest"] + groups["wrong_highest"], torch.from_numpy(images))
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert len(shown) == 2
    assert shown[0].get_images()[0].get_array().max() == 255  # row 0 -> the white image, whatever its idx
    assert shown[1].get_images()[0].get_array().max() == 0
    assert shown[0].get_title() == "true: airplane\npred: airplane (0.900)"
    assert shown[1].title.get_color() == "red"
    out = plot_examples(groups["wrong_lowest"], images, tmp_path / "ex.png", title="wrong")
    assert out.stat().st_size > 1000


def test_example_grid_rejects_bad_images() -> None:
    rows = [{"row": 9, "idx": 9, "pred_cat": "a", "y_cat": "a", "pred_prob": 1.0}]
    with pytest.raises(ImageFormatError, match="channels first"):
        examples_figure(rows, np.zeros((2, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(ImageFormatError, match="uint8"):
        examples_figure(rows, np.zeros((2, 3, 8, 8), dtype=np.float32))
    with pytest.raises(ImageFormatError, match="outside images"):
        examples_figure(rows, np.zeros((2, 1, 8, 8), dtype=np.uint8))


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory):
    from report_fixtures import real_runs

    return real_runs(tmp_path_factory)


def test_report_code_leaves_the_matplotlib_backend_alone(real, tmp_path: Path) -> None:
    # a notebook's backend (inline, svg, ...) must survive `import cnnlab.report` and a report
    from report_fixtures import copy_run

    run_dir = copy_run(real.base, tmp_path)
    for split in ("train", "val"):
        (run_dir / "predictions" / f"{split}.npz").unlink()
    code = "\n".join([
        "import sys, matplotlib, numpy as np",
        "matplotlib.use('svg')",
        "import cnnlab.report",
        "from cnnlab.report import write_run_report",
        "from cnnlab.report.example_grid import examples_figure",
        "from cnnlab.report._figures import figure_to_png_bytes",
        f"html, md = write_run_report({str(run_dir)!r}, images={{'test': np.zeros((12, 3, 16, 16), np.uint8)}})",
        "rows = [{'row': 0, 'idx': 0, 'pred_cat': 'a', 'y_cat': 'a', 'pred_prob': 1.0}]",
        "png = figure_to_png_bytes(examples_figure(rows, np.zeros((1, 3, 8, 8), np.uint8)))",
        "assert png.startswith(b'\\x89PNG')",
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["svg", "False"]
    assert (run_dir / "report.html").is_file() and (run_dir / "figures" / "curves.png").is_file()


def test_report_package_never_uses_pyplot_or_switches_backends() -> None:
    for path in (REPO / "src" / "cnnlab" / "report").rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert not re.search(r"import\s+pyplot|matplotlib\.pyplot|\.use\(|switch_backend", source), path.name
