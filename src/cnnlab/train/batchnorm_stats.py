"""Batch-norm statistics recomputed after training ("precise BN", Wu & Johnson 2021, "Rethinking
'Batch' in BatchNorm").

A BN layer's running mean and variance are a moving average over the last training batches. With
a high momentum (airbench's 0.4: the last ~3 batches carry most of the weight) and an epoch that
ends on a small batch (50,000 images in batches of 256 leave one of 80), the statistics the final
weights are scored with depend on which few batches came last: the test accuracy of fast-cpu's
separable <50K-parameter net moves by up to 1 point between its last two epochs at a learning rate
near zero. Recomputing them as the plain mean over many batches with the final weights removes that
noise. Only the statistics change; no weight moves.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from cnnlab.train.runtime import autocast
from cnnlab.train.stages import all_params_frozen

BatchNorm = nn.modules.batchnorm._BatchNorm


def training_batchnorms(model: nn.Module, frozen_bn: str = "eval") -> list[str]:
    """Names of the BN layers that update their statistics while `model` trains: all that track
    them, except (frozen_bn="eval") those whose parameters are all frozen, which train/stages.py
    keeps in eval mode with the statistics they were loaded with."""
    return [name for name, m in model.named_modules()
            if isinstance(m, BatchNorm) and m.track_running_stats
            and not (frozen_bn == "eval" and all_params_frozen(m))]


@torch.no_grad()
def recompute_batchnorm_stats(model: nn.Module, names: list[str], images: torch.Tensor,
                              normalize: Callable[[torch.Tensor], torch.Tensor], batches: int, batch_size: int,
                              generator: torch.Generator, amp_dtype: Optional[torch.dtype] = None,
                              channels_last: bool = False) -> int:
    """Reset the BN layers `names` of `model` and set their running statistics to the mean over
    `batches` batches of `batch_size` images drawn without replacement from `images` (uint8
    N x C x H x W, un-augmented: the views the model is scored on) in an order from `generator`.
    The rest of the model runs in eval mode (dropout off). Returns the number of images used."""
    if batches < 1:
        raise ValueError(f"precise_bn: {batches} batches; give >= 1, or 0 to keep the running statistics")
    layers = dict(model.named_modules())
    missing = [n for n in names if not isinstance(layers.get(n), BatchNorm)]
    if missing:
        raise ValueError(f"precise_bn: the model has no batch-norm layer named {missing[0]!r}")
    device = next(model.parameters()).device
    n = min(images.shape[0], batches * batch_size)
    if n % batch_size == 1 and n > 1:
        n -= 1   # batch norm cannot normalize a batch of one image
    order = torch.randperm(images.shape[0], generator=generator)[:n]
    modes = {m: m.training for m in model.modules()}
    saved = {name: layers[name].momentum for name in names}
    model.eval()
    try:
        for name in names:
            layers[name].reset_running_stats()
            # momentum None: a cumulative average, each batch weighed equally.
            layers[name].momentum = None
            layers[name].train()
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size].to(images.device)
            x = normalize(images[idx].to(device, non_blocking=True))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp_dtype):
                model(x)
    finally:
        for name in names:
            layers[name].momentum = saved[name]
        for m, training in modes.items():
            m.training = training
    return n


__all__ = ["recompute_batchnorm_stats", "training_batchnorms"]
