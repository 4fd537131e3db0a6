"""`cnnlab layers`, `cnnlab features` and the probe command's checks, through a parser of their own."""
from __future__ import annotations

import argparse

import pytest

from cnnlab.cli.probe import register
from report_fixtures import copy_run, real_runs


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


def cli(capsys, *argv: str) -> list[str]:
    args = parse(*argv)
    assert args.func(args) == 0
    return capsys.readouterr().out.strip().splitlines()


@pytest.fixture()
def run_dir(tmp_path, tmp_path_factory):
    return copy_run(real_runs(tmp_path_factory).base, tmp_path)


def test_layers_lists_names_types_and_shapes_for_the_runs_input(run_dir, capsys):
    out = cli(capsys, "layers", str(run_dir))
    assert out[0].endswith("input 3 x 16 x 16")
    rows = {line.split()[0]: line for line in out[3:]}
    assert list(rows) == ["features.conv0.conv", "features.conv0", "features.pool1", "features.flatten2", "features",
                          "pre_logits", "classifier"]
    assert "4 x 8 x 8" in rows["features.pool1"] and rows["features.pool1"].endswith("256")
    assert rows["classifier"].split()[-1] == "3"
    assert "features.conv0.act" in "\n".join(cli(capsys, "layers", str(run_dir), "--all"))


def test_features_writes_each_split_then_reuses_it(run_dir, capsys):
    out = cli(capsys, "features", str(run_dir), "--layer", "features.pool1", "--device", "cpu")
    assert [line.split()[0] for line in out] == [str(run_dir / "features" / "features.pool1" / f"{s}.npz")
                                                 for s in ("train", "val", "test")]
    assert all(line.endswith("s)") and "computed in" in line for line in out)
    assert "36 x 256" in out[0]
    again = cli(capsys, "features", str(run_dir), "--layer", "features.pool1", "--split", "test", "--device", "cpu")
    assert len(again) == 1 and again[0].endswith("(cached)")


def test_a_misspelt_layer_fails_before_anything_is_extracted(run_dir):
    args = parse("probe", str(run_dir), "--layer", "pre_logits", "--layer", "features.pool", "--knn", "1..5",
                 "--device", "cpu")
    with pytest.raises(ValueError, match=r"unknown layer 'features.pool'; this model's layers are: .*features.pool1"):
        args.func(args)
    assert not (run_dir / "features").exists() and not (run_dir / "probes").exists()


@pytest.mark.parametrize("argv,message", [
    (["--layer", "pre_logits"], "choose what to fit"),
    (["--knn", "1..3"], "give at least one --layer"),
    (["--layer", "pre_logits", "--svm", "--holdout", "0.2", "--score-split", "val"], "drop --score-split val"),
    (["--layer", "pre_logits", "--knn", "0..3"], "k must be at least 1"),
    (["--layer", "pre_logits", "--knn", "1", "--name", "a/b"], "one folder name"),
])
def test_probe_options_that_cannot_work_are_one_line_errors(run_dir, argv, message):
    args = parse("probe", str(run_dir), "--device", "cpu", *argv)
    with pytest.raises(ValueError, match=message):
        args.func(args)


def test_a_bad_train_subset_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        parse("probe", "run", "--layer", "x", "--train-subset", "ten")
    assert "'ten' is not a number of images or 'all'" in capsys.readouterr().err


def test_presets_fill_what_was_not_given():
    from cnnlab.cli.probe import probe_spec

    spec = probe_spec(parse("probe", "run", "--preset", "002-b", "--layer", "fc1", "--logreg"))
    assert (spec.layers, spec.svm, spec.tsne, spec.logreg, spec.ks) == (["fc1"], True, True, True, [])
    assert (spec.fit_split, spec.score_splits, spec.first, spec.holdout) == ("test", ["test"], 5000, 0.2)
    spec = probe_spec(parse("probe", "run", "--preset", "000-d", "--knn", "5", "--train-subset", "all"))
    assert (spec.layers, spec.ks, spec.train_subsets) == (["pre_logits"], [5], [None])
    assert probe_spec(parse("probe", "run", "--preset", "004-f")).score_splits == ["train", "test"]
