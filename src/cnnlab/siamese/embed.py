"""Embeddings of a whole split and the nearest-class-centroid classifier on them (torch, cheap).

The centroid classifier is the per-epoch accuracy of a siamese run (the metrics rows' val_acc,
what the best weights are chosen by): each class's centroid is the mean embedding of its images
among a fixed set of training images, and an image gets the class of the nearest centroid
(euclidean distance in embedding units).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from cnnlab.train.predict import predict_logits


@torch.no_grad()
def embed(model: nn.Module, images: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
          amp_dtype: Optional[torch.dtype] = None, channels_last: bool = False) -> torch.Tensor:
    """float32 CPU N x D embeddings of uint8 N x C x H x W ``images``, in eval mode (mode restored)."""
    was_training = model.training
    model.eval()
    try:
        return predict_logits(model, images, normalize, batch_size, amp_dtype, channels_last)
    finally:
        model.train(was_training)


def class_centroids(emb: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """K x D mean embedding per class; NaN rows for classes without images."""
    sums = torch.zeros(num_classes, emb.shape[1], dtype=torch.float64).index_add_(0, labels.long(), emb.double())
    counts = torch.bincount(labels.long(), minlength=num_classes).double()
    return (sums / counts[:, None]).float()   # 0/0 = NaN for an empty class


def nearest_centroid(emb: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Class index of the nearest centroid for each row (classes without a centroid never win)."""
    d2 = torch.cdist(emb.double(), centroids.nan_to_num(nan=0.0).double()).pow(2)
    d2[:, torch.isnan(centroids).any(dim=1)] = float("inf")
    return d2.argmin(dim=1)


__all__ = ["class_centroids", "embed", "nearest_centroid"]
