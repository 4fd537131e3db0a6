"""compare_runs: report 003's table, seeds grouped with mean ± sample std (ddof=1)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.report.compare import compare_runs, comparison_rows, plot_overlaid_curves
from report_fixtures import make_run

TEST_ACCS = [0.80, 0.82, 0.87]
WALL = [100.0, 110.0, 150.0]


def _three_seeds_and_one_other(root: Path) -> list[Path]:
    runs = [make_run(root, name="004-a", seed=s, final={"test_acc": acc}, wall_seconds=w, splits=())
            for s, acc, w in zip((1, 2, 3), TEST_ACCS, WALL)]
    runs.append(make_run(root, name="004-b", seed=7, final={"test_acc": 0.9, "val_loss": None, "val_acc": None},
                         with_val=False, splits=(), params_total=999))
    return runs


def test_three_seeds_give_sample_mean_and_std(tmp_path: Path) -> None:
    rows = comparison_rows(_three_seeds_and_one_other(tmp_path))
    assert [r.experiment for r in rows] == ["004-a", "004-b"]
    seeds = rows[0]
    assert seeds.seeds == [1, 2, 3] and seeds.stats["test_acc"].n == 3
    assert seeds.stats["test_acc"].mean == pytest.approx(np.mean(TEST_ACCS))
    assert seeds.stats["test_acc"].std == pytest.approx(np.std(TEST_ACCS, ddof=1))  # 0.0361, population would be 0.0294
    assert seeds.stats["wall_seconds"].std == pytest.approx(26.4575, rel=1e-4)
    single = rows[1]
    assert single.stats["test_acc"].std is None and single.stats["val_acc"].n == 0


def test_markdown_shows_mean_pm_std_and_absent_values(tmp_path: Path) -> None:
    text = compare_runs(_three_seeds_and_one_other(tmp_path), fmt="md")
    lines = text.splitlines()
    assert lines[0] == ("| experiment | n | train loss | train acc | val loss | val acc | test acc | params | epochs "
                        "| wall time |")
    seeds_line = next(line for line in lines if line.startswith("| 004-a"))
    assert "| 3 |" in seeds_line and "83.00 ± 3.61%" in seeds_line
    assert "2m 00s ± 26.5 s" in seeds_line
    other = next(line for line in lines if line.startswith("| 004-b"))
    assert "| 90.00% |" in other and "| — |" in other and "| 999 |" in other
    assert "ddof=1" in text


def test_csv_holds_raw_numbers(tmp_path: Path) -> None:
    text = compare_runs(_three_seeds_and_one_other(tmp_path), fmt="csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert float(rows[0]["test_acc_mean"]) == pytest.approx(0.83)
    assert float(rows[0]["test_acc_std"]) == pytest.approx(np.std(TEST_ACCS, ddof=1))
    assert rows[1]["test_acc_std"] == "" and rows[1]["n"] == "1"


def test_html_is_a_page_with_a_sortable_table(tmp_path: Path) -> None:
    page = compare_runs(_three_seeds_and_one_other(tmp_path), fmt="html")
    assert page.startswith("<!DOCTYPE html>") and 'class="sortable"' in page and "83.00 ± 3.61%" in page


def test_bad_format_and_empty_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="md, csv, html"):
        compare_runs([make_run(tmp_path, splits=())], fmt="xlsx")
    with pytest.raises(ValueError, match="at least one run"):
        compare_runs([])


def test_overlaid_curves_png(tmp_path: Path) -> None:
    out = plot_overlaid_curves(_three_seeds_and_one_other(tmp_path), tmp_path / "overlay.png")
    with Image.open(out) as image:
        assert image.size[0] >= 1000


def test_unfinished_runs_are_not_averaged_or_counted(tmp_path: Path) -> None:
    import json

    runs = _three_seeds_and_one_other(tmp_path)
    summary_path = runs[2] / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["status"] = "interrupted"            # seed 3 stopped mid-way: no final numbers to average
    summary_path.write_text(json.dumps(summary))
    row = comparison_rows(runs)[0]
    assert row.stats["test_acc"].n == 2 and len(row.runs) == 2 and row.unfinished == [runs[2].name]
    assert row.stats["test_acc"].mean == pytest.approx(np.mean(TEST_ACCS[:2]))
    text = compare_runs(runs, fmt="md")
    assert "| 2 |" in next(line for line in text.splitlines() if line.startswith("| 004-a"))
    assert f"Not finished, so not averaged: {runs[2].name}" in text
