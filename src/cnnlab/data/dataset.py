"""In-memory datasets: every image of a split resident as one uint8 tensor."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .errors import DataError


@dataclass
class ArrayDataset:
    """A whole split in memory.

    images: uint8, N x C x H x W, CPU, contiguous (the trainer moves it to its device).
    labels: int64, N.  indices: int64, N, each image's position in its source split
    (the "idx" column of reports).  paths: source file of each image (image folders only).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    indices: torch.Tensor
    paths: Optional[list[str]] = None

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"images must be uint8 N x C x H x W, got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (n,) or self.indices.shape != (n,):
            raise DataError(f"labels {tuple(self.labels.shape)} and indices {tuple(self.indices.shape)} must both be ({n},)")
        if self.paths is not None and len(self.paths) != n:
            raise DataError(f"paths has {len(self.paths)} entries for {n} images")
        self.images = self.images.contiguous()
        self.labels = self.labels.to(torch.int64)
        self.indices = self.indices.to(torch.int64)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, idx: torch.Tensor) -> "ArrayDataset":
        """The images at positions `idx` (of this dataset), keeping their source indices."""
        idx = torch.as_tensor(idx, dtype=torch.int64)
        paths = [self.paths[i] for i in idx.tolist()] if self.paths is not None else None
        return ArrayDataset(self.images[idx].contiguous(), self.labels[idx], list(self.classes),
                            self.indices[idx], paths)

    def class_counts(self) -> list[int]:
        """Number of images of each class, in class order."""
        return torch.bincount(self.labels, minlength=len(self.classes)).tolist()


@dataclass
class DataSplits:
    """The train split plus optional validation and test splits of one dataset."""

    train: ArrayDataset
    val: Optional[ArrayDataset]
    test: Optional[ArrayDataset]
    classes: list[str]
    name: str

    def items(self) -> list[tuple[str, ArrayDataset]]:
        """(split name, dataset) for each split that exists, in train/val/test order."""
        return [(k, d) for k, d in (("train", self.train), ("val", self.val), ("test", self.test)) if d is not None]
