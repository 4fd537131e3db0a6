"""Fake run folders in the trainer's format, for the evaluate/report tests."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

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
    """Write a run folder under ``root`` and return it.

    ``final`` overrides summary.final values (train_loss, train_acc, val_loss, val_acc,
    test_loss, test_acc). Predictions are random but better than chance.
    """
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
