"""Robustness of a classification run: test accuracy under JPEG and the CIFAR-10-C corruptions.

    result = evaluate_robustness(load_run("runs/..."), subset=2000)
    result["mean_corruption_accuracy"], result["jpeg"]["75"], result["corruptions"]["fog"]["3"]

The images are corrupted on the fly (``cnnlab.data.corrupt``), from a stratified, seeded subset
of the test split (``subset`` images; None = all), each corruption and severity with its own
seed, so two evaluations of one run see the same corrupted images. The mean corruption accuracy
is the mean over the 15 benchmark corruptions x 5 severities (Hendrycks & Dietterich 2019); the
four extra corruptions are reported beside it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from cnnlab.atomic import write_text_atomically
from cnnlab.data import corrupt as C

FOLDER = "robust"
RESULTS = "robust.json"
DEFAULT_SUBSET = 2000


def robust_dir(run_dir: Path) -> Path:
    return Path(run_dir) / FOLDER


def _subset_indices(labels: np.ndarray, n: Optional[int], seed: int) -> np.ndarray:
    """Sorted indices of a stratified, seeded subset of ``n`` images (all when n is None or too big)."""
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    try:
        keep, _ = train_test_split(idx, train_size=n, random_state=seed, stratify=labels)
    except ValueError:   # a class with one image: plain random subset
        keep = np.random.default_rng(seed).choice(idx, size=n, replace=False)
    return np.sort(keep)


def _accuracy(run: Any, images: np.ndarray, labels: np.ndarray, batch_size: Optional[int]) -> float:
    probs = run.predict(images, batch_size=batch_size)
    return float((probs.argmax(axis=1) == labels).mean())


def evaluate_robustness(run: Any, split: str = "test", subset: Optional[int] = DEFAULT_SUBSET,
                        corruptions: Sequence[str] = C.ALL, severities: Sequence[int] = C.SEVERITIES,
                        jpeg_qualities: Sequence[int] = C.JPEG_QUALITIES, seed: int = 0,
                        batch_size: Optional[int] = None, log: Callable[[str], None] = lambda m: None
                        ) -> dict[str, Any]:
    """Accuracy of ``run`` (a LoadedRun) on clean, JPEG'd and corrupted images of ``split``.

    Returns {"split", "images", "subset_of", "indices", "clean", "jpeg": {quality: acc},
    "corruptions": {name: {severity: acc}}, "groups", "mean_corruption_accuracy" (15 benchmark
    corruptions; None when not all were run), "mean_all", "seconds", ...}; keys of the inner dicts
    are strings (JSON).
    """
    run.require("robust")
    unknown = [c for c in corruptions if c not in C.CORRUPTIONS]
    if unknown:
        raise ValueError(f"unknown corruption(s) {', '.join(unknown)}; choose from {', '.join(C.ALL)}")
    start = time.perf_counter()
    ds = run.split(split)
    images = ds.images.numpy() if hasattr(ds.images, "numpy") else np.asarray(ds.images)
    labels = ds.labels.numpy() if hasattr(ds.labels, "numpy") else np.asarray(ds.labels)
    keep = _subset_indices(labels, subset, seed)
    x, y = images[keep], labels[keep]
    split_indices = getattr(ds, "indices", None)
    log(f"robustness of {run.run_dir.name}: {len(keep):,} of {len(labels):,} {split} images")
    clean = _accuracy(run, x, y, batch_size)
    log(f"  clean {100 * clean:.2f}%")
    jpeg_acc = {}
    for q in jpeg_qualities:
        jpeg_acc[str(q)] = _accuracy(run, C.jpeg(x, q), y, batch_size)
        log(f"  JPEG q{q} (4:2:0) {100 * jpeg_acc[str(q)]:.2f}%")
    table: dict[str, dict[str, float]] = {}
    for i, name in enumerate(corruptions):
        table[name] = {}
        for s in severities:
            corrupted = C.corrupt(x, name, s, seed=seed * 1000 + C.ALL.index(name) * 10 + s)
            table[name][str(s)] = _accuracy(run, corrupted, y, batch_size)
        log(f"  {name}: " + " ".join(f"{100 * a:.1f}" for a in table[name].values()))
    bench = [name for name in C.BENCHMARK if name in table]
    full = len(bench) == len(C.BENCHMARK) and tuple(severities) == C.SEVERITIES
    mean = lambda names: float(np.mean([a for n in names for a in table[n].values()])) if names else None  # noqa: E731
    groups = {g: mean([n for n in table if C.group_of(n) == g]) for g in C.GROUPS}
    return {
        "run": str(run.run_dir), "split": split, "images": int(len(keep)), "subset_of": int(len(labels)),
        "seed": seed,
        "indices": [int(i) for i in keep],
        "source_indices": [int(split_indices[i]) for i in keep] if split_indices is not None else None,
        "clean": clean, "jpeg": jpeg_acc, "jpeg_subsampling": "4:2:0",
        "severities": [int(s) for s in severities], "corruptions": table,
        "groups": {g: v for g, v in groups.items() if v is not None},
        "mean_corruption_accuracy": mean(bench) if full else None,
        "mean_benchmark_run": mean(bench),
        "mean_all": mean(list(table)),
        "parameters": "CIFAR-10-C (Hendrycks & Dietterich 2019, make_cifar_c.py); see cnnlab.data.corrupt",
        "image_size": int(x.shape[-1]),
        "seconds": time.perf_counter() - start,
    }


def write_robustness(result: dict[str, Any], out_dir: Path) -> Path:
    """``out_dir/robust.json`` (atomically); returns its path."""
    return write_text_atomically(Path(out_dir) / RESULTS, json.dumps(result, indent=2) + "\n")


def read_robustness(folder: Path) -> Optional[dict[str, Any]]:
    """The robust.json in ``folder`` (a run's robust/ folder), or None when absent or unreadable."""
    path = Path(folder) / RESULTS
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


__all__ = ["DEFAULT_SUBSET", "FOLDER", "RESULTS", "evaluate_robustness", "read_robustness", "robust_dir",
           "write_robustness"]
