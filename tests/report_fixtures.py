"""Run folders for the report tests, made by the real trainer on a tiny generated image folder.

``real_runs(tmp_path_factory)`` trains three tiny runs once per test session (a few seconds):
two seeds of one config and a one-epoch "smoke" run of the same name. Tests never change them:
they report on them directly (into a copy when the report is written) or start from
``copy_run(...)`` and remove or corrupt a file, for the cases a real run cannot produce.

``make_run`` (hand-made files) is kept only for tests outside the report suite that still use it.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

CLASS_NAMES = ["cat", "dog", "frog"]   # folder names of the tiny dataset: the run's classes
IMAGE_SIZE = 16
PER_CLASS = 20
FOLDER_SPLIT = [12, 4, 4]              # per class: 36 train, 12 val, 12 test images
EXPERIMENT = "tiny"
TINY_LAYERS = "[{conv: {filters: 4, act: relu}}, {pool: 2}, flatten, dense]"  # ~800 parameters
REPORT_OUTPUTS = ("report.html", "report.md", "figures")


def make_tiny_images(root: Path, classes: list[str] = CLASS_NAMES, per_class: int = PER_CLASS,
                     size: int = IMAGE_SIZE, seed: int = 0) -> Path:
    """root/<class>/img_XXX.png: per class a mean colour under heavy noise, so a tiny CNN learns
    something in two epochs but still makes mistakes (the report has right and wrong examples)."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        colour = np.array([60 + 70 * k, 190 - 60 * k, 120], dtype=np.float64)
        for i in range(per_class):
            pixels = np.clip(colour + rng.normal(0, 70, size=(size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"img_{i:03d}.png")
    return Path(root)


def tiny_experiment(data_root: Path, *overrides: str, model_kwargs: str = ""):
    """The tiny experiment (folder data, sequential model, one CPU thread), plus ``overrides``;
    ``model_kwargs`` adds model keyword arguments ("num_classes: 1" for a sigmoid head)."""
    from cnnlab.train.experiment import load_experiment

    extra = f"{model_kwargs}, " if model_kwargs else ""
    base = [f"name={EXPERIMENT}", "data.name=folder", f"data.root={data_root}", f"data.image_size={IMAGE_SIZE}",
            f"data.folder_split={FOLDER_SPLIT}", "model.name=sequential",
            f"model.kwargs={{{extra}input_size: {IMAGE_SIZE}, layers: {TINY_LAYERS}}}", "optimizer.lr=0.01",
            "epochs=2", "batch_size=12", "eval_batch_size=64", "seed=1", "threads=1", "device=cpu"]
    return load_experiment(None, base + list(overrides))


def train_tiny(runs_dir: Path, data_root: Path, *overrides: str, model_kwargs: str = "") -> Path:
    """Train the tiny experiment into a new folder under ``runs_dir``; return the run folder as
    the trainer leaves it (any report the trainer wrote is removed, so tests start from the data)."""
    from cnnlab.train import train

    result = train(tiny_experiment(data_root, *overrides, model_kwargs=model_kwargs), runs_dir=runs_dir, quiet=True)
    assert result.status == "completed", result.status
    for name in REPORT_OUTPUTS:
        path = result.run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    return result.run_dir


@dataclass(frozen=True)
class RealRuns:
    """Three real runs of the tiny experiment under ``root`` (read-only: copy before changing)."""

    root: Path              # runs folder holding the three runs
    data: Path              # the image folder they were trained on
    base: Path              # seed 1, 2 epochs
    seed2: Path             # seed 2, 2 epochs: same config as base up to the seed
    smoke: Path             # seed 1, 1 epoch (-o epochs=1): same name, another config
    binary: Path            # "binary": 2 classes, sigmoid head (probs N x 1), no validation split, 1 epoch
    test_images: np.ndarray  # uint8 N x C x H x W test images of base, in the order of its predictions

    @property
    def all(self) -> list[Path]:
        return [self.base, self.seed2, self.smoke, self.binary]


_CACHE: dict[str, RealRuns] = {}


def real_runs(tmp_path_factory: Any) -> RealRuns:
    """The session's real runs, trained on first use (cached per pytest base temp folder, so every
    test module of the session shares one set, whichever module asks first)."""
    key = str(tmp_path_factory.getbasetemp())
    if key not in _CACHE:
        from cnnlab.runs import load_run

        top = tmp_path_factory.mktemp("real-runs")
        data = make_tiny_images(top / "images")
        root = top / "runs"
        base = train_tiny(root / "a", data, "seed=1")
        seed2 = train_tiny(root / "b", data, "seed=2")
        smoke = train_tiny(root / "c", data, "seed=1", "epochs=1")
        pets = make_tiny_images(top / "pets", classes=CLASS_NAMES[:2])
        binary = train_tiny(root / "d", pets, "name=binary", "epochs=1", "data.folder_split=[12, 0, 8]",
                            model_kwargs="num_classes: 1")
        test_images = load_run(base).splits.test.images.numpy()
        _CACHE[key] = RealRuns(root=root, data=data, base=base, seed2=seed2, smoke=smoke, binary=binary,
                               test_images=test_images)
    return _CACHE[key]


def copy_run(run_dir: Path, dest_root: Path, name: str | None = None) -> Path:
    """A copy of ``run_dir`` at ``dest_root/<name or its folder name>`` (parents made); returns it."""
    dest = Path(dest_root) / (name or Path(run_dir).name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(run_dir, dest)
    return dest


def read_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "summary.json").read_text(encoding="utf-8"))


def edit_summary(run_dir: Path, final: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """Rewrite summary.json of (a copy of) a run: top-level ``changes``, and ``final`` merged into
    summary.final. For values a real run cannot be made to produce on demand."""
    summary = read_summary(run_dir)
    summary.update(changes)
    if final:
        summary["final"] = {**summary.get("final", {}), **final}
    (Path(run_dir) / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


# --- hand-made run folders (legacy: used by tests outside the report suite) -----------------------

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _probs(labels: np.ndarray, n_classes: int, skill: float, rng: np.random.Generator) -> np.ndarray:
    logits = rng.normal(size=(len(labels), n_classes))
    logits[np.arange(len(labels)), labels] += skill
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def make_run(
    root: Path,
    name: str = "004-a",
    seed: int = 0,
    epochs: int = 3,
    classes: list[str] | None = None,
    with_val: bool = True,
    splits: tuple[str, ...] = ("train", "val", "test"),
    n_per_split: int = 60,
    final: dict[str, float | None] | None = None,
    params_total: int = 1234,
    wall_seconds: float = 12.5,
    with_model_summary: bool = True,
) -> Path:
    """Write a hand-made run folder under ``root`` and return it (the report tests use ``real_runs``)."""
    classes = classes or CLASSES
    rng = np.random.default_rng(seed)
    run_dir = Path(root) / f"20260101-1200{seed:02d}-{name}-s{seed}"
    run_dir.mkdir(parents=True)
    config: dict[str, Any] = {"name": name, "data": {"dataset": "fake"}, "model": {"name": "tiny", "kwargs": {}},
                              "optimizer": {"name": "sgd", "lr": 0.1}, "epochs": epochs, "batch_size": 32,
                              "seed": seed, "device": "cpu"}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    rows = []
    for epoch in range(1, epochs + 1):
        rows.append({"epoch": epoch, "train_loss": 2.0 / epoch, "train_acc": 0.3 + 0.1 * epoch,
                     "val_loss": 2.1 / epoch if with_val else None, "val_acc": 0.25 + 0.1 * epoch if with_val else None,
                     "lr": 0.1 * 0.5 ** (epoch - 1), "seconds": 4.0, "images_per_sec": 250.0})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    final_values = {"train_loss": rows[-1]["train_loss"], "train_acc": rows[-1]["train_acc"],
                    "val_loss": rows[-1]["val_loss"], "val_acc": rows[-1]["val_acc"],
                    "test_loss": 1.0, "test_acc": 0.5}
    final_values.update(final or {})
    summary = {"name": name, "model": "tiny", "seed": seed, "status": "completed", "epochs_completed": epochs,
               "epochs": epochs, "params": {"total": params_total, "trainable": params_total, "non_trainable": 0,
                                            "torch_total": params_total},
               "final": final_values, "wall_seconds": wall_seconds, "images_per_sec": 250.0, "device": "cpu",
               "versions": {"python": "3.11", "torch": "2.13.0", "cnnlab": "0.1.0"}, "hardware": "2 CPU cores",
               "git_commit": "abc123", "classes": classes}
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    predictions_dir = run_dir / "predictions"
    predictions_dir.mkdir()
    for split in splits:
        labels = rng.integers(0, len(classes), size=n_per_split).astype(np.int64)
        np.savez(predictions_dir / f"{split}.npz", probs=_probs(labels, len(classes), 1.5, rng), labels=labels,
                 indices=np.arange(n_per_split, dtype=np.int64))
    if with_model_summary:
        (run_dir / "model_summary.txt").write_text("Layer (type)  Output Shape  Param #\nconv (Conv2d) (32, 32, 8) 224\n",
                                                    encoding="utf-8")
    return run_dir


def fake_images(n: int, channels: int = 3, size: int = 8, seed: int = 0) -> np.ndarray:
    """uint8 N x C x H x W random images."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, channels, size, size), dtype=np.uint8)
