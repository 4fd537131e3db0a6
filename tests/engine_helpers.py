"""Tiny learnable datasets in the publisher's CIFAR format, and small helpers for engine tests."""
from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def learnable_images(labels: np.ndarray, rng: np.random.Generator, num_classes: int) -> np.ndarray:
    """N x 3072 uint8: each class has its own mean colour and a bright square in its own place,
    plus noise, so a small CNN gets well above chance in a couple of epochs."""
    n = len(labels)
    imgs = rng.normal(110, 30, size=(n, 3, 32, 32))
    for k in range(num_classes):
        sel = labels == k
        colour = np.array([(k * 37) % 256, (k * 91) % 256, (k * 151) % 256], dtype=float)
        imgs[sel] += 0.4 * (colour[None, :, None, None] - 128)
        r, c = (k * 7) % 24, (k * 11) % 24
        imgs[sel, :, r:r + 8, c:c + 8] += 70
    return np.clip(imgs, 0, 255).astype(np.uint8).reshape(n, 3072)


def make_learnable_cifar10(base: Path, per_batch: int = 40, test: int = 100, seed: int = 0) -> Path:
    """base/cifar-10-batches-py with 5 train batches of `per_batch` images and a test batch."""
    folder = Path(base) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for i, n in [(b, per_batch) for b in range(1, 6)] + [(0, test)]:
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        data = {b"batch_label": b"generated", b"labels": labels.tolist(), b"data": learnable_images(labels, rng, 10),
                b"filenames": [f"img{j}.png".encode() for j in range(n)]}
        name = f"data_batch_{i}" if i else "test_batch"
        with open(folder / name, "wb") as f:
            pickle.dump(data, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [s.encode() for s in names], b"num_vis": 3072, b"num_cases_per_batch": per_batch},
                    f, protocol=2)
    return Path(base)


def tiny_overrides(**extra) -> list[str]:
    """Overrides that make recipe-shaped experiments run in about a second on tiny data."""
    base = {"epochs": 2, "batch_size": 16, "eval_batch_size": 64, "data.val_size": 20, "threads": 1,
            "data.download": False}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


# A run that exercises every piece of resume state: schedule, EMA, L2, label smoothing, early
# stopping (an impossible min_delta stops it after epoch 3 of 6), augmentation and Lookahead.
# The SIGKILL tests (test_engine_resume_state.py) and benchmarks/soak_resume.py train it.
STATEFUL_OVERRIDES = tiny_overrides(
    epochs=6, batch_size=32, **{"schedule.name": "cosine", "schedule.warmup_epochs": 1, "schedule.min_lr": 1e-5,
                                "regularization.ema": 0.9, "regularization.l2": 1e-3,
                                "regularization.label_smoothing": 0.1, "early_stopping.patience": 2,
                                "early_stopping.monitor": "val_loss", "early_stopping.min_delta": 10,
                                "augment.hflip": "true", "augment.crop_padding": 2,
                                "augment.trivial_augment": "true", "augment.jpeg_quality": "[30,95]",
                                "optimizer.lookahead": "{every: 2, decay: 0.8, ramp: 1.0}"})


def cnnlab_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "cnnlab", *args]


def run_cli(*args: str, env=None, timeout: float = 120, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run(cnnlab_cmd(*args), capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)


class StopAt:
    """A callback that sends this process Ctrl-C (SIGINT) at a chosen global step, counted from
    the run's start: an interrupt at an exact step, for the resume tests."""

    def __init__(self, at: int):
        self.at, self.seen = at, 0

    def on_train_begin(self, logs): ...
    def on_epoch_begin(self, epoch, logs): ...
    def on_epoch_end(self, epoch, logs): ...
    def on_train_end(self, logs): ...

    def on_batch_end(self, step, logs):
        import os
        import signal

        self.seen += 1
        if self.seen == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def train_experiment(cfg, runs_dir="runs", **kwargs):
    """What `cnnlab train --no-report` runs: any task of cnnlab.tasks, with {recipe: ...} sources and
    distillation teachers resolved (cnnlab.run_experiment, curves.png but no report pages).
    cnnlab.train.train alone runs the default task with sources already resolved."""
    from cnnlab.pipeline import run_experiment

    return run_experiment(cfg, runs_dir, report=False, **kwargs)
