"""An exported file checked against PyTorch on real images: max abs difference and argmax agreement.

Images, best first: the run's test split (the images of its saved predictions/test.npz, in that
order), else its val or train split; when the dataset cannot be loaded here, seeded random
uint8 images (which check the arithmetic, not the accuracy), and the result says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch

from cnnlab.export.packaged import PackagedModel
from cnnlab.runfolder import read_predictions

# Probabilities are 0..1; float32 kernels of different runtimes differ by ~1e-7 per op, a deep
# network accumulates more (measured on every registered model: at most 3.3e-7 after softmax).
TOLERANCE = 1e-4
CHECK_BATCH = 64          # images per forward pass: bounded memory at any input size
RANDOM_IMAGES = 16        # when the dataset is absent
RANDOM_SEED = 0


@dataclass
class CheckResult:
    images: int
    source: str                            # "test split (n images)", "random uint8 images (dataset not available: ...)"
    max_abs_diff: float                    # exported vs PyTorch, in the output's units
    argmax_agreement: float                # fraction of images with the same top class
    saved_max_abs_diff: Optional[float]    # PyTorch vs the run's saved predictions/test.npz (same images), probabilities
    output: str = "probabilities"          # or "logits" (packaged.OUTPUTS)
    scale: float = 1.0                     # logits: the tolerance is relative to the largest |logit| (>= 1)

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= TOLERANCE * self.scale

    def summary(self) -> str:
        saved = ("" if self.saved_max_abs_diff is None else
                 f"; PyTorch vs the run's saved test predictions: max abs diff {self.saved_max_abs_diff:.2e}")
        return (f"checked on {self.images} {self.source}: max abs diff of {self.output} vs PyTorch "
                f"{self.max_abs_diff:.2e} (tolerance {TOLERANCE * self.scale:.3g}), argmax agreement "
                f"{100 * self.argmax_agreement:.2f}%{saved}")


def check_images(run: Any, limit: int) -> tuple[np.ndarray, str, Optional[np.ndarray]]:
    """(uint8 images N x C x H x W, where they came from, saved probabilities of those images or None)."""
    from cnnlab.data import DataError

    try:
        splits = run.splits
    except (DataError, OSError, ValueError) as err:
        rng = np.random.default_rng(RANDOM_SEED)
        images = rng.integers(0, 256, size=(min(limit, RANDOM_IMAGES), run.in_chans, run.input_size,
                                            run.input_size), dtype=np.uint8)
        reason = (str(err).splitlines() or [""])[0][:160]
        return images, f"random uint8 images (the run's dataset is not available here: {reason})", None
    for name in ("test", "val", "train"):
        ds = getattr(splits, name)
        if ds is not None and len(ds):
            n = min(limit, len(ds))
            return ds.images[:n].numpy(), f"images of the {name} split", _saved(run, name, ds, n)
    raise ValueError(f"{run.run_dir}: the run's dataset has no images to check the export on")


def _saved(run: Any, split: str, ds: Any, n: int) -> Optional[np.ndarray]:
    """The run's saved probabilities of the first n images of `ds`, when predictions/<split>.npz
    holds exactly those images in that order."""
    saved = read_predictions(run.run_dir).get(split)
    if saved is None or len(saved.indices) != len(ds) or not np.array_equal(saved.indices, ds.indices.numpy()):
        return None
    probs = saved.probs[:n].astype(np.float32)
    return np.concatenate([1 - probs, probs], axis=1) if probs.shape[1] == 1 else probs


@torch.no_grad()
def compare(packaged: PackagedModel, exported: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
            source: str, saved: Optional[np.ndarray] = None) -> CheckResult:
    """Run the PyTorch packaged model and the exported one on the same uint8 images."""
    ours, theirs = [], []
    for start in range(0, len(images), CHECK_BATCH):
        batch = np.ascontiguousarray(images[start:start + CHECK_BATCH])
        ours.append(packaged(torch.from_numpy(batch)).numpy())
        theirs.append(np.asarray(exported(batch), dtype=np.float32))
    a, b = np.concatenate(ours), np.concatenate(theirs)
    if a.shape != b.shape:
        raise ValueError(f"the exported model gives shape {b.shape}, PyTorch {a.shape}")
    output = getattr(packaged, "output", "probabilities")
    probs, scale = a, 1.0
    if output == "logits":
        # float32 error grows with the magnitude: compare relative to the largest logit.
        scale = max(1.0, float(np.abs(a).max()))
        probs = _probabilities(a)
        b_top, a_top = (b[:, 0] > 0, a[:, 0] > 0) if a.shape[1] == 1 else (b.argmax(1), a.argmax(1))
    else:
        b_top, a_top = b.argmax(1), a.argmax(1)
    return CheckResult(images=len(a), source=source, max_abs_diff=float(np.abs(a - b).max()),
                       argmax_agreement=float(np.mean(a_top == b_top)),
                       saved_max_abs_diff=None if saved is None else float(np.abs(probs - saved).max()),
                       output=output, scale=scale)


def _probabilities(logits: np.ndarray) -> np.ndarray:
    """What the probabilities export would give for these logits (softmax, or [1 - p, p])."""
    logits = logits.astype(np.float64)
    if logits.shape[1] == 1:
        p = 1 / (1 + np.exp(-logits))
        return np.concatenate([1 - p, p], axis=1).astype(np.float32)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


__all__ = ["CheckResult", "TOLERANCE", "check_images", "compare"]
