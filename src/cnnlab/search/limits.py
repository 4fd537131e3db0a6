"""Limits a trial must meet before it trains: the model builds, and its size is within budget.

The model is built on the CPU from the trial's config, exactly as the trainer will build it, and
counted the way the reports count (Keras' total: weights plus batch-norm moving statistics), so
"under 50,000 parameters" means what report 000-b meant. No data is loaded: the class count
comes from the dataset's name (CIFAR) or the class folders of an image-folder dataset.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from cnnlab.data.config import DataConfig
from cnnlab.models import count_params
from cnnlab.train.experiment import ExperimentConfig
from cnnlab.train.setup import build_model

CIFAR_CLASSES = {("cifar10", "fine"): 10, ("cifar10", "coarse"): 10, ("cifar100", "fine"): 100, ("cifar100", "coarse"): 20}
KNOWN_CLASSES = {"tiny_imagenet": 200}
SPLIT_FOLDERS = ("train", "val", "valid", "validation", "test")   # a pre-split image folder's sub-folders


@dataclass
class Check:
    params: Optional[dict]     # count_params of the built model; None when it did not build
    reason: Optional[str]      # why the trial may not train; None when it may


def num_classes_of(data: DataConfig, given: Optional[int] = None) -> int:
    """The dataset's class count without loading it; `given` (the space's limits.num_classes) wins."""
    if given is not None:
        return given
    if (data.name, data.label_mode) in CIFAR_CLASSES:
        return CIFAR_CLASSES[(data.name, data.label_mode)]
    if data.name in KNOWN_CLASSES:
        return KNOWN_CLASSES[data.name]
    root = Path(data.root) if data.root else None
    if data.name == "folder" and root is not None and root.is_dir():
        classes = _subdirs(root)
        if classes and all(p.name.lower() in SPLIT_FOLDERS for p in classes):   # root/train/<class>/...
            classes = next((_subdirs(p) for p in classes if p.name.lower() == "train"), [])
        if classes:
            return len(classes)
    raise ValueError(f"cannot tell the class count of data.name={data.name!r} (root {data.root!r}) without "
                     f"loading it; set limits.num_classes in the search space")


def _subdirs(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]


def check_trial(cfg: ExperimentConfig, max_params: Optional[int], num_classes: int) -> Check:
    """Build the trial's model and hold it against `max_params` (Keras-style total)."""
    model_cfg = copy.copy(cfg.model)
    model_cfg.pretrained = None     # counting needs the shapes only, never a download
    try:
        model = build_model(model_cfg, num_classes=num_classes, in_chans=3)
    except (ValueError, TypeError, RuntimeError) as err:   # DeclarationError is a ValueError
        return Check(None, f"the model does not build: {err}")
    params = count_params(model)
    if max_params is not None and params["total"] > max_params:
        return Check(params, f"{params['total']:,} parameters, above the limit of {max_params:,}")
    return Check(params, None)


__all__ = ["Check", "check_trial", "num_classes_of"]
