"""`cnnlab probe` on a real tiny run: the page, its table and figures, the presets; the learning-curve figure."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from cnnlab.features.knn import knn_sweep
from cnnlab.features.linear import fit_linear
from cnnlab.cli.probe import register
from cnnlab.report.probe_page import learning_curve_figure
from report_fixtures import copy_run, real_runs


def cli(capsys, *argv: str) -> list[str]:
    """Run one command through a parser holding only the probe commands; its stdout lines."""
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    assert args.func(args) == 0
    return capsys.readouterr().out.strip().splitlines()


@pytest.fixture()
def run_dir(tmp_path, tmp_path_factory):
    return copy_run(real_runs(tmp_path_factory).base, tmp_path)


def test_probe_writes_a_page_whose_table_holds_every_layer_method_and_subset(run_dir, capsys):
    out = cli(capsys, "probe", str(run_dir), "--layer", "pre_logits", "--layer", "features.pool1", "--knn", "1..10",
              "--svm", "--logreg", "--tsne", "--train-subset", "12", "--train-subset", "all",
              "--score-split", "test", "--score-split", "val", "--device", "cpu", "--name", "mine")
    page = run_dir / "probes" / "mine" / "report.html"
    assert out[-1] == str(page)
    html = page.read_text(encoding="utf-8")
    md = (page.parent / "report.md").read_text(encoding="utf-8")
    results = json.loads((page.parent / "results.json").read_text(encoding="utf-8"))
    rows = results["rows"]
    # 2 layers x 3 methods x 2 subsets x 2 scored splits
    assert len(rows) == 24 and 'id="probe-results"' in html
    assert {(r["layer"], r["method"], r["subset"], r["score_set"]) for r in rows} == {
        (layer, method, subset, split) for layer in ("pre_logits", "features.pool1")
        for method in ("knn", "svm", "logreg") for subset in ("12", "all") for split in ("test", "val")}
    assert md.count("\n| features.pool1 | 256 |") == 12
    # The numbers are those of the classifiers on the saved features.
    fit = np.load(run_dir / "features" / "features.pool1" / "train.npz")
    test = np.load(run_dir / "features" / "features.pool1" / "test.npz")
    sweep = knn_sweep(fit["features"], fit["labels"], test["features"], test["labels"], range(1, 11))
    knn_all = next(r for r in rows if r["layer"] == "features.pool1" and r["method"] == "knn"
                   and r["subset"] == "all" and r["score_set"] == "test")
    assert (knn_all["best_k"], knn_all["accuracy"], knn_all["fit_size"]) == (sweep.best_k, sweep.best_accuracy, 36)
    svm_all = next(r for r in rows if r["layer"] == "features.pool1" and r["method"] == "svm"
                   and r["subset"] == "all" and r["score_set"] == "test")
    svm = fit_linear("svm", fit["features"], fit["labels"])
    assert svm_all["accuracy"] == svm.accuracy(test["features"], test["labels"])
    assert f"{100 * svm_all['accuracy']:.2f}%" in html
    subset12 = [r for r in rows if r["subset"] == "12"]
    assert all(r["fit_size"] == 12 for r in subset12)
    figures = sorted(p.name for p in (page.parent / "figures").iterdir())
    learning = [f"learning-{layer}-{split}.png" for layer in ("pre_logits", "features.pool1")
                for split in ("test", "val")]
    assert figures == sorted(["knn-pre_logits.png", "knn-features.pool1.png", "tsne-pre_logits.png",
                              "tsne-features.pool1.png"] + learning)
    for name in figures:
        assert f"figures/{name}" in md and (page.parent / "figures" / name).read_bytes()[:4] == b"\x89PNG"
    assert html.count("data:image/png;base64,") == len(figures)
    # The exact images: the keys of each row name index lists of the source split, in the order used.
    idx = results["indices"]
    assert set(idx) == {"fit train (12)", "fit train (all)", "scored test", "scored val"}
    assert idx["fit train (all)"] == fit["indices"].tolist() and idx["scored test"] == test["indices"].tolist()
    assert len(idx["fit train (12)"]) == 12 and set(idx["fit train (12)"]) < set(idx["fit train (all)"])
    assert {(r["subset"], r["fit_indices"], r["score_set"], r["score_indices"]) for r in rows} == {
        (sub, f"fit train ({sub})", split, f"scored {split}") for sub in ("12", "all") for split in ("test", "val")}
    # The terminal shows kNN accuracy at every k of every curve, the best marked.
    start = out.index("kNN accuracy at every k (* = best k of the column)")
    table = out[start + 1:start + 3 + 10]
    assert table[0].startswith("| k | pre_logits fit 12 / test |") and len(table[0].split("|")) == 2 + 1 + 8
    assert [line.split("|")[1].strip() for line in table[2:]] == [str(k) for k in range(1, 11)]
    col = [line.split("|")[-2].strip() for line in table[2:]]   # features.pool1, fit all, val
    curve = results["knn_curves"][-1]
    assert col == [f"{100 * a:.2f}%" + ("*" if a == max(curve["accuracies"]) else "") for a in curve["accuracies"]]
    # The curve of every k is kept (000-d's figure), and the whole page is rebuilt by a second probe.
    assert [c["ks"] for c in results["knn_curves"]][0] == list(range(1, 11))
    cli(capsys, "probe", str(run_dir), "--layer", "pre_logits", "--knn", "3", "--name", "mine", "--device", "cpu")
    assert sorted(p.name for p in (page.parent / "figures").iterdir()) == ["knn-pre_logits.png"]


def test_preset_002b_fits_on_80_percent_of_the_first_test_images(run_dir, capsys):
    out = cli(capsys, "probe", str(run_dir), "--preset", "002-b", "--layer", "features.flatten2", "--device", "cpu")
    folder = run_dir / "probes" / "002-b"
    assert out[-1] == str(folder / "report.html")
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    (row,) = results["rows"]
    # 12 test images (fewer than 5,000): 2 held out for scoring (20%), 10 fitted, stratified
    assert (row["method"], row["fit_size"], row["score_size"]) == ("svm", 10, 2)
    assert row["score_set"] == "test (20% held out)"
    assert any("fewer than --first 5,000" in note for note in results["notes"])
    assert (folder / "figures" / "tsne-features.flatten2.png").is_file()
    assert "t-SNE of features.flatten2 on 12 test (first 12) images" in (folder / "report.md").read_text()


def test_preset_000d_on_a_small_run_folds_the_large_subsets_into_all(run_dir, capsys):
    cli(capsys, "probe", str(run_dir), "--preset", "000-d", "--device", "cpu")
    results = json.loads((run_dir / "probes" / "000-d" / "results.json").read_text(encoding="utf-8"))
    assert [(r["layer"], r["method"], r["subset"]) for r in results["rows"]] == [("pre_logits", "knn", "all")]
    assert results["knn_curves"][0]["ks"] == list(range(1, 37))  # k above the 36 fit images is skipped
    assert any("k above 36" in note for note in results["notes"])


def test_learning_curve_figure_draws_each_method_over_the_subset_sizes():
    series = {"frozen head": {100: 0.45, 1000: 0.553, 10000: 0.582}, "kNN": {100: 0.27, 1000: 0.524, 10000: 0.599},
              "full fine-tuning": {10000: 0.852}}
    fig = learning_curve_figure(series, title="000-c/d/e")
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == set(series)
    np.testing.assert_allclose(lines["kNN"].get_ydata(), [27.0, 52.4, 59.9])
    assert list(lines["frozen head"].get_xdata()) == [100, 1000, 10000]
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["100", "1,000", "10,000"]
    assert learning_curve_figure({"a": {100: 0.5, 200: 0.6}}).axes[0].get_xscale() == "linear"
    with pytest.raises(ValueError, match="divide percentages by 100"):
        learning_curve_figure({"kNN": {100: 27.0}})
    with pytest.raises(ValueError, match="at least one point"):
        learning_curve_figure({})


def test_page_text_is_escaped_in_html(run_dir, capsys):
    cli(capsys, "probe", str(run_dir), "--layer", "pre_logits", "--knn", "1", "--name", "x<y>", "--device", "cpu")
    html = (run_dir / "probes" / "x<y>" / "report.html").read_text(encoding="utf-8")
    assert "Probe x&lt;y&gt; of" in html and "x<y>" not in html
