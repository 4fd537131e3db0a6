"""load_splits: one DataConfig -> train / val / test ArrayDatasets."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from .cifar import load_cifar
from .config import DataConfig
from .dataset import ArrayDataset, DataSplits
from .errors import DataError
from .folder import load_folder
from .locate import find_data_dir
from .stratify import resolve_count, stratified_split


def _subset(ds: Optional[ArrayDataset], size: Optional[Union[int, float]], seed: int, purpose: str,
            key: str) -> Optional[ArrayDataset]:
    if ds is None or size is None:
        return ds
    size = resolve_count(size, len(ds), key, zero_ok=False)
    if size > len(ds):
        raise DataError(f"{key}: {size} is more than the {len(ds)} images of that split; use at most {len(ds)}")
    chosen, _ = stratified_split(ds.labels, size, len(ds.classes), seed, purpose, key)
    return ds.subset(chosen)


def load_splits(cfg: DataConfig, seed: int, data_dir: Optional[str] = None) -> DataSplits:
    """Load the dataset of `cfg`, carve the validation split and take the subsets.

    Order: (cifar) validation carved from train, stratified & seeded; then the train subset from
    what is left; the test subset from test. (folder) per-class train/val/test by folder_split,
    then the subsets. Same seed -> same images. `data_dir` (CLI --data-dir) overrides cfg.root.
    """
    root = data_dir or cfg.root
    if cfg.name == "folder":
        if not root:
            raise DataError("data.name is folder but no folder was given; set data.root (or --data-dir) to "
                            "root/<class>/*.jpg|png")
        train, val, test = load_folder(Path(root), cfg.image_size, list(cfg.folder_split), seed, cfg.bad_images)
    else:
        folder = find_data_dir(cfg.name, root, download=cfg.download)
        train, test = load_cifar(folder, cfg.name, cfg.label_mode)
        val = None
        n_val = resolve_count(cfg.val_size, len(train), "data.val_size")
        if n_val:
            if n_val >= len(train):
                raise DataError(f"data.val_size: {cfg.val_size!r} leaves no training images of {len(train)}; "
                                "use a smaller count or fraction")
            val_idx, train_idx = stratified_split(train.labels, n_val, len(train.classes), seed, "val", "data.val_size")
            val, train = train.subset(val_idx), train.subset(train_idx)
    train = _subset(train, cfg.train_subset, seed, "train_subset", "data.train_subset")
    test = _subset(test, cfg.test_subset, seed, "test_subset", "data.test_subset")
    return DataSplits(train=train, val=val, test=test, classes=list(train.classes), name=cfg.name)
