"""What the features code needs from a loaded run, read the same way from either kind of handle.

``cnnlab.runs.load_run`` returns a handle with ``.run_dir``, ``.model``, ``.config``,
``.normalizer`` and the data splits. The splits are read through :func:`split_dataset`, which
accepts ``run.splits.test`` (a DataSplits attribute), ``run.splits("test")`` and
``run.split("test")``, so this package works with the eager handle and with a lazy one.
The package sits below ``cnnlab.runs`` (layer 5 < 7), so it never imports it: handles are duck-typed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

SPLITS = ("train", "val", "test")
WEIGHTS = "model.safetensors"  # the final weights load_run loads by default


def split_dataset(run: Any, split: str) -> Any:
    """The run's ``split`` dataset (images uint8 N x C x H x W, labels, indices).

    ValueError naming the splits the run has when ``split`` is not one of them.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    splits = getattr(run, "splits", None)
    if splits is not None and not callable(splits):
        dataset = getattr(splits, split, None)
    elif callable(splits):
        dataset = splits(split)
    elif callable(getattr(run, "split", None)):
        dataset = run.split(split)
    else:
        raise TypeError(f"{type(run).__name__} has no splits: expected run.splits.<name>, run.splits(name) "
                        "or run.split(name)")
    if dataset is None or len(dataset) == 0:
        present = [s for s in SPLITS if s != split and _has_split(run, s)]
        raise ValueError(f"this run has no {split} split; choose one of {', '.join(present) or 'none'}")
    return dataset


def _has_split(run: Any, split: str) -> bool:
    try:
        return split_dataset(run, split) is not None
    except (ValueError, KeyError, AttributeError):
        return False


def available_splits(run: Any) -> list[str]:
    """The splits the run has, in train/val/test order."""
    return [s for s in SPLITS if _has_split(run, s)]


def run_classes(run: Any) -> list[str]:
    """Class names in label order: ``run.classes``, else ``run.splits.classes``."""
    classes = getattr(run, "classes", None)
    if classes is None:
        classes = getattr(getattr(run, "splits", None), "classes", None)
    if classes is None:
        raise TypeError(f"{type(run).__name__} has neither .classes nor .splits.classes")
    return [str(c) for c in classes]


def run_folder(run: Any) -> Path:
    """The run folder of the handle."""
    return Path(getattr(run, "run_dir"))


def weights_file(run: Any) -> Path:
    """The weights file the handle's model was loaded from (``weights_path`` if the handle says so)."""
    path = getattr(run, "weights_path", None)
    return Path(path) if path is not None else run_folder(run) / WEIGHTS


def input_shape(run: Any) -> tuple[int, int, int]:
    """(C, H, W) of the run's images, from the first split it has."""
    for split in ("test", "train", "val"):
        if _has_split(run, split):
            c, h, w = split_dataset(run, split).images.shape[1:]
            return int(c), int(h), int(w)
    raise ValueError(f"{run_folder(run)}: the run has no data split to take the input size from")


def eval_batch_size(run: Any, default: int = 256) -> int:
    """The run's ``eval_batch_size`` (images per forward pass), else ``default``."""
    return int(getattr(getattr(run, "config", None), "eval_batch_size", None) or default)


__all__ = ["SPLITS", "WEIGHTS", "available_splits", "eval_batch_size", "input_shape", "run_classes", "run_folder",
           "split_dataset",
           "weights_file"]
