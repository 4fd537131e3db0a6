"""Features of any layer for a whole split: batched forward passes in eval mode, one hook.

A module layer is read by a forward hook that keeps the module's output and stops the pass
right there (nothing after the layer is computed); ``features`` and ``pre_logits`` are the
model's own ``forward_features`` / ``forward_head(pre_logits=True)``. Always float32 (no
autocast), so the numbers equal a plain forward to that layer.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from cnnlab.features.layers import FEATURES, PRE_LOGITS, candidate_modules, device_of, find_layer, model_layers


class _Reached(Exception):
    """Raised by the hook to stop the forward pass once the layer's output is in hand."""


def _layer_forward(model: nn.Module, layer: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function image batch -> the layer's output for that batch."""
    if layer == FEATURES:
        return model.forward_features
    if layer == PRE_LOGITS:
        return lambda x: model.forward_head(model.forward_features(x), pre_logits=True)
    module = candidate_modules(model)[layer]
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        captured.append(output)
        raise _Reached

    def forward(x: torch.Tensor) -> torch.Tensor:
        captured.clear()
        handle = module.register_forward_hook(hook)
        try:
            model.forward_head(model.forward_features(x))
        except _Reached:
            pass
        finally:
            handle.remove()
        if not captured:
            raise ValueError(f"layer {layer!r} was not reached by the forward pass")
        return captured[0]

    return forward


@torch.no_grad()
def extract_features(model: nn.Module, images: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor],
                     layer: str, batch_size: int = 256) -> np.ndarray:
    """Output of ``layer`` for every image, flattened: float32 numpy N x D.

    ``images``: uint8 N x C x H x W (any device); ``normalize``: the run's normalizer (uint8
    batch -> model input). Runs on the model's device in eval mode; the mode is restored.
    An unknown layer name raises UnknownLayerError listing the model's layers.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    info = find_layer(model_layers(model, tuple(images.shape[1:]), include_all=True), layer)
    device = device_of(model)
    forward = _layer_forward(model, layer)
    out = np.empty((images.shape[0], info.dim), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, images.shape[0], batch_size):
            x = normalize(images[start:start + batch_size].to(device))
            out[start:start + x.shape[0]] = forward(x).reshape(x.shape[0], -1).float().cpu().numpy()
    finally:
        model.train(was_training)
    return out


__all__ = ["extract_features"]
