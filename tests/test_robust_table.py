"""The robustness table over seeds reads every number from the runs' robust.json records."""
import json

import pytest

from cnnlab.report.robust_table import robust_row, robust_table


def record(folder, clean, jpeg, mean=None, images=2000, of=10000):
    folder.mkdir(parents=True)
    (folder / "robust.json").write_text(json.dumps({
        "clean": clean, "jpeg": jpeg, "mean_corruption_accuracy": mean, "images": images, "subset_of": of}))


def test_groups_take_clean_and_jpeg_from_the_full_record_and_corruptions_from_the_subset(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    record(a / "robust", 0.5, {"75": 0.4}, mean=0.60)            # subset numbers: not used for clean/JPEG
    record(a / "robust-full", 0.90, {"75": 0.86}, images=10000)
    record(b / "robust", 0.5, {"75": 0.4}, mean=0.64)
    record(b / "robust-full", 0.92, {"75": 0.90}, images=10000)
    row = robust_row("jpeg", [a, b])
    assert row.clean.mean == pytest.approx(0.91) and row.clean.std == pytest.approx(0.0141421, rel=1e-4)
    assert row.jpeg["75"].mean == pytest.approx(0.88) and row.mean_corruption.mean == pytest.approx(0.62)
    assert row.gap("75") == pytest.approx(0.03) and row.gap("50") is None
    assert (row.clean_images, row.corruption_images) == ("10,000", "2,000 of 10,000")
    table = robust_table([row])
    assert "| jpeg | 2 | 91.00 ± 1.41% | 88.00 ± 2.83% | 3.00 | 62.00 ± 2.83% | 10,000 | 2,000 of 10,000 |" in table


def test_a_run_without_records_names_the_command(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="cnnlab robust .*--test-subset 0 --corruptions none"):
        robust_row("x", [tmp_path / "run"])
