"""write_run_report on real tiny runs (see report_fixtures.real_runs), complete and with parts missing."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.evaluate.examples import example_groups
from cnnlab.report import write_run_report
from cnnlab.runfolder import load_run_data
from report_fixtures import RealRuns, copy_run, edit_summary, read_summary, real_runs, train_tiny

EXAMPLE_GROUPS_SHOWN = 9  # EXAMPLES_PER_GROUP of the report


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> RealRuns:
    return real_runs(tmp_path_factory)


def _img_sources(html_text: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', html_text)


def _grids(run_dir: Path, split: str = "test") -> int:
    """How many example grids the report draws for ``split``: one per non-empty group."""
    predictions = load_run_data(run_dir).predictions[split]
    groups = example_groups(predictions.probs, predictions.labels, None, predictions.indices, EXAMPLE_GROUPS_SHOWN)
    return sum(1 for rows in groups.values() if rows)


def test_from_train_to_report_html_with_the_real_test_accuracy_and_curves(real: RealRuns, tmp_path: Path) -> None:
    # real.base was made by cnnlab.train.train() (report_fixtures.train_tiny); no numbers are made up here
    run_dir = copy_run(real.base, tmp_path)
    html_path, md_path = write_run_report(run_dir)
    page = html_path.read_text(encoding="utf-8")
    test_acc = read_summary(run_dir)["final"]["test_acc"]
    shown = f"{100 * test_acc:.2f}%"
    assert re.search(rf"<tr><td>test</td><td>[0-9.]+</td><td>{re.escape(shown)}</td></tr>", page)  # final results
    with np.load(run_dir / "predictions" / "test.npz") as archive:  # the same number recomputed from predictions
        assert float(np.mean(archive["probs"].argmax(1) == archive["labels"])) == pytest.approx(test_acc)
    assert f"| test | 12 | {shown} |" in md_path.read_text(encoding="utf-8")
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}" alt="loss and accuracy per epoch">', page)
    with Image.open(run_dir / "figures" / "curves.png") as image:
        assert image.size[0] >= 800 and np.asarray(image.convert("L")).std() > 5
    assert load_run_data(run_dir).missing == []  # a real run holds every file the report reads


def test_full_report_is_self_contained_with_all_sections(real: RealRuns, tmp_path: Path) -> None:
    run_dir = copy_run(real.base, tmp_path)
    html_path, md_path = write_run_report(run_dir, images={"test": real.test_images})
    assert html_path == run_dir / "report.html" and md_path == run_dir / "report.md"
    page = html_path.read_text(encoding="utf-8")
    sources = _img_sources(page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # no external resources
    for heading in ("Training curves", "Metrics per split", "Per class (test)", "Confusion matrices",
                    "Best and worst examples", "Timing and size", "Model summary", "Config", "Versions and hardware"):
        assert f"<h2>{heading}</h2>" in page
    assert "Right, highest probability" in page and "frog" in page
    grids = _grids(run_dir)
    assert grids >= 3  # the tiny run gets some test images right and some wrong
    # 2 curves + 2 confusion figures per split x 3 splits + one grid per non-empty example group
    assert len(sources) == 2 + 6 + grids
    markdown = md_path.read_text(encoding="utf-8")
    linked = re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", markdown)
    assert len(linked) == len(sources)
    assert all((run_dir / link).is_file() for link in linked)
    assert "| pred_prob | pred_cat | y_cat | idx |" in markdown
    summary = read_summary(run_dir)
    assert f"hardware: " in page and str(summary["params"]["total"]) in page.replace(",", "")


def test_flip_tta_run_gets_a_second_test_row(real: RealRuns, tmp_path: Path) -> None:
    run_dir = train_tiny(tmp_path / "runs", real.data, "epochs=1", "tta=true")
    assert (run_dir / "predictions" / "test_tta.npz").is_file()
    tta_acc = read_summary(run_dir)["final"]["test_tta_acc"]
    html_path, md_path = write_run_report(run_dir)
    lines = md_path.read_text(encoding="utf-8").splitlines()
    assert any(line.startswith(f"| test (flip TTA) | 12 | {100 * tta_acc:.2f}% |") for line in lines)
    assert f"| test (flip TTA) | — | {100 * tta_acc:.2f}% |" in lines   # in Final results too
    assert len(_img_sources(html_path.read_text(encoding="utf-8"))) == 2 + 6  # no extra confusion figures


def test_binary_sigmoid_run_without_validation(real: RealRuns, tmp_path: Path) -> None:
    run_dir = copy_run(real.binary, tmp_path)
    with np.load(run_dir / "predictions" / "test.npz") as archive:
        assert archive["probs"].shape == (16, 1)  # one sigmoid output
        accuracy = float(np.mean((archive["probs"][:, 0] > 0.5) == archive["labels"]))
    _, md_path = write_run_report(run_dir)
    markdown = md_path.read_text(encoding="utf-8")
    assert f"| test | 16 | {100 * accuracy:.2f}% |" in markdown and "| dog |" in markdown and "| cat |" in markdown
    assert "No validation split: only training curves are shown." in markdown
    assert "| validation |" not in markdown


def test_one_bad_prediction_file_is_skipped_with_a_note(real: RealRuns, tmp_path: Path) -> None:
    run_dir = copy_run(real.base, tmp_path)  # a corrupt file no real run writes
    np.savez(run_dir / "predictions" / "val.npz", probs=np.full((4, 3), 1 / 3, dtype=np.float32),
             labels=np.array([0, 1, 2, 7]), indices=np.arange(4))
    _, md_path = write_run_report(run_dir)
    markdown = md_path.read_text(encoding="utf-8")
    assert "predictions/val.npz skipped" in markdown and "[0, 3)" in markdown
    assert "| test | 12 |" in markdown and "Per class (test)" in markdown


def test_missing_parts_are_named_and_the_report_still_renders(real: RealRuns, tmp_path: Path) -> None:
    run_dir = copy_run(real.base, tmp_path)
    for name in ("config.yaml", "model_summary.txt"):
        (run_dir / name).unlink()
    for npz in (run_dir / "predictions").glob("*.npz"):
        npz.unlink()
    html_path, md_path = write_run_report(run_dir)
    markdown = md_path.read_text(encoding="utf-8")
    assert "Missing from this run" in markdown
    for absent in ("predictions/*.npz", "model_summary.txt", "config.yaml"):
        assert absent in markdown
    assert len(_img_sources(html_path.read_text(encoding="utf-8"))) == 2  # curves and learning rate only


def test_images_that_do_not_match_the_predictions_skip_the_grids_with_a_note(real: RealRuns, tmp_path: Path) -> None:
    run_dir = copy_run(real.base, tmp_path)
    _, md_path = write_run_report(run_dir, images={"test": real.test_images[:-1]})
    markdown = md_path.read_text(encoding="utf-8")
    assert "number 11 but its predictions 12" in markdown
    assert "examples_test_" not in markdown


def test_grids_are_reused_without_images_until_the_predictions_change(real: RealRuns, tmp_path: Path) -> None:
    run_dir = copy_run(real.base, tmp_path / "a")
    for split in ("train", "val"):  # fewer confusion figures to draw: the grids are what this is about
        (run_dir / "predictions" / f"{split}.npz").unlink()
    write_run_report(run_dir, images={"test": real.test_images})
    grid = run_dir / "figures" / "examples_test_right_highest.png"
    drawn = grid.read_bytes()
    expected = 2 + 2 + _grids(run_dir)
    html_path, _ = write_run_report(run_dir)  # as `cnnlab report RUN` without the dataset
    assert grid.read_bytes() == drawn
    assert len(_img_sources(html_path.read_text(encoding="utf-8"))) == expected
    copy = copy_run(run_dir, tmp_path / "copy")  # a copy (new mtimes) still reuses its grids
    assert len(_img_sources(write_run_report(copy)[0].read_text(encoding="utf-8"))) == expected
    with np.load(run_dir / "predictions" / "test.npz") as archive:  # re-evaluated predictions
        np.savez(run_dir / "predictions" / "test.npz", probs=archive["probs"][::-1], labels=archive["labels"],
                 indices=archive["indices"])
    _, md_path = write_run_report(run_dir)
    assert not grid.exists()  # stale grid removed, not shown beside new predictions
    assert "examples are tables only" in md_path.read_text(encoding="utf-8")
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]


HOSTILE = ["<script>alert(1)</script>", "a|b", "x & y"]


def test_class_names_are_escaped_in_markdown_and_html(real: RealRuns, tmp_path: Path) -> None:
    # a "/" cannot be in a folder (class) name, so this summary is edited: raw HTML and a table pipe
    run_dir = copy_run(real.base, tmp_path)
    edit_summary(run_dir, classes=HOSTILE)
    html_path, md_path = write_run_report(run_dir)
    markdown = md_path.read_text(encoding="utf-8")
    assert "<script" not in markdown and "</script>" not in markdown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown and "x &amp; y" in markdown
    per_class = markdown.split("## Per class")[1].split("##")[0]
    table = [line for line in per_class.splitlines() if line.startswith("|")]
    assert "| a\\|b |" in per_class
    pipes = [len(re.findall(r"(?<!\\)\|", line)) for line in table]
    assert pipes == [pipes[0]] * len(table) == [6] * len(table)  # no row gained a column
    assert sum(1 for line in table if line.startswith("| &lt;script&gt;")) == 1
    page = html_path.read_text(encoding="utf-8")
    assert "alert(1)</script>" not in page and page.count("<script>") == 1  # only the page's own sort script
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<td>a|b</td>" in page
    assert json.loads((run_dir / "summary.json").read_text())["classes"] == HOSTILE


def test_time_to_validation_accuracy_comes_from_the_runs_own_rows(real: RealRuns, tmp_path: Path) -> None:
    from cnnlab.evaluate.milestones import time_to_accuracy
    from cnnlab.report._format import duration, percent
    from cnnlab.runfolder import read_metrics

    run_dir = copy_run(real.base, tmp_path)
    rows = read_metrics(run_dir)
    marks = [m for m in time_to_accuracy(rows) if m.epoch]
    page = write_run_report(run_dir)[1].read_text(encoding="utf-8")
    if not marks:   # the tiny run reached no milestone: the table is left out, not filled with blanks
        assert "Time to validation accuracy" not in page
        return
    assert "Time to validation accuracy" in page
    first = marks[0]
    expected = sum(r["seconds"] for r in rows if r["epoch"] <= first.epoch)
    assert f"| {percent(first.accuracy, 0)} | {first.epoch} | {duration(expected)} |" in page
