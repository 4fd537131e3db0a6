"""The offline variants of the reports' ImageNet experiments (001-c, 002-d, 003-d, 004-e), trained end to
end from a tiny run of the shipped CIFAR-100 source recipe, and `data.normalize: source`.

The source is recipes/cifar100-resnet20-source.yaml as shipped, shortened and pointed at the tiny
learnable CIFAR-10 folder (its run keeps the recipe's name, which is what {recipe: ...} looks up).
"""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_data_tiny_imagenet import make_tiny_imagenet
from test_recipes_folders import cats_and_dogs

from cnnlab.data import DataError, Normalizer
from cnnlab.train.experiment import load_experiment
from engine_helpers import train_experiment as train

from engine_helpers import REPO, tiny_overrides

RECIPES = REPO / "recipes"


@pytest.fixture(autouse=True)
def in_the_repo(monkeypatch, tmp_path):
    # The recipes name their source as recipes/<id>.yaml, relative to the repository root.
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CNNLAB_DECODE_CACHE", str(tmp_path / "decode-cache"))


@pytest.fixture(scope="module")
def source(tiny_cifar, tmp_path_factory):
    runs = tmp_path_factory.mktemp("offline-runs")
    cfg = load_experiment(RECIPES / "cifar100-resnet20-source.yaml",
                          tiny_overrides(**{"data.name": "cifar10", "epochs": 1}))
    result = train(cfg, runs_dir=runs, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    assert result.status == "completed"
    return result


def train_recipe(recipe: str, source, overrides: dict, data_dir=None):
    lines: list[str] = []
    cfg = load_experiment(RECIPES / recipe, tiny_overrides(**overrides))
    result = train(cfg, runs_dir=source.run_dir.parent, data_dir=None if data_dir is None else str(data_dir),
                   quiet=True, log=lines.append)
    return result, lines


def saved_stats(run_dir: Path) -> dict:
    return json.loads((run_dir / "normalization.json").read_text())


def assert_normalized_as_the_source(result, lines, source):
    target, origin = saved_stats(result.run_dir), saved_stats(source.run_dir)
    assert (target["kind"], target["mean"], target["std"]) == (origin["kind"], origin["mean"], origin["std"])
    assert "data.normalize: source" in target["fitted_on"] and str(source.run_dir) in target["fitted_on"]
    assert any("normalized as the source's were" in line for line in lines), lines
    assert any(str(source.run_dir) in line and "loaded" in line for line in lines), lines


@pytest.mark.parametrize("recipe, overrides", [
    ("002-d-offline.yaml", {"stages.0.steps": 3, "stages.1.epochs": 1}),
    ("004-e-offline.yaml", {"epochs": 1}),
])
def test_cifar10_offline_recipes_train_from_the_source(recipe, overrides, source, tiny_cifar):
    result, lines = train_recipe(recipe, source, overrides, tiny_cifar)
    assert result.status == "completed"
    assert_normalized_as_the_source(result, lines, source)


def test_001c_offline_on_a_cats_vs_dogs_folder(source, tmp_path):
    root = cats_and_dogs(tmp_path / "catsdogs", {"cats": 7, "dogs": 7}, size=40)
    result, lines = train_recipe("001-c-offline.yaml", source,
                                 {"data.root": root, "data.folder_split": "[4,1,1]", "data.val_size": 0, "batch_size": 4,
                                  "stages.0.epochs": 1, "stages.1.epochs": 1})
    assert result.status == "completed" and result.summary["data"] == {"train": 8, "val": 2, "test": 2}
    assert result.splits.train.images.shape[1:] == (3, 32, 32)          # decoded at the source's size
    assert [s["params"]["trainable"] for s in result.summary["stages"]] == [16_897, 220_417]   # head; layer3 + head
    assert_normalized_as_the_source(result, lines, source)


def test_003d_offline_on_the_tiny_imagenet_layout(source, tmp_path):
    root = make_tiny_imagenet(tmp_path, train_per_class=4, val_per_class=2, size=64)
    result, lines = train_recipe("003-d-offline.yaml", source, {"data.root": root, "data.val_size": 3, "epochs": 1})
    assert result.status == "completed" and result.summary["data"] == {"train": 9, "val": 3, "test": 6}
    assert_normalized_as_the_source(result, lines, source)


# --- data.normalize: source, its errors ---------------------------------------------------------

def test_normalize_source_without_a_source_is_an_error_at_load_time():
    with pytest.raises(ValueError, match="model.pretrained is not set"):
        load_experiment(None, ["data.normalize=source"])


def test_a_weights_file_carries_no_statistics(tiny_cifar, tmp_path):
    weights = tmp_path / "w.safetensors"
    save_file({"x": torch.zeros(1)}, str(weights))
    cfg = load_experiment(None, tiny_overrides(**{"data.normalize": "source", "model.pretrained": str(weights)}))
    with pytest.raises(DataError, match="carries no input statistics.*imagenet"):
        train(cfg, runs_dir=tmp_path / "runs", data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "no run folder is left"


def test_source_statistics_are_not_fitted_on_images():
    with pytest.raises(DataError, match="source network"):
        Normalizer.fit("source", torch.zeros(2, 3, 4, 4, dtype=torch.uint8))


def test_imagenet_source_gives_the_published_statistics():
    from cnnlab.train.setup import source_normalizer

    norm = source_normalizer("imagenet", torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
    assert norm.kind == "imagenet"
    assert torch.allclose(norm.mean, 255 * torch.tensor([0.485, 0.456, 0.406]))
