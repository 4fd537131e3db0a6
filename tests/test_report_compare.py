"""compare_runs on real tiny runs: report 003's table, one row per experiment (config up to the seed),
mean ± sample std (ddof=1) over finished seeds."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from cnnlab.report.compare import compare_runs, comparison_rows, plot_overlaid_curves
from report_fixtures import RealRuns, copy_run, edit_summary, read_summary, real_runs, train_tiny


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> RealRuns:
    return real_runs(tmp_path_factory)


def _final(run_dir: Path, key: str) -> float:
    return read_summary(run_dir)["final"][key]


def test_seeds_of_one_config_give_sample_mean_and_std(real: RealRuns) -> None:
    rows = comparison_rows([real.base, real.seed2, real.binary])
    assert [r.experiment for r in rows] == ["tiny", "binary"]
    seeds = rows[0]
    accs = [_final(real.base, "test_acc"), _final(real.seed2, "test_acc")]
    assert seeds.seeds == [1, 2] and seeds.stats["test_acc"].n == 2 and seeds.runs == [real.base.name, real.seed2.name]
    assert seeds.stats["test_acc"].mean == pytest.approx(np.mean(accs))
    assert seeds.stats["test_acc"].std == pytest.approx(np.std(accs, ddof=1))  # sample std, not population
    walls = [read_summary(r)["wall_seconds"] for r in (real.base, real.seed2)]
    assert seeds.stats["wall_seconds"].mean == pytest.approx(np.mean(walls))
    single = rows[1]
    assert single.stats["test_acc"].std is None and single.stats["val_acc"].n == 0  # no validation split


def test_same_name_other_config_is_its_own_row_labelled_by_what_differs(real: RealRuns) -> None:
    # a 1-epoch smoke run (-o epochs=1) of "tiny" must not be averaged with the real tiny runs as a third seed
    rows = comparison_rows([real.smoke, real.base, real.seed2])
    assert [(r.experiment, len(r.runs)) for r in rows] == [("tiny", 2), ("tiny (epochs=1)", 1)]
    main, smoke = rows
    assert main.differs == {} and smoke.differs == {"epochs": "1"} and smoke.name == main.name == "tiny"
    assert main.stats["test_acc"].n == 2 and smoke.stats["test_acc"].n == 1
    assert smoke.stats["test_acc"].mean == pytest.approx(_final(real.smoke, "test_acc"))
    assert main.stats["epochs"].mean == 2 and smoke.stats["epochs"].mean == 1
    text = compare_runs([real.base, real.smoke, real.seed2], fmt="md")
    assert "| tiny (epochs=1) | 1 |" in text and "| tiny | 2 |" in text


def test_keys_that_do_not_change_the_experiment_do_not_split_it(real: RealRuns, tmp_path: Path) -> None:
    copy = copy_run(real.seed2, tmp_path)
    config = (copy / "config.yaml").read_text()
    assert "threads: 1" in config and "description: ''" in config
    (copy / "config.yaml").write_text(config.replace("threads: 1", "threads: 4")
                                      .replace("description: ''", "description: rerun on the big box"))
    rows = comparison_rows([real.base, copy])
    assert [(r.experiment, len(r.runs)) for r in rows] == [("tiny", 2)]
    (copy / "config.yaml").unlink()  # unknown config: never pooled with the others
    assert [r.experiment for r in comparison_rows([real.base, copy])] == ["tiny", "tiny (config.yaml=absent)"]



def test_a_key_missing_from_an_older_config_counts_as_its_default(real: RealRuns, tmp_path: Path) -> None:
    # config.yaml of a run made before a key existed (sync_bn, tta) lacks it: same experiment as today's run
    old = copy_run(real.seed2, tmp_path / "old")
    config = yaml.safe_load((old / "config.yaml").read_text())
    assert config["sync_bn"] is False and config["tta"] is False
    del config["sync_bn"], config["tta"]
    (old / "config.yaml").write_text(yaml.safe_dump(config))
    assert [(r.experiment, len(r.runs)) for r in comparison_rows([real.base, old])] == [("tiny", 2)]
    # ... but not when the run had set it away from the default
    other = copy_run(real.seed2, tmp_path / "other")
    config["sync_bn"] = True
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    # (one run each: both rows are labelled, the first with its own value)
    assert [r.experiment for r in comparison_rows([real.base, other])] == ["tiny (sync_bn=false)",
                                                                            "tiny (sync_bn=true)"]

def test_runs_differing_in_one_stage_are_labelled_by_that_stage_key(real: RealRuns, tmp_path: Path) -> None:
    # 002-d: one recipe, -o stages.0.steps=N; the label must name the key, not a cut-off list of stages
    labels = []
    for steps in (100, 1000, 1000):
        run = copy_run(real.seed2, tmp_path / f"s{steps}-{len(labels)}")
        config = yaml.safe_load((run / "config.yaml").read_text())
        config["stages"] = [{"name": "frozen", "steps": steps, "trainable": "head"},
                            {"name": "refining", "epochs": 2, "trainable": "all"}]
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        labels.append(run)
    rows = comparison_rows(labels)
    assert [(r.experiment, len(r.runs)) for r in rows] == [("tiny", 2), ("tiny (stages.0.steps=100)", 1)]
    # one run of each N: no config is the common one, so none goes unlabelled (first seen still leads)
    rows = comparison_rows([labels[0], labels[1]])
    assert [(r.experiment, len(r.runs)) for r in rows] == [("tiny (stages.0.steps=100)", 1),
                                                            ("tiny (stages.0.steps=1000)", 1)]
    assert rows[0].differs == {"stages.0.steps": "100"}


def test_markdown_shows_mean_pm_std_and_absent_values(real: RealRuns) -> None:
    text = compare_runs([real.base, real.seed2, real.binary], fmt="md")
    lines = text.splitlines()
    assert lines[0] == ("| experiment | n | train loss | train acc | val loss | val acc | test acc | params | epochs "
                        "| wall time |")
    accs = [_final(real.base, "test_acc"), _final(real.seed2, "test_acc")]
    seeds_line = next(line for line in lines if line.startswith("| tiny"))
    assert "| 2 |" in seeds_line and f"{100 * np.mean(accs):.2f} ± {100 * np.std(accs, ddof=1):.2f}%" in seeds_line
    params = read_summary(real.binary)["params"]["total"]
    other = next(line for line in lines if line.startswith("| binary"))
    assert f"| {100 * _final(real.binary, 'test_acc'):.2f}% |" in other and "| — |" in other
    assert f"| {params:,} |" in other
    assert "ddof=1" in text


def test_csv_holds_raw_numbers(real: RealRuns) -> None:
    rows = list(csv.DictReader(io.StringIO(compare_runs([real.base, real.seed2, real.binary], fmt="csv"))))
    accs = [_final(real.base, "test_acc"), _final(real.seed2, "test_acc")]
    assert float(rows[0]["test_acc_mean"]) == pytest.approx(np.mean(accs))
    assert float(rows[0]["test_acc_std"]) == pytest.approx(np.std(accs, ddof=1))
    assert rows[1]["test_acc_std"] == "" and rows[1]["n"] == "1" and rows[1]["val_acc_mean"] == ""


def test_html_is_a_page_with_a_sortable_table(real: RealRuns) -> None:
    page = compare_runs([real.base, real.seed2, real.smoke], fmt="html")
    assert page.startswith("<!DOCTYPE html>") and 'class="sortable"' in page and " ± " in page
    assert re.search(r"<td[^>]*>tiny \(epochs=1\)</td>", page)


def test_bad_format_and_empty_input(real: RealRuns) -> None:
    with pytest.raises(ValueError, match="md, csv, html"):
        compare_runs([real.base], fmt="xlsx")
    with pytest.raises(ValueError, match="at least one run"):
        compare_runs([])


def test_overlaid_curves_png(real: RealRuns, tmp_path: Path) -> None:
    out = plot_overlaid_curves(real.all, tmp_path / "overlay.png")
    with Image.open(out) as image:
        assert image.size[0] >= 1000


def test_unfinished_runs_are_not_averaged_or_counted(real: RealRuns, tmp_path: Path) -> None:
    stopped = copy_run(real.seed2, tmp_path, name="20990101-000000-tiny-stopped")
    edit_summary(stopped, status="interrupted")  # stopped mid-way: its numbers are not final
    runs = [real.base, real.seed2, stopped]
    row = comparison_rows(runs)[0]
    assert row.stats["test_acc"].n == 2 and len(row.runs) == 2 and row.unfinished == [stopped.name]
    accs = [_final(real.base, "test_acc"), _final(real.seed2, "test_acc")]
    assert row.stats["test_acc"].mean == pytest.approx(np.mean(accs))
    text = compare_runs(runs, fmt="md")
    assert "| 2 |" in next(line for line in text.splitlines() if line.startswith("| tiny"))
    assert f"Not finished, so not averaged: {stopped.name}" in text


def test_flip_tta_column_appears_beside_test_acc_only_when_a_run_scored_it(real: RealRuns, tmp_path: Path) -> None:
    tta_run = train_tiny(tmp_path / "runs", real.data, "name=tiny_tta", "tta=true")
    tta_acc = _final(tta_run, "test_tta_acc")
    header = compare_runs([real.base, tta_run], fmt="md").splitlines()[0]
    assert "| test acc | test acc (TTA) | params |" in header
    text = compare_runs([real.base, tta_run], fmt="md")
    tta_line = next(line for line in text.splitlines() if line.startswith("| tiny_tta "))
    plain_line = next(line for line in text.splitlines() if line.startswith("| tiny "))
    cells = [c.strip() for c in tta_line.strip("|").split("|")]
    assert cells[7] == f"{100 * tta_acc:.2f}%" and cells[6] == f"{100 * _final(tta_run, 'test_acc'):.2f}%"
    assert [c.strip() for c in plain_line.strip("|").split("|")][7] == "—"
    rows = list(csv.DictReader(io.StringIO(compare_runs([real.base, tta_run], fmt="csv"))))
    assert float(rows[1]["test_tta_acc_mean"]) == pytest.approx(tta_acc) and rows[0]["test_tta_acc_mean"] == ""
    assert "test_tta_acc_mean" not in compare_runs([real.base, real.seed2], fmt="csv")
