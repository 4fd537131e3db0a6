"""write_run_report on fake run folders, complete and with parts missing."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from cnnlab.report import write_run_report
from cnnlab.report.run_folder import RunFolderError, load_run
from report_fixtures import fake_images, make_run

FEW_CLASSES = ["cat", "dog", "frog"]  # cheaper figures where the class count does not matter


def _img_sources(html_text: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', html_text)


def test_full_report_is_self_contained_with_all_sections(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    html_path, md_path = write_run_report(run_dir, images={"test": fake_images(60)})
    assert html_path == run_dir / "report.html" and md_path == run_dir / "report.md"
    page = html_path.read_text(encoding="utf-8")
    sources = _img_sources(page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # no external resources
    for heading in ("Training curves", "Metrics per split", "Per class (test)", "Confusion matrices",
                    "Best and worst examples", "Timing and size", "Model summary", "Config", "Versions and hardware"):
        assert f"<h2>{heading}</h2>" in page
    assert "Right, highest probability" in page and "automobile" in page
    # 2 curves + 2 confusion figures per split x 3 splits + 4 example grids
    assert len(sources) == 2 + 6 + 4
    markdown = md_path.read_text(encoding="utf-8")
    linked = re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", markdown)
    assert len(linked) == len(sources)
    assert all((run_dir / link).is_file() for link in linked)
    assert "| pred_prob | pred_cat | y_cat | idx |" in markdown


def test_reported_accuracy_matches_the_predictions(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, splits=("test",), classes=FEW_CLASSES)
    with np.load(run_dir / "predictions" / "test.npz") as archive:
        accuracy = float(np.mean(archive["probs"].argmax(1) == archive["labels"]))
    _, md_path = write_run_report(run_dir)
    assert f"| test | 60 | {100 * accuracy:.2f}% |" in md_path.read_text(encoding="utf-8")


def test_flip_tta_predictions_are_a_second_test_row(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, splits=("test",), classes=FEW_CLASSES)
    with np.load(run_dir / "predictions" / "test.npz") as archive:
        np.savez(run_dir / "predictions" / "test_tta.npz", probs=np.eye(3, dtype=np.float32)[archive["labels"]],
                 labels=archive["labels"], indices=archive["indices"])
    html_path, md_path = write_run_report(run_dir)
    lines = md_path.read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("| test (flip TTA) | 60 | 100.00% |") for line in lines)
    assert len(_img_sources(html_path.read_text(encoding="utf-8"))) == 2 + 2  # no extra confusion figures


def test_binary_sigmoid_run_reports_both_classes(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, splits=(), classes=["cat", "dog"])
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=40)
    p_dog = np.clip(labels * 0.6 + rng.uniform(0, 0.4, size=40), 0, 1).astype(np.float32)  # all right
    (run_dir / "predictions").mkdir(exist_ok=True)
    np.savez(run_dir / "predictions" / "test.npz", probs=p_dog[:, None], labels=labels, indices=np.arange(40))
    _, md_path = write_run_report(run_dir)
    markdown = md_path.read_text(encoding="utf-8")
    assert "| test | 40 | 100.00% |" in markdown and "| dog |" in markdown
    assert "No confusions on test" in markdown


def test_one_bad_prediction_file_is_skipped_with_a_note(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, splits=("val", "test"), classes=FEW_CLASSES)
    np.savez(run_dir / "predictions" / "val.npz", probs=np.full((4, 3), 1 / 3, dtype=np.float32),
             labels=np.array([0, 1, 2, 7]), indices=np.arange(4))
    _, md_path = write_run_report(run_dir)
    markdown = md_path.read_text(encoding="utf-8")
    assert "predictions/val.npz skipped" in markdown and "[0, 3)" in markdown
    assert "| test | 60 |" in markdown and "Per class (test)" in markdown


def test_missing_parts_are_named_and_the_report_still_renders(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, with_val=False, splits=(), with_model_summary=False)
    (run_dir / "config.yaml").unlink()
    html_path, md_path = write_run_report(run_dir)
    markdown = md_path.read_text(encoding="utf-8")
    assert "Missing from this run" in markdown
    for absent in ("predictions/*.npz", "model_summary.txt", "config.yaml"):
        assert absent in markdown
    assert "No validation split" in markdown
    assert len(_img_sources(html_path.read_text(encoding="utf-8"))) == 2  # curves and learning rate only


def test_images_that_do_not_match_the_predictions_skip_the_grids_with_a_note(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, splits=("test",), classes=FEW_CLASSES)
    _, md_path = write_run_report(run_dir, images={"test": fake_images(59)})
    markdown = md_path.read_text(encoding="utf-8")
    assert "number 59 but its predictions 60" in markdown
    assert "examples_test_" not in markdown


def test_grids_are_reused_without_images_until_the_predictions_change(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, splits=("test",), classes=FEW_CLASSES)
    write_run_report(run_dir, images={"test": fake_images(60)})
    grid = run_dir / "figures" / "examples_test_wrong_highest.png"
    drawn = grid.read_bytes()
    html_path, _ = write_run_report(run_dir)  # as `cnnlab report RUN` without the dataset
    assert grid.read_bytes() == drawn
    assert len(_img_sources(html_path.read_text(encoding="utf-8"))) == 2 + 2 + 4
    shutil.copytree(run_dir, tmp_path / "copy")  # a copy (new mtimes) still reuses its grids
    assert len(_img_sources(write_run_report(tmp_path / "copy")[0].read_text(encoding="utf-8"))) == 2 + 2 + 4
    with np.load(run_dir / "predictions" / "test.npz") as archive:  # re-evaluated predictions
        np.savez(run_dir / "predictions" / "test.npz", probs=archive["probs"][::-1], labels=archive["labels"],
                 indices=archive["indices"])
    _, md_path = write_run_report(run_dir)
    assert not grid.exists()  # stale grid removed, not shown beside new predictions
    assert "examples are tables only" in md_path.read_text(encoding="utf-8")
    assert not [p for p in run_dir.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def test_bad_run_folders_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="does not exist"):
        load_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError, match="is it a run folder"):
        load_run(tmp_path / "empty")
    run_dir = make_run(tmp_path)
    (run_dir / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n{"epoch": 3}\n')
    with pytest.raises(RunFolderError, match=r"metrics.jsonl:2"):
        load_run(run_dir)


def test_a_partial_last_metrics_line_is_tolerated(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    with (run_dir / "metrics.jsonl").open("a") as handle:
        handle.write('{"epoch": 4, "train_lo')
    run = load_run(run_dir)
    assert len(run.metrics) == 3 and "partial last line" in run.warnings[0]
