"""Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018) heatmaps.

Grad-CAM weighs each channel k of a conv layer's output A by the mean gradient of the class score
over that channel's map (report 001, question 21), sums, and keeps the positive part:
    cam = ReLU(sum_k mean_ij(dS/dA_k) * A_k).
Grad-CAM++ replaces the mean by a per-pixel weighting of the positive gradients, which spreads
the map over several instances of the class instead of the strongest one. Both maps are upsampled
bilinearly to the image and scaled to [0, 1] per image (an all-zero map stays zero: nothing in
that layer speaks for the class).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.explain.capture import capture_outputs, class_scores, eval_mode


@dataclass
class CamMaps:
    """Heatmaps of a batch: ``maps`` N x H x W in [0, 1] at image size, ``raw`` N x h x w at the layer's size."""

    maps: np.ndarray
    raw: np.ndarray
    layer: str


def _channel_weights(acts: torch.Tensor, grads: torch.Tensor, plus: bool) -> torch.Tensor:
    if not plus:
        return grads.mean(dim=(2, 3))
    # Grad-CAM++ closed form for an exponential of the score (the authors' and common practice):
    # alpha = g^2 / (2 g^2 + sum_ab A_ab g^3), weight = sum_ij alpha_ij ReLU(g_ij).
    g2, g3 = grads.pow(2), grads.pow(3)
    denominator = 2 * g2 + (acts * g3).sum(dim=(2, 3), keepdim=True)
    alpha = g2 / torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    return (alpha * F.relu(grads)).sum(dim=(2, 3))


def _scale(maps: torch.Tensor) -> torch.Tensor:
    peak = maps.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    return maps / peak


def grad_cam(model: nn.Module, x: torch.Tensor, layer: str, targets: torch.Tensor | list[int],
             plus: bool = False) -> CamMaps:
    """Grad-CAM (``plus=True``: Grad-CAM++) of normalized images ``x`` (N x C x H x W) for the
    class ``targets[i]`` of each image, at conv layer ``layer`` (a module name), in eval mode."""
    targets = torch.as_tensor(targets, dtype=torch.long, device=x.device).view(-1)
    # requires_grad on the input: a graph exists even when every weight is frozen
    x = x.detach().clone().requires_grad_(True)
    with eval_mode(model), torch.enable_grad():
        logits, kept = capture_outputs(model, x, [layer])
        acts = kept[layer]
        scores = class_scores(logits.float())
        if int(targets.max()) >= scores.shape[1] or int(targets.min()) < 0:
            raise ValueError(f"class {int(targets.max())} is out of range: the model scores {scores.shape[1]} classes")
        (grads,) = torch.autograd.grad(scores.gather(1, targets[:, None]).sum(), acts)
    acts, grads = acts.detach().float(), grads.float()
    weights = _channel_weights(acts, grads, plus)
    cam = F.relu((weights[:, :, None, None] * acts).sum(dim=1))
    up = F.interpolate(cam[:, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
    return CamMaps(maps=_scale(F.relu(up)).cpu().numpy(), raw=cam.cpu().numpy(), layer=layer)


__all__ = ["CamMaps", "grad_cam"]
