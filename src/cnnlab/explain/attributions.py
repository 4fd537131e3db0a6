"""Pixel attributions through captum: saliency (Simonyan et al. 2014) and integrated gradients
(Sundararajan et al. 2017). captum is imported on first use (it takes about 2 s to import).

Both return N x H x W maps scaled to [0, 1] per image: the absolute attribution summed over the
colour channels (saliency: the largest absolute gradient over the channels, as its paper does).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnlab.explain.capture import class_scores, eval_mode

IG_STEPS = 32  # Riemann steps from the baseline to the image; the convergence delta says if enough


@dataclass
class Attribution:
    maps: np.ndarray          # N x H x W in [0, 1]
    delta: np.ndarray | None  # integrated gradients: sum of attributions minus score difference, per image


def _scale(maps: torch.Tensor) -> np.ndarray:
    peak = maps.flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1)
    return (maps / peak).detach().cpu().numpy()


def _scores(model: nn.Module):
    return lambda inputs: class_scores(model(inputs).float())


def saliency(model: nn.Module, x: torch.Tensor, targets: list[int] | torch.Tensor) -> Attribution:
    """|d score / d pixel|, the largest over the channels, for normalized images ``x``."""
    from captum.attr import Saliency

    targets = torch.as_tensor(targets, dtype=torch.long, device=x.device).view(-1)
    with eval_mode(model), torch.enable_grad():
        grads = Saliency(_scores(model)).attribute(x.detach().clone().requires_grad_(True), target=targets, abs=True)
    return Attribution(_scale(grads.amax(dim=1)), None)


def integrated_gradients(model: nn.Module, x: torch.Tensor, targets: list[int] | torch.Tensor,
                         baseline: torch.Tensor, steps: int = IG_STEPS) -> Attribution:
    """Integrated gradients from ``baseline`` (normalized, e.g. a black image) to ``x``."""
    from captum.attr import IntegratedGradients

    if steps < 2:
        raise ValueError(f"integrated gradients need at least 2 steps, got {steps}")
    targets = torch.as_tensor(targets, dtype=torch.long, device=x.device).view(-1)
    with eval_mode(model), torch.enable_grad():
        attributions, delta = IntegratedGradients(_scores(model)).attribute(
            x.detach().clone(), baselines=baseline.expand_as(x), target=targets, n_steps=steps,
            internal_batch_size=max(steps, 8), return_convergence_delta=True)
    return Attribution(_scale(attributions.abs().sum(dim=1)), delta.detach().cpu().numpy())


__all__ = ["Attribution", "IG_STEPS", "integrated_gradients", "saliency"]
