"""The time-to-accuracy table over seeds reads every number from the runs' metrics.jsonl and summary.json."""
import json

import pytest

from cnnlab.report.epoch_table import epoch_rows, epoch_table, summary_cells


def run(folder, seconds, accs, final=None, tta=None, wall=None):
    folder.mkdir(parents=True)
    rows = [{"epoch": i + 1, "seconds": s, "test_acc": a} for i, (s, a) in enumerate(zip(seconds, accs))]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "summary.json").write_text(json.dumps({"final": {"test_acc": final, "test_tta_acc": tta},
                                                     "wall_seconds": wall}))
    return folder


def test_epochs_accumulate_training_seconds_and_average_accuracy_over_the_runs_that_reached_them(tmp_path):
    a = run(tmp_path / "a", [60, 60, 60], [0.5, 0.8, 0.91], final=0.91, tta=0.92, wall=200)
    b = run(tmp_path / "b", [30, 90], [0.7, 0.89], final=0.89, tta=0.90, wall=150)
    rows = epoch_rows([a, b])
    assert [r.epoch for r in rows] == [1, 2, 3]
    assert [r.runs for r in rows] == [2, 2, 1]
    assert rows[0].seconds.mean == pytest.approx(45) and rows[1].seconds.mean == pytest.approx(120)
    assert rows[2].seconds.mean == pytest.approx(180) and rows[2].seconds.std is None
    assert rows[1].accuracy.mean == pytest.approx(0.845)
    table = epoch_table(rows)
    assert "| 2 | 2 | 2.00 ± 0.00 | 84.50 ± 6.36% |" in table
    assert "| 3 | 1 | 3.00 | 91.00% |" in table


def test_the_summary_counts_the_runs_that_reached_the_target_and_their_time_to_it(tmp_path):
    a = run(tmp_path / "a", [60, 60, 60], [0.5, 0.90, 0.91], final=0.91, tta=0.92, wall=240)
    b = run(tmp_path / "b", [30, 90], [0.7, 0.89], final=0.89, tta=0.90, wall=180)
    cells = summary_cells([a, b], target=0.9)
    assert cells[0] == "2"
    assert cells[1] == "90.00 ± 1.41%"
    assert cells[3] == "2.50 ± 0.71"           # 180 s and 120 s of training
    assert cells[4] == "3.50 ± 0.71"           # 240 s and 180 s of wall time
    assert cells[5] == "1 of 2, 2.00 min"      # run a, at the end of epoch 2
    assert len(cells) == 6
    assert summary_cells([a, b], target=0.9, tta_target=0.915)[6] == "1 of 2"   # only a's 92% TTA


def test_a_run_without_per_epoch_test_accuracy_names_the_option_that_logs_it(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "seconds": 10, "val_acc": 0.5}) + "\n")
    with pytest.raises(ValueError, match="monitor_test=true"):
        epoch_rows([folder])
