"""The shipped recipes of sweeps and searches: 002-a, its grid, and the 003-b / CIFAR-10 <50K spaces."""
from __future__ import annotations

import optuna
import yaml

from cnnlab.models import count_params
from cnnlab.runfolder import read_config_dict, read_summary
from cnnlab.search.grid import axes_from_mapping, expand
from cnnlab.search.limits import check_trial
from cnnlab.search.runner import run_search
from cnnlab.search.space import load_space
from cnnlab.search.sweep_folder import read_sweep_spec_file
from cnnlab.train.experiment import load_experiment
from cnnlab.train.regularization import check_l2_selectors, l2_kernels
from cnnlab.train.setup import build_model
from data_helpers import make_image_folder
from test_search_helpers import REPO, write_yaml

RECIPES = REPO / "recipes"


def test_002a_is_the_reports_convnet_with_l2_on_fc1_and_fc2():
    cfg = load_experiment(RECIPES / "002-a.yaml")
    model = build_model(cfg.model, num_classes=10)
    assert count_params(model)["total"] == 1_756_426
    check_l2_selectors(model, cfg.regularization.l2_layers)
    assert [k.shape for k in l2_kernels(model, cfg.regularization.l2_layers)] == [(384, 4096), (192, 384)]
    assert (cfg.model.init, cfg.model.init_std, cfg.batch_size) == ("normal", 0.001, 64)


def test_the_002a_sweep_is_batch_x_dropout_x_l2():
    spec = read_sweep_spec_file(RECIPES / "002-a-sweep.yaml")
    points = expand(axes_from_mapping(spec["grid"], "002-a-sweep"))
    configs = [load_experiment(spec["experiment"], p) for p in points]
    assert len(configs) == 8
    seen = {(c.batch_size, c.model.kwargs["dropout1"], c.model.kwargs["dropout2"], c.regularization.l2) for c in configs}
    assert seen == {(b, d, d, l2) for b in (128, 64) for d in (0.5, 0.2) for l2 in (0.005, 0.0025)}


def test_the_50k_space_only_trains_networks_under_50k_parameters():
    space = load_space(RECIPES / "search" / "cifar10-50k.yaml")
    assert space.max_params == 50_000 and space.metric == "val_acc"
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    sizes, rejected = [], 0
    for _ in range(25):
        trial = study.ask()
        check = check_trial(space.config(trial, "t"), space.max_params, 10)
        if check.reason:
            assert "above the limit of 50,000" in check.reason
            rejected += 1
        else:
            sizes.append(check.params["total"])
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert sizes and rejected and max(sizes) <= 50_000
    blocks = {p.get("arch.block") for p in (t.params for t in study.trials)}
    assert blocks == {"plain", "residual", "inception", "dense"}


def test_the_003b_space_trains_a_resnet_like_trial_on_an_image_folder(tmp_path):
    space = load_space(RECIPES / "search" / "003-b.yaml")
    assert space.num_classes == 200 and space.base["data"]["image_size"] == 32
    # ResNet-18-like (64..512 channels, 2 blocks per stage): within the 20M limit at 200 classes
    assert check_trial(space.config(optuna.trial.FixedTrial({
        "arch.block": "residual", "arch.stages": 4, "arch.depth": 2, "arch.width": 64, "arch.dropout": 0.0,
        "optimizer.name": "sgd", "optimizer.lr": 0.01, "optimizer.weight_decay": 1e-4, "batch_size": 64,
        "augment.crop_padding": 4, "regularization.label_smoothing": 0.0}), "t"), space.max_params, 200).reason is None

    # The same space on a generated 4-class image folder, with tiny widths and one epoch.
    root = make_image_folder(tmp_path / "images", {f"n0{i}": 10 for i in range(4)})
    raw = yaml.safe_load((RECIPES / "search" / "003-b.yaml").read_text())
    raw["base"]["data"].update(root=str(root), folder_split=[0.6, 0.2, 0.2], normalize="unit")  # flat colours: std 0
    raw["base"].update(epochs=1, threads=1)
    raw["limits"].pop("num_classes")
    raw["architecture"].update(width=4, depth=1, stages=3)
    raw["params"]["batch_size"] = 8
    outcome = run_search(write_yaml(tmp_path / "003-b.yaml", raw), 1, runs_dir=tmp_path / "runs", log=lambda _: None)
    assert outcome.counts["trained"] == 1
    run_dir = next((outcome.study_dir / "trials").iterdir())
    assert read_summary(run_dir)["status"] == "completed" and len(read_summary(run_dir)["classes"]) == 4
    layers = read_config_dict(run_dir)["model"]["kwargs"]["layers"]
    assert any("residual" in layer or "conv_bn_act" in layer for layer in layers if isinstance(layer, dict))
