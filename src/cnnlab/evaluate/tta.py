"""Test-time augmentation by horizontal flip: average the probabilities of each image and its mirror."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from cnnlab.train.losses import probabilities
from cnnlab.train.predict import predict_logits


@torch.no_grad()
def flip_tta_probabilities(model: nn.Module, images: torch.Tensor,
                           normalize: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
                           amp_dtype: torch.dtype | None = None, channels_last: bool = False) -> np.ndarray:
    """Mean of the probabilities of ``images`` and of their left-right mirrors, float32 N x K.

    ``images`` are uint8 N x C x H x W (on any device) as the trainer keeps them; ``normalize``
    turns a batch into model input. The mirror is taken after normalization, which is the same
    as before it for per-channel normalization. The model runs in eval mode; its mode is restored.
    Save the result as predictions/test_tta.npz (probs, labels, indices) and the run report shows
    it as a second "test (flip TTA)" row.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
    was_training = model.training
    model.eval()
    try:
        plain = predict_logits(model, images, normalize, batch_size, amp_dtype, channels_last)
        mirrored = predict_logits(model, images, lambda x: torch.flip(normalize(x), dims=[-1]),
                                  batch_size, amp_dtype, channels_last)
    finally:
        model.train(was_training)
    return ((probabilities(plain) + probabilities(mirrored)) / 2).numpy().astype(np.float32)
