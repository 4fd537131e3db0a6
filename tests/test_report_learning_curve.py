"""`cnnlab learning-curve`: accuracy against training images from real tiny runs and a real probe."""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import pytest
from PIL import Image

from cnnlab.cli import build_parser
from cnnlab.cli.probe import register
from cnnlab.report.learning_curve import learning_curves
from report_fixtures import copy_run, edit_summary, read_summary, real_runs, train_tiny


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    real = real_runs(tmp_path_factory)
    top = tmp_path_factory.mktemp("learning-curve")
    subset = train_tiny(top / "runs", real.data, "data.train_subset=12")
    probed = copy_run(real.base, top / "probed")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["probe", str(probed), "--layer", "pre_logits", "--knn", "1..5", "--svm",
                              "--train-subset", "12", "--train-subset", "all", "--device", "cpu", "--name", "lc"])
    assert args.func(args) == 0
    return real, subset, probed / "probes" / "lc"


def test_runs_give_a_point_per_size_and_seeds_are_averaged(sources):
    real, subset, _ = sources
    series = learning_curves([subset, real.base, real.seed2])
    assert read_summary(subset)["data"]["train"] == 12 and read_summary(real.base)["data"]["train"] == 36
    full = statistics.fmean(read_summary(r)["final"]["test_acc"] for r in (real.base, real.seed2))
    assert series == {"tiny": {12: read_summary(subset)["final"]["test_acc"], 36: pytest.approx(full)}}


def test_a_probe_gives_a_series_per_method_and_layer(sources):
    _, _, probe = sources
    rows = json.loads((probe / "results.json").read_text())["rows"]
    series = learning_curves([probe])
    assert set(series) == {"kNN on pre_logits (lc)", "linear SVM (one-vs-rest) on pre_logits (lc)"}
    knn = {r["fit_size"]: r["accuracy"] for r in rows if r["method"] == "knn" and r["score_set"] == "test"}
    assert series["kNN on pre_logits (lc)"] == knn and set(knn) == {12, 36}
    with pytest.raises(ValueError, match="no probe rows scored on 'val'.*this probe scored on test"):
        learning_curves([probe], score_set="val")


def test_command_writes_the_figure_and_the_table(sources, tmp_path, capsys):
    real, subset, probe = sources
    out = tmp_path / "curve.png"
    args = build_parser().parse_args(["learning-curve", str(subset), str(real.base), str(probe), "--out", str(out)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == str(out) and Image.open(out).size[0] > 300
    table = (tmp_path / "curve.md").read_text()
    assert printed[0] == table.splitlines()[0] == "| series | 12 images | 36 images |"
    tiny_row = next(line for line in table.splitlines() if line.startswith("| tiny |"))
    assert f"{100 * read_summary(subset)['final']['test_acc']:.2f}%" in tiny_row


def test_unfinished_runs_and_other_folders_are_errors_that_name_them(sources, tmp_path):
    real, _, _ = sources
    killed = copy_run(real.seed2, tmp_path / "killed")
    edit_summary(killed, status="interrupted")
    with pytest.raises(ValueError, match=f"{killed}: the run is interrupted"):
        learning_curves([real.base, killed])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty"):
        learning_curves([empty])
    with pytest.raises(ValueError, match="metric 'train_acc'"):
        learning_curves([real.base], metric="train_acc")
