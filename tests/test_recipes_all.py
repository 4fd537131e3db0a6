"""Every shipped recipe loads under the strict config rules, is named after its file, and builds
its model; the reports' recipes build the network with the parameter count the report prints."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from cnnlab import load_experiment
from cnnlab.models.params import count_params
from cnnlab.train.setup import build_model
from record_helpers import differing_keys, resolved_config

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
# A sweep file (top-level `experiment:`) is a search space over a recipe: tests/test_search_recipes.py.
ALL = sorted(p.stem for p in RECIPES.glob("*.yaml") if "experiment" not in (yaml.safe_load(p.read_text()) or {}))

# Keras-counted totals (trainable + batch-norm moving statistics) as the reports print them,
# or as the recipe's header states them where the report gives none (001-d, 001-e).
REPORT_PARAMS = {
    "000-a": 49_268, "000-b": 45_634,
    "001-d": 1_250_858, "001-e-inception": 3_757_866, "001-e-residual": 890_730,
    "002-a": 1_756_426,
    "004-a": 82_346, "004-b": 82_346, "004-c": 82_346, "004-d": 82_346, "004-ours": 82_346,
    "004-e": 2_787_914,
    "000-b-ours": 46_632,   # ours: the header's count, under 000-b's 50K budget
    "000-b-ours-sep": 47_584,   # ours, depthwise-separable: the header's count, under the same budget
    "001-e-ours": 890_730,   # ours: 001-e's residual model unchanged
    "000-b-ours-90": 49_972,   # ours: the header's count, just under 000-b's 50K budget
}

# Recipes whose records were made with an override command (on another recipe, or on this recipe before
# it took the override in): the recipe must resolve to the config those runs saved, or its header's
# numbers are not its own.
# Keys that may differ: record_helpers.PER_RUN_KEYS.
RECORDED_WITH_OVERRIDES = {"000-b-ours-90": "results/000-b-ours-90", "fast-cpu-90": "results/fast-cpu-90",
                           "fast-cpu-94": "results/fast-cpu-94"}


def _classes(cfg) -> int:
    data = cfg.data
    if data.name == "cifar100":
        return 20 if data.label_mode == "coarse" else 100
    return {"cifar10": 10, "tiny_imagenet": 200, "folder": 2}[data.name]


def test_the_recipes_folder_holds_every_report_recipe_named_here():
    assert set(REPORT_PARAMS) <= set(ALL)


@pytest.mark.parametrize("recipe", ALL)
def test_recipe_loads_and_builds_its_model(recipe):
    cfg = load_experiment(RECIPES / f"{recipe}.yaml")
    assert cfg.name == recipe, f"recipes/{recipe}.yaml is named {cfg.name!r}: runs and README rows go by the name"
    assert cfg.description, f"recipes/{recipe}.yaml has no description"
    # Weights are not what this test checks (sources and ImageNet files are not here): build untrained.
    size = cfg.model.resize_to or cfg.data.image_size
    model = build_model(replace(cfg.model, pretrained=None), _classes(cfg), input_size=size)
    if recipe in REPORT_PARAMS:
        assert count_params(model)["total"] == REPORT_PARAMS[recipe]


@pytest.mark.parametrize("recipe", ALL)
def test_every_source_a_recipe_names_is_a_shipped_recipe(recipe):
    """model.pretrained / distill.teacher {recipe: ...}: --with-sources must find the file to train."""
    from cnnlab.train.experiment import SourceRecipe

    cfg = load_experiment(RECIPES / f"{recipe}.yaml")
    for source in (cfg.model.pretrained, cfg.distill.teacher):
        if isinstance(source, SourceRecipe):
            path = RECIPES.parent / source.recipe
            assert path.is_file(), f"recipes/{recipe}.yaml names {source.recipe}, which does not exist"
            load_experiment(path)   # and it loads under the strict rules


@pytest.mark.parametrize("recipe", sorted(RECORDED_WITH_OVERRIDES))
def test_recipe_resolves_to_the_config_its_records_were_trained_with(recipe):
    runs = sorted((RECIPES.parent / RECORDED_WITH_OVERRIDES[recipe]).glob("*/config.yaml"))
    assert len(runs) >= 3, f"{RECORDED_WITH_OVERRIDES[recipe]} should hold the recipe's seeds"
    ours = resolved_config(RECIPES / f"{recipe}.yaml")
    for run in runs:
        differ = sorted(differing_keys(ours, resolved_config(run)))
        assert not differ, f"recipes/{recipe}.yaml differs from {run} in {differ}"
