"""Batched inference over a device-resident uint8 dataset: logits, loss, accuracy, flip TTA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from cnnlab.train.losses import classification_loss, correct_count, probabilities
from cnnlab.train.runtime import autocast


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    logits: torch.Tensor  # float32, CPU, N x K


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor],
                   batch_size: int, amp_dtype: torch.dtype | None = None, channels_last: bool = False,
                   world=None) -> torch.Tensor:
    """Logits for every image (eval mode is the caller's job, so EMA or train-mode BN can be chosen).

    With a `world` of several ranks (train/distributed.py) each rank predicts its part of the
    images and every rank gets all the logits, in order."""
    if world is not None and world.enabled:
        start, stop = world.rows(images.shape[0])
        return world.gather_rows(predict_logits(model, images[start:stop], normalize, batch_size, amp_dtype,
                                                channels_last))
    device = next(model.parameters()).device
    outs = []
    for start in range(0, images.shape[0], batch_size):
        x = normalize(images[start:start + batch_size].to(device, non_blocking=True))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp_dtype):
            outs.append(model(x).float().cpu())
    return torch.cat(outs) if outs else torch.empty(0, 0)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             normalize: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
             amp_dtype: torch.dtype | None = None, channels_last: bool = False, world=None) -> EvalResult:
    was_training = model.training
    model.eval()
    try:
        logits = predict_logits(model, images, normalize, batch_size, amp_dtype, channels_last, world)
    finally:
        model.train(was_training)
    labels = labels.cpu()
    loss = classification_loss(logits, labels).item()
    acc = correct_count(logits, labels).item() / max(1, labels.shape[0])
    return EvalResult(loss=loss, accuracy=acc, logits=logits)


@torch.no_grad()
def flip_tta_probabilities(model: nn.Module, images: torch.Tensor,
                           normalize: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
                           amp_dtype: torch.dtype | None = None, channels_last: bool = False,
                           world=None) -> np.ndarray:
    """Mean of the probabilities of ``images`` and of their left-right mirrors, float32 N x K.

    ``images`` are uint8 N x C x H x W (on any device) as the trainer keeps them; ``normalize``
    turns a batch into model input. The mirror is taken after normalization, which is the same
    as before it for per-channel normalization. The model runs in eval mode; its mode is restored.
    The trainer saves the result as predictions/test_tta.npz; the run report shows it as a second
    "test (flip TTA)" row.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
    was_training = model.training
    model.eval()
    try:
        plain = predict_logits(model, images, normalize, batch_size, amp_dtype, channels_last, world)
        mirrored = predict_logits(model, images, lambda x: torch.flip(normalize(x), dims=[-1]),
                                  batch_size, amp_dtype, channels_last, world)
    finally:
        model.train(was_training)
    return ((probabilities(plain) + probabilities(mirrored)) / 2).numpy().astype(np.float32)
