"""load_splits: one DataConfig -> train / val / test ArrayDatasets."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from .cifar import load_cifar
from .config import DataConfig
from .dataset import ArrayDataset, DataSplits
from .errors import DataError
from .folder import load_image_folder
from .locate import find_data_dir
from .stratify import resolve_count, stratified_split
from .tiny_imagenet import find_tiny_imagenet, load_tiny_imagenet


def _subset(ds: Optional[ArrayDataset], size: Optional[Union[int, float]], seed: int, purpose: str,
            key: str) -> Optional[ArrayDataset]:
    if ds is None or size is None:
        return ds
    size = resolve_count(size, len(ds), key, zero_ok=False)
    if size > len(ds):
        raise DataError(f"{key}: {size} is more than the {len(ds)} images of that split; use at most {len(ds)}")
    chosen, _ = stratified_split(ds.labels, size, len(ds.classes), seed, purpose, key)
    return ds.subset(chosen)


PRESPLIT_VAL_FRACTION = 0.1   # data.val_size a pre-split folder too small for the configured count falls back to


def _carve_val(train: ArrayDataset, val_size: Union[int, float], seed: int) -> tuple[ArrayDataset, Optional[ArrayDataset]]:
    """(train, val): data.val_size images carved from train, stratified & seeded; val None for 0."""
    n_val = resolve_count(val_size, len(train), "data.val_size")
    if not n_val:
        return train, None
    if n_val >= len(train):
        raise DataError(f"data.val_size: {val_size!r} leaves no training images of {len(train)}; "
                        f"set a smaller count or a fraction, e.g. -o data.val_size=0.1 (or 0: no validation split)")
    val_idx, train_idx = stratified_split(train.labels, n_val, len(train.classes), seed, "val", "data.val_size")
    return train.subset(train_idx), train.subset(val_idx)


def _load_folder(cfg: DataConfig, root: Optional[str], seed: int):
    if not root:
        raise DataError("data.name is folder but no folder was given; set data.root (or --data-dir) to "
                        "root/<class>/*.jpg|png, or to a root holding train/ (val/) test/ folders of class folders")
    data = load_image_folder(Path(root), cfg.image_size, list(cfg.folder_split), seed, cfg.bad_images)
    train, val, test = data.train, data.val, data.test
    if data.layout.kind == "classes":
        if cfg.val_size:
            raise DataError(f"data.val_size: {cfg.val_size!r} is not used with {root}, a folder of class folders: "
                            "set the validation part in data.folder_split instead (e.g. [0.6, 0.2, 0.2])")
    elif val is not None:
        if cfg.val_size:
            raise DataError(f"data.val_size: {cfg.val_size!r} is not used with {root}: it has its own "
                            f"{data.layout.splits['val'].name}/ split; set data.val_size: 0")
    else:
        val_size = cfg.val_size
        if isinstance(val_size, int) and not isinstance(val_size, bool) and val_size * 2 > len(train):
            # A count meant for CIFAR (e.g. 5000) on a small train/ folder: a tenth of it instead, said once.
            fraction = PRESPLIT_VAL_FRACTION
            if round(fraction * len(train)) < len(train.classes):
                raise DataError(f"data.val_size: {val_size} is more than half of the {len(train)} images of "
                                f"{data.layout.splits['train']}, too few for a validation split per class; "
                                "set -o data.val_size=0 (no validation) or add a val/ folder")
            import sys
            print(f"note: data.val_size {val_size} is more than half of the {len(train)} images of "
                  f"{data.layout.splits['train']}: validating on {fraction:.0%} of them instead "
                  "(set -o data.val_size=N or a fraction to choose)", file=sys.stderr)
            val_size = fraction
        train, val = _carve_val(train, val_size, seed)
    return train, val, test


def load_splits(cfg: DataConfig, seed: int, data_dir: Optional[str] = None) -> DataSplits:
    """Load the dataset of `cfg`, carve the validation split and take the subsets.

    Order: (cifar, tiny_imagenet, a pre-split folder without val/) validation carved from train,
    stratified & seeded; then the train subset from what is left; the test subset from test.
    (a folder of class folders) per-class train/val/test by folder_split, then the subsets.
    Same seed -> same images. `data_dir` (CLI --data-dir) overrides cfg.root.
    """
    root = data_dir or cfg.root
    if cfg.name == "folder":
        train, val, test = _load_folder(cfg, root, seed)
    elif cfg.name == "tiny_imagenet":
        train, test = load_tiny_imagenet(find_tiny_imagenet(root), cfg.image_size, cfg.bad_images)
        train, val = _carve_val(train, cfg.val_size, seed)
    else:
        folder = find_data_dir(cfg.name, root, download=cfg.download)
        train, test = load_cifar(folder, cfg.name, cfg.label_mode)
        train, val = _carve_val(train, cfg.val_size, seed)
    train = _subset(train, cfg.train_subset, seed, "train_subset", "data.train_subset")
    test = _subset(test, cfg.test_subset, seed, "test_subset", "data.test_subset")
    return DataSplits(train=train, val=val, test=test, classes=list(train.classes), name=cfg.name)
